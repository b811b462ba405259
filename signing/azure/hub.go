package azure

import (
	"errors"
	"strconv"
	"time"
)

// IoT Hub endpoint defaults.
const (
	// HubHostSuffix follows the hub name in its default host.
	HubHostSuffix = ".azure-devices.net"
	// HubAPIVersion is the api-version of the MQTT username, the one
	// Microsoft's device SDKs send (azure-iot-common endpoint.apiVersion).
	HubAPIVersion = "2021-04-12"
	// HubPortTLS is the MQTT-over-TLS port.
	HubPortTLS = 8883
	// HubPortWebSocketTLS is the MQTT-over-WebSocket-over-TLS port.
	HubPortWebSocketTLS = 443
	// HubWebSocketPath is the WebSocket path of MQTT.
	HubWebSocketPath = "/$iothub/websocket"
)

// HubHost returns the default host of the IoT hub named hub:
// "{hub}.azure-devices.net".
func HubHost(hub string) string { return hub + HubHostSuffix }

// Transport is how a device reaches the hub.
type Transport int

// Transports. The zero value is not a transport, so that a forgotten
// field is an error rather than a default.
const (
	TransportTLS          Transport = iota + 1 // MQTT 3.1.1 over TLS, port 8883
	TransportWebSocketTLS                      // MQTT over WebSocket over TLS, port 443
)

// String returns "TLS", "WEBSOCKET_TLS" or "Transport(n)".
func (t Transport) String() string {
	switch t {
	case TransportTLS:
		return "TLS"
	case TransportWebSocketTLS:
		return "WEBSOCKET_TLS"
	}
	return "Transport(" + strconv.Itoa(int(t)) + ")"
}

// Endpoint is where a device connects.
type Endpoint struct {
	Host string
	Port int
	// URI is "mqtts://{host}:8883" or "wss://{host}:443/$iothub/websocket".
	URI string
}

// HubEndpoint returns the endpoint of host (a hub's host, see
// [HubRequest.Host]) over t. It returns a *FieldError for the host field
// if host is not valid, for the transport field if t is not a transport.
func HubEndpoint(host string, t Transport) (Endpoint, error) {
	if err := ValidateHost(host); err != nil {
		return Endpoint{}, err
	}
	switch t {
	case TransportTLS:
		return Endpoint{Host: host, Port: HubPortTLS, URI: "mqtts://" + host + ":" + strconv.Itoa(HubPortTLS)}, nil
	case TransportWebSocketTLS:
		return Endpoint{Host: host, Port: HubPortWebSocketTLS, URI: "wss://" + host + ":" + strconv.Itoa(HubPortWebSocketTLS) + HubWebSocketPath}, nil
	}
	return Endpoint{}, fieldError(fieldTransport, reasonTransport)
}

// Login is a device's MQTT CONNECT credentials.
type Login struct {
	ClientID string
	Username string
	// Password is the SAS token. It is a credential: never log it.
	Password string
	// ExpiresAt is when Password stops being accepted, in seconds since
	// the Unix epoch.
	ExpiresAt int64
}

// HubRequest identifies an IoT Hub login to sign.
type HubRequest struct {
	// Hub is the hub's name ([ValidateHub]).
	Hub string
	// Host is the hub's host; "" means [HubHost](Hub).
	Host string
	// DeviceID is the device's id ([ValidateDeviceID]).
	DeviceID string
	// ModuleID is the module's id ([ValidateModuleID]); "" signs the
	// device's own login.
	ModuleID string
	// IssuedAt is the issue time; the token expires TTL after it.
	IssuedAt time.Time
	// TTL is the token's lifetime; 0 means [DefaultTTL] ([ResolveTTL]).
	TTL time.Duration
}

// host returns the host r signs for.
func (r HubRequest) host() string {
	if r.Host == "" {
		return HubHost(r.Hub)
	}
	return r.Host
}

// Validate checks every field of r and returns a *FieldError for the first
// invalid one, in the order hub, host, deviceId, moduleId, ttlSeconds; or
// nil if r is valid.
func (r HubRequest) Validate() error {
	if err := ValidateHub(r.Hub); err != nil {
		return err
	}
	if r.Host != "" {
		if err := ValidateHost(r.Host); err != nil {
			return err
		}
	}
	if err := ValidateDeviceID(r.DeviceID); err != nil {
		return err
	}
	if r.ModuleID != "" {
		if err := ValidateModuleID(r.ModuleID); err != nil {
			return err
		}
	}
	_, err := ResolveTTL(r.TTL)
	return err
}

// errBeforeEpoch is returned for an issue time whose token would expire
// before 1970: a clock or caller bug, not bad input.
var errBeforeEpoch = errors.New("azure: the token would expire before the Unix epoch")

// expiry returns issuedAt + the lifetime ttl resolves to, in Unix seconds.
func expiry(issuedAt time.Time, ttl time.Duration) (int64, error) {
	ttl, err := ResolveTTL(ttl)
	if err != nil {
		return 0, err
	}
	// Microsoft's SDK refuses an expiry of 0 (a falsy value) too.
	se := issuedAt.Unix() + int64(ttl/time.Second)
	if se <= 0 {
		return 0, errBeforeEpoch
	}
	return se, nil
}

// SignHub validates req and returns the MQTT login of the device (or of
// its module) to its IoT hub: clientId "{deviceId}" ("{deviceId}/{moduleId}"),
// username "{host}/{clientId}/?api-version=2021-04-12", and as password
// the SAS token
//
//	SharedAccessSignature sr={enc(resource)}&sig={enc(base64(mac))}&se={expiry}
//
// where resource is "{host}/devices/{deviceId}" (plus "/modules/{moduleId}"),
// enc is azure-iot-common's encodeUriComponentStrict, and mac is
// HMAC-SHA256 by the device's (or module's) key of "{enc(resource)}\n{expiry}".
//
// Errors are *FieldError values naming the first invalid field (see
// [HubRequest.Validate]), mac's errors as they are, or an error if the MAC
// is not 32 bytes. mac is not called for an invalid req.
func SignHub(req HubRequest, mac MAC) (Login, error) {
	if err := req.Validate(); err != nil {
		return Login{}, err
	}
	se, err := expiry(req.IssuedAt, req.TTL)
	if err != nil {
		return Login{}, err
	}
	host := req.host()
	clientID := req.DeviceID
	resource := host + "/devices/" + req.DeviceID
	if req.ModuleID != "" {
		clientID += "/" + req.ModuleID
		resource += "/modules/" + req.ModuleID
	}
	// The device SDKs sign the URL-encoded resource URI and send it
	// encoded the same way (sak_authentication_provider.js).
	sr := string(appendEscaped(make([]byte, 0, escapedLen(resource)), resource))
	token, err := signToken(mac, sr, se, "")
	if err != nil {
		return Login{}, err
	}
	return Login{
		ClientID:  clientID,
		Username:  host + "/" + clientID + "/?api-version=" + HubAPIVersion,
		Password:  token,
		ExpiresAt: se,
	}, nil
}
