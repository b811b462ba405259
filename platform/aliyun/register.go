package aliyun

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

// ErrAlreadyActivated: the platform refuses to register the device because
// it has already been activated (code 6289): it must be reset on the
// platform (ResetThing) before it can register again.
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
// an answer for another device fails with ErrOutcomeUnknown, so a secret
// is never attributed to the wrong device.
//
// A registration is retried only when the attempt certainly did not
// reach the platform (a DNS, dial or TLS handshake failure, before any
// byte of the request was written) or the platform answered that it
// throttles requests. Any other failed attempt may have been processed:
// the platform may have issued a DeviceSecret (superseding earlier ones)
// and may count the device as activated, so a repeat would lose that
// secret or be refused with code 6289. Such an attempt ends the call
// with ErrOutcomeUnknown: a timeout or broken connection after the
// request was sent, an HTTP 5xx, code 500 or 6760, an answer that cannot
// be read. Errors are [*Error] values of the kinds of PreVerify's, plus
// ErrAlreadyActivated and ErrOutcomeUnknown. Neither errors nor log
// records contain the sign or the DeviceSecret.
func (c *Client) RegisterDevice(ctx context.Context, region string, form url.Values) (Registration, error) {
	reg, err := c.registerDevice(ctx, region, form)
	if errors.Is(err, ErrOutcomeUnknown) {
		c.obs.RegistrationOutcomeUnknown()
	}
	return reg, err
}

func (c *Client) registerDevice(ctx context.Context, region string, form url.Values) (Registration, error) {
	reg, err := call(ctx, c, registerEndpoint, region, form)
	if err != nil {
		return Registration{}, err
	}
	pk, dn := form.Get("productKey"), form.Get("deviceName")
	if (reg.ProductKey != "" && reg.ProductKey != pk) || (reg.DeviceName != "" && reg.DeviceName != dn) {
		// The platform acted on a registration, but for whom is unclear.
		return Registration{}, &Error{Kind: ErrOutcomeUnknown, Code: CodeSuccess, op: registerEndpoint.op,
			detail: "the answer names another device than the one registered"}
	}
	reg.ProductKey, reg.DeviceName = pk, dn
	return reg, nil
}
