package aliyun

import (
	"strings"
)

// ConnectRequest identifies a device login to sign.
type ConnectRequest struct {
	// ProductKey is the product's key: 1–32 characters of [A-Za-z0-9].
	ProductKey string
	// DeviceName is the device's name: 4–32 characters of ASCII letters,
	// digits and "-_.@:".
	DeviceName string
	// ClientID is the client ID the device chooses: 1–64 characters of
	// [A-Za-z0-9_.:@-]. It is usually the DeviceName or a MAC or serial
	// number.
	ClientID string
	// Timestamp is the login time in milliseconds since the Unix epoch, as
	// 1–19 decimal digits. The empty string omits the timestamp from both
	// the clientId and the sign content.
	Timestamp string
	// Method is the HMAC algorithm.
	Method Method
	// Transport selects the securemode: 2 for TLS and WebSocket over TLS,
	// 3 for TCP.
	Transport Transport
}

// Validate checks every field of r and returns a *FieldError for the first
// invalid one, in the order productKey, deviceName, clientId, timestamp,
// signMethod, transport; or nil if r is valid.
func (r ConnectRequest) Validate() error {
	if err := ValidateProductKey(r.ProductKey); err != nil {
		return err
	}
	if err := ValidateDeviceName(r.DeviceName); err != nil {
		return err
	}
	if err := ValidateClientID(r.ClientID); err != nil {
		return err
	}
	if r.Timestamp != "" {
		if err := ValidateTimestamp(r.Timestamp); err != nil {
			return err
		}
	}
	if err := validateMethod(r.Method); err != nil {
		return err
	}
	return validateTransport(r.Transport)
}

// ConnectParams are the MQTT CONNECT credentials of a device.
type ConnectParams struct {
	// ClientID is the CONNECT client identifier, such as
	// "dev-001|securemode=2,signmethod=hmacsha1,timestamp=1700000000000|".
	ClientID string
	// Username is "{deviceName}&{productKey}".
	Username string
	// Password is the lower-case hex HMAC of the sign content.
	Password string
}

// SignConnect validates req and returns the MQTT CONNECT credentials of the
// device, whose password mac computes over the sign content: with
// [DeviceSecretMAC] when the DeviceSecret is at hand.
//
// Errors are *FieldError values naming the first invalid field (see
// [ConnectRequest.Validate]), mac's errors as they are, or an error if
// the MAC is not the method's size. mac is not called for an invalid req.
func SignConnect(req ConnectRequest, mac MAC) (ConnectParams, error) {
	if err := req.Validate(); err != nil {
		return ConnectParams{}, err
	}
	_, size := req.Method.newHash()
	// One buffer holds the sign content and then the MAC, which mac may
	// write over it.
	msg := make([]byte, 0, max(connectContentLen(req), size))
	msg = appendConnectContent(msg, req)
	password, err := macHex(req.Method, mac, msg)
	if err != nil {
		return ConnectParams{}, err
	}
	return assembleConnect(req, password), nil
}

// assembleConnect frames the credentials of a validated req around
// password.
func assembleConnect(req ConnectRequest, password string) ConnectParams {
	return ConnectParams{
		ClientID: mqttClientID(req),
		Username: req.DeviceName + "&" + req.ProductKey,
		Password: password,
	}
}

const (
	secureModePrefix = "|securemode="
	signMethodPrefix = ",signmethod="
	timestampPrefix  = ",timestamp="
)

// mqttClientID returns
// "{clientId}|securemode={mode},signmethod={method}[,timestamp={ts}]|".
func mqttClientID(req ConnectRequest) string {
	method := req.Method.String()
	n := len(req.ClientID) + len(secureModePrefix) + 1 + len(signMethodPrefix) + len(method) + 1
	if req.Timestamp != "" {
		n += len(timestampPrefix) + len(req.Timestamp)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(req.ClientID)
	b.WriteString(secureModePrefix)
	b.WriteByte(req.Transport.secureModeDigit())
	b.WriteString(signMethodPrefix)
	b.WriteString(method)
	if req.Timestamp != "" {
		b.WriteString(timestampPrefix)
		b.WriteString(req.Timestamp)
	}
	b.WriteByte('|')
	return b.String()
}
