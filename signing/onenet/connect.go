package onenet

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Version is the token's version, the only one OneNET supports
// ("目前仅支持\"2018-10-31\"").
const Version = "2018-10-31"

// Endpoints of OneNET's MQTT service: plain MQTT and MQTT over TLS.
const (
	Host    = "mqtts.heclouds.com"
	Port    = 1883
	TLSHost = "mqttstls.heclouds.com"
	TLSPort = 8883
)

// Lifetimes of a token. OneNET refuses a token whose et has passed and sets
// no upper limit; its samples use an hour (Python) and 100 days (Java).
// The default is the Python sample's hour and the ceiling 30 days, the same
// limits as this service's other expiring logins.
const (
	DefaultTTL = time.Hour
	MinTTL     = time.Minute
	MaxTTL     = 30 * 24 * time.Hour
)

// Request is a device login to sign.
type Request struct {
	ProductID  string
	DeviceName string
	Method     Method
	// TTL is the lifetime: 0 for DefaultTTL, else within [MinTTL, MaxTTL].
	TTL time.Duration
	// IssuedAt is the issue time; the token's et is IssuedAt + TTL.
	IssuedAt time.Time
}

// Validate returns a *FieldError for the first invalid field, in the order
// productId, deviceName, signMethod, ttlSeconds, issuedAt, or nil.
func (r Request) Validate() error {
	if err := ValidateProductID(r.ProductID); err != nil {
		return err
	}
	if err := ValidateDeviceName(r.DeviceName); err != nil {
		return err
	}
	if newHash, _ := r.Method.newHash(); newHash == nil {
		return fieldError(fieldSignMethod, reasonSignMethod)
	}
	if err := ValidateTTL(r.TTL); err != nil {
		return err
	}
	return validateIssuedAt(r.IssuedAt)
}

// ExpiresAt returns the token's et for a valid r, in Unix seconds.
func (r Request) ExpiresAt() int64 {
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return r.IssuedAt.Unix() + int64(ttl/time.Second)
}

// Login is the MQTT CONNECT credentials of a device.
type Login struct {
	// ClientID is the device name.
	ClientID string
	// Username is the product ID.
	Username string
	// Password is the token.
	Password string
	// ExpiresAt is the token's et, in Unix seconds.
	ExpiresAt int64
}

// SignConnect validates r and returns the device's login: the token for
// res = products/{productId}/devices/{deviceName}, whose sign mac computes.
// mac is not called for an invalid r. Errors are *FieldError values naming
// the first invalid field, mac's errors as they are, or an error if the MAC
// is not the method's size.
func SignConnect(r Request, mac MAC) (Login, error) {
	if err := r.Validate(); err != nil {
		return Login{}, err
	}
	et := r.ExpiresAt()
	token, err := Token("products/"+r.ProductID+"/devices/"+r.DeviceName, et, r.Method, mac)
	if err != nil {
		return Login{}, err
	}
	return Login{ClientID: r.DeviceName, Username: r.ProductID, Password: token, ExpiresAt: et}, nil
}

// StringForSignature returns what the sign covers:
// et + "\n" + method + "\n" + res + "\n" + version, the values only, in the
// order of the parameters' names (et, method, res, version).
func StringForSignature(et int64, m Method, res string) string {
	return strconv.FormatInt(et, 10) + "\n" + m.tokenName() + "\n" + res + "\n" + Version
}

// Token returns the token
//
//	version=2018-10-31&res={res}&et={et}&method={method}&sign={sign}
//
// for resource res ("products/{pid}" for the product's API access,
// "products/{pid}/devices/{name}" for a device), expiry et and method m,
// where sign = base64(HMAC(key, StringForSignature)) computed by mac and
// every value is URL-encoded ("token中key=value的形式的value部分需要经过URL编码"),
// so res's '/' becomes %2F and sign's '+', '/', '=' become %2B, %2F, %3D.
// Errors are *FieldError values for res, expiresAt or signMethod (mac is
// then not called), mac's errors, or an error if the MAC is not the
// method's size.
func Token(res string, et int64, m Method, mac MAC) (string, error) {
	if err := validateRes(res); err != nil {
		return "", err
	}
	if et < 0 {
		return "", fieldError(fieldExpiresAt, reasonExpiresAt)
	}
	_, size := m.newHash()
	if size == 0 {
		return "", fieldError(fieldSignMethod, reasonSignMethod)
	}
	sum, err := mac(m, []byte(StringForSignature(et, m, res)))
	if err != nil {
		return "", err
	}
	if len(sum) != size {
		return "", fmt.Errorf("onenet: the %s MAC is %d bytes, want %d", m, len(sum), size)
	}
	return "version=" + url.QueryEscape(Version) +
		"&res=" + url.QueryEscape(res) +
		"&et=" + strconv.FormatInt(et, 10) +
		"&method=" + url.QueryEscape(m.tokenName()) +
		"&sign=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sum)), nil
}
