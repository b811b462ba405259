package aliyun

import (
	"net/url"
)

// Form fields of the platform's dynamic registration request ("one secret
// per product", pre-registration variant:
// POST https://iot-auth.{regionId}.aliyuncs.com/auth/register/device).
// productKey and deviceName are [FormProductKey] and [FormDeviceName].
const (
	FormRandom = "random"
	// FormRegisterSignMethod is spelt signMethod here, unlike the
	// pre-verification form's signmethod.
	FormRegisterSignMethod = "signMethod"
)

// Field names and reasons of [RegisterRequest] and [SignRegister] errors.
const (
	fieldRandom        = "random"
	fieldProductSecret = "productSecret"

	maxRandomLen = 64
	reasonRandom = "must be 1–64 characters of [A-Za-z0-9]"
)

// RegisterRequest identifies a device to register dynamically with its
// product's ProductSecret.
type RegisterRequest struct {
	// ProductKey is the product's key: 1–32 characters of [A-Za-z0-9].
	ProductKey string
	// DeviceName is the device's name: 4–32 characters of ASCII letters,
	// digits and "-_.@:". The device must have been added to the product
	// on the platform (pre-registration).
	DeviceName string
	// Random is a fresh random string, 1–64 characters of [A-Za-z0-9],
	// that makes every request's sign different. The caller chooses it:
	// this package does no I/O, and reading a random source is I/O.
	Random string
	// Method is the HMAC algorithm.
	Method Method
}

// Validate checks every field of r and returns a *FieldError for the first
// invalid one, in the order productKey, deviceName, random, signMethod; or
// nil if r is valid.
func (r RegisterRequest) Validate() error {
	if err := ValidateProductKey(r.ProductKey); err != nil {
		return err
	}
	if err := ValidateDeviceName(r.DeviceName); err != nil {
		return err
	}
	if !matches(r.Random, 1, maxRandomLen, classAlnum) {
		return fieldError(fieldRandom, reasonRandom)
	}
	return validateMethod(r.Method)
}

// RegisterSignContent returns the sign content of the registration form of
// req: deviceName, productKey and random, keys sorted, key and value
// concatenated:
//
//	deviceName{d}productKey{p}random{r}
//
// It does not validate req; call [RegisterRequest.Validate] first. It
// equals [Content] over the same three parameters.
func RegisterSignContent(req RegisterRequest) string {
	return Content(
		Param{Key: FormDeviceName, Value: req.DeviceName},
		Param{Key: FormProductKey, Value: req.ProductKey},
		Param{Key: FormRandom, Value: req.Random},
	)
}

// SignRegister validates req and returns the platform's dynamic
// registration form for it: productKey, deviceName, random, signMethod
// and sign, the lower-case hex of the MAC that mac computes over
// [RegisterSignContent] with the product's ProductSecret
// ([ProductSecretMAC]). Post it form-encoded (url.Values.Encode) to the
// auth endpoint's /auth/register/device.
//
// Errors are *FieldError values naming the first invalid field of req (see
// [RegisterRequest.Validate]), mac's errors as they are, or an error if
// the MAC is not the method's size. mac is not called for an invalid req.
func SignRegister(req RegisterRequest, mac MAC) (url.Values, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	_, size := req.Method.newHash()
	content := RegisterSignContent(req)
	msg := make([]byte, len(content), max(len(content), size))
	copy(msg, content)
	sign, err := macHex(req.Method, mac, msg)
	if err != nil {
		return nil, err
	}
	return url.Values{
		FormProductKey:         {req.ProductKey},
		FormDeviceName:         {req.DeviceName},
		FormRandom:             {req.Random},
		FormRegisterSignMethod: {req.Method.String()},
		FormSign:               {sign},
	}, nil
}
