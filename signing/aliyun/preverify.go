package aliyun

import (
	"net/url"
)

// Form fields of the platform's HTTPS pre-verification request
// (POST https://iot-auth.{regionId}.aliyuncs.com/auth/devicename).
const (
	FormProductKey = "productKey"
	FormDeviceName = "deviceName"
	FormClientID   = "clientId"
	FormTimestamp  = "timestamp"
	FormSignMethod = "signmethod"
	FormSign       = "sign"
	FormResources  = "resources"
	FormVersion    = "version"
)

// Fixed values of the pre-verification form.
const (
	// PreVerifyResources asks the platform for the MQTT endpoint.
	PreVerifyResources = "mqtt"
	// PreVerifyVersion is the protocol version the platform documents.
	PreVerifyVersion = "default"
)

// PreVerifyRequest identifies a device whose HTTPS pre-verification form
// is to be signed. Its fields follow the rules of [ConnectRequest]; there
// is no transport, since the form always goes over HTTPS.
type PreVerifyRequest struct {
	// ProductKey is the product's key: 1–32 characters of [A-Za-z0-9].
	ProductKey string
	// DeviceName is the device's name: 4–32 characters of ASCII letters,
	// digits and "-_.@:".
	DeviceName string
	// ClientID is the client ID: 1–64 characters of [A-Za-z0-9_.:@-].
	ClientID string
	// Timestamp is the time in milliseconds since the Unix epoch, as 1–19
	// decimal digits. The empty string omits it from the form and from the
	// sign content.
	Timestamp string
	// Method is the HMAC algorithm.
	Method Method
}

// Validate checks every field of r and returns a *FieldError for the first
// invalid one, in the order productKey, deviceName, clientId, timestamp,
// signMethod; or nil if r is valid.
func (r PreVerifyRequest) Validate() error {
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
	return validateMethod(r.Method)
}

// connect returns the ConnectRequest with the same identifying fields,
// whose sign content is the same.
func (r PreVerifyRequest) connect() ConnectRequest {
	return ConnectRequest{
		ProductKey: r.ProductKey,
		DeviceName: r.DeviceName,
		ClientID:   r.ClientID,
		Timestamp:  r.Timestamp,
		Method:     r.Method,
	}
}

// PreVerifySignContent returns the sign content of the pre-verification
// form of req. The platform signs every submitted parameter except
// version, sign, resources and signmethod, keys sorted, key and value
// concatenated; of the form [SignPreVerify] builds that leaves
//
//	clientId{c}deviceName{d}productKey{p}timestamp{t}
//
// without the timestamp part when req.Timestamp is empty: the same content
// as the MQTT CONNECT password of the same device, client ID and timestamp
// ([ConnectSignContent]).
//
// PreVerifySignContent does not validate req; call
// [PreVerifyRequest.Validate] first. [SignPreVerify] hands it to its MAC.
func PreVerifySignContent(req PreVerifyRequest) string {
	return ConnectSignContent(req.connect())
}

// SignPreVerify validates req and returns the platform's pre-verification
// form of the device: productKey, deviceName, clientId, timestamp (only if
// req.Timestamp is set), signmethod, sign (lower-case hex of the MAC that
// mac computes over [PreVerifySignContent]: with [DeviceSecretMAC] when the
// DeviceSecret is at hand), resources=mqtt and version=default. Post it
// form-encoded (url.Values.Encode) to the auth endpoint.
//
// Errors are *FieldError values naming the first invalid field (see
// [PreVerifyRequest.Validate]), mac's errors as they are, or an error if
// the MAC is not the method's size. mac is not called for an invalid req.
func SignPreVerify(req PreVerifyRequest, mac MAC) (url.Values, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	c := req.connect()
	_, size := req.Method.newHash()
	msg := make([]byte, 0, max(connectContentLen(c), size))
	msg = appendConnectContent(msg, c)
	sign, err := macHex(req.Method, mac, msg)
	if err != nil {
		return nil, err
	}
	return assemblePreVerify(req, sign), nil
}

// assemblePreVerify builds the form of a validated req around sign.
func assemblePreVerify(req PreVerifyRequest, sign string) url.Values {
	f := make(url.Values, 8)
	f[FormProductKey] = []string{req.ProductKey}
	f[FormDeviceName] = []string{req.DeviceName}
	f[FormClientID] = []string{req.ClientID}
	if req.Timestamp != "" {
		f[FormTimestamp] = []string{req.Timestamp}
	}
	f[FormSignMethod] = []string{req.Method.String()}
	f[FormSign] = []string{sign}
	f[FormResources] = []string{PreVerifyResources}
	f[FormVersion] = []string{PreVerifyVersion}
	return f
}
