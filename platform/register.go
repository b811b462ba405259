package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
)

// RegisterPath is the path of the dynamic registration endpoint below a
// base URL.
const RegisterPath = "/auth/register/device"

// Platform codes of dynamic registration beyond those of pre-verification.
// The platform documents the request and the success answer of
// /auth/register/device but not its error codes; these are assumptions,
// taken from its table of device error codes (6100) and the behaviour it
// documents for dynamic registration (a device that was already activated
// cannot be registered again until it is reset).
const (
	// CodeDeviceNotExist: the device is not known ("device info not
	// found"); like 5001, it means the device was not added to the
	// product first.
	CodeDeviceNotExist = 6100
	// CodeAlreadyActivated: the device has connected with a secret before
	// and cannot be registered dynamically again until it is reset on the
	// platform (ResetThing).
	CodeAlreadyActivated = 6288
)

// ErrAlreadyActivated: the platform refuses to register the device because
// it has already been activated (code 6288, assumed).
var ErrAlreadyActivated = errors.New("device already activated")

// Registration is the platform's answer to a successful dynamic
// registration. Its String, GoString, Format, LogValue and MarshalJSON
// methods redact the DeviceSecret.
type Registration struct {
	ProductKey string
	DeviceName string
	// DeviceSecret is the device's new secret. Only the newest secret the
	// platform issued for a device is valid.
	DeviceSecret string
}

// String returns the registration with the secret redacted.
func (r Registration) String() string {
	return fmt.Sprintf("platform.Registration{ProductKey: %q, DeviceName: %q, DeviceSecret: %s}", r.ProductKey, r.DeviceName, redacted)
}

// GoString returns the registration with the secret redacted.
func (r Registration) GoString() string { return r.String() }

// Format redacts the secret for every fmt verb.
func (r Registration) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LogValue keeps the secret out of slog records.
func (r Registration) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("product_key", r.ProductKey),
		slog.String("device_name", r.DeviceName),
		slog.String("device_secret", redacted),
	)
}

// MarshalJSON keeps the secret out of JSON encodings.
func (r Registration) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"productKey": r.ProductKey, "deviceName": r.DeviceName, "deviceSecret": redacted})
}

// registerData is the data of a registration answer.
type registerData struct {
	ProductKey   string `json:"productKey"`
	DeviceName   string `json:"deviceName"`
	DeviceSecret string `json:"deviceSecret"`
}

// maxDeviceSecretLen bounds a DeviceSecret in an answer (the platform's
// are 32 characters).
const maxDeviceSecretLen = 256

// registerRules are the rules of /auth/register/device.
var registerRules = rules[registerData, Registration]{
	kinds: map[int]error{
		CodeSignatureMismatch: ErrSignatureMismatch,
		CodeBadParameter:      ErrBadParameter,
		CodeDeviceNotFound:    ErrDeviceNotFound,
		CodeDeviceNotExist:    ErrDeviceNotFound,
		CodeAlreadyActivated:  ErrAlreadyActivated,
	},
	secrets: func(d *registerData) []string {
		if d == nil {
			return nil
		}
		return []string{d.DeviceSecret}
	},
	result: func(d *registerData) (Registration, string) {
		switch {
		case d == nil:
			return Registration{}, "data"
		case !isVisibleASCII(d.DeviceSecret, maxDeviceSecretLen):
			return Registration{}, "data.deviceSecret"
		}
		return Registration{ProductKey: d.ProductKey, DeviceName: d.DeviceName, DeviceSecret: d.DeviceSecret}, ""
	},
}

// registerEndpoint is POST /auth/register/device.
var registerEndpoint = endpoint[Registration]{
	op:       "register",
	path:     RegisterPath,
	required: []string{"productKey", "deviceName", "random", "signMethod", "sign"},
	interpret: func(status int, h http.Header, data []byte, sign string) outcome[Registration] {
		return interpretWith(registerRules, status, h, data, sign)
	},
}

// RegisterDevice posts form, a signed dynamic registration form (see
// signing.SignRegister), to /auth/register/device at the auth endpoint of
// the form's product in region (see [Client.BaseURL]) and returns the
// DeviceSecret the platform issued.
//
// The answer must name the device of the form where it names one at all;
// an answer for another device fails with ErrUpstream, so a secret is
// never attributed to the wrong device.
//
// It retries and uses the circuit breakers as PreVerify does. Retrying is
// safe: the platform issues a new secret to a device that has not been
// activated as often as it is asked, and only the newest is valid, which
// is the one the last attempt returns. Errors are [*Error] values: the
// kinds of PreVerify's (without ErrAuthTypeMismatch), plus
// ErrAlreadyActivated; codes 5001 and 6100 are ErrDeviceNotFound.
// Neither errors nor log records contain the sign or the DeviceSecret.
func (c *Client) RegisterDevice(ctx context.Context, region string, form url.Values) (Registration, error) {
	reg, err := call(ctx, c, registerEndpoint, region, form)
	if err != nil {
		return Registration{}, err
	}
	pk, dn := form.Get("productKey"), form.Get("deviceName")
	if (reg.ProductKey != "" && reg.ProductKey != pk) || (reg.DeviceName != "" && reg.DeviceName != dn) {
		return Registration{}, &Error{Kind: ErrUpstream, Code: CodeSuccess, op: registerEndpoint.op,
			detail: "the answer names another device than the one registered"}
	}
	reg.ProductKey, reg.DeviceName = pk, dn
	return reg, nil
}
