package tencent

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// SDKAppID is the fixed sdkappid of the username ("sdkappid：固定填12010126").
const SDKAppID = "12010126"

// Lifetimes of a login. The platform refuses a username whose expiry has
// passed and sets no upper limit: Tencent's C SDK sends LONG_MAX unless
// MAX_ACCESS_EXPIRE_TIMEOUT is set ("0: always valid"), while the
// documentation's own samples use 600 s (Java), 3600 s (Python) and 24 h
// (Node.js). A token service should not mint logins that never expire, so
// the default is the Python sample's hour and the ceiling 30 days, the
// same limits as the Azure SAS logins of this service.
const (
	DefaultTTL = time.Hour
	MinTTL     = time.Minute
	MaxTTL     = 30 * 24 * time.Hour
)

// Ports. The access guide gives 1883 for key-authenticated devices and 8883
// for certificate devices. Tencent's C SDK does connect key devices to 8883
// too, but over TLS-PSK with the devicePsk as the pre-shared key
// (mbedtls_ssl_conf_psk, AUTH_MODE_KEY without AUTH_WITH_NOTLS): that needs
// the key on the device, which is what this service avoids, so a login
// signed here is for 1883; 8883 serves certificate devices.
const (
	DefaultPort    = 1883
	DefaultTLSPort = 8883
)

// Host returns the MQTT host of a product in the Guangzhou region,
// "{productId}.iotcloud.tencentdevices.com". productID must be valid.
func Host(productID string) string { return productID + ".iotcloud.tencentdevices.com" }

// Request is a login to sign.
type Request struct {
	ProductID  string
	DeviceName string
	// ConnID is the random connection ID: 5 characters of [A-Za-z0-9],
	// chosen by the caller (this package draws nothing at random).
	ConnID string
	Method Method
	// TTL is the lifetime: 0 for DefaultTTL, else within [MinTTL, MaxTTL].
	TTL time.Duration
	// IssuedAt is the issue time; the expiry is IssuedAt + TTL.
	IssuedAt time.Time
}

// Validate returns a *FieldError for the first invalid field, in the order
// productId, deviceName, connId, signMethod, ttlSeconds, issuedAt, or nil.
func (r Request) Validate() error {
	if err := ValidateProductID(r.ProductID); err != nil {
		return err
	}
	if err := ValidateDeviceName(r.DeviceName); err != nil {
		return err
	}
	if err := ValidateConnID(r.ConnID); err != nil {
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

// ExpiresAt returns the expiry of a valid r in Unix seconds.
func (r Request) ExpiresAt() int64 {
	ttl := r.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return r.IssuedAt.Unix() + int64(ttl/time.Second)
}

// Login is the MQTT CONNECT credentials of a device.
type Login struct {
	// ClientID is "{productId}{deviceName}".
	ClientID string
	// Username is "{productId}{deviceName};12010126;{connId};{expiry}".
	Username string
	// Password is "{hex HMAC of the username};hmacsha256" (or hmacsha1).
	Password string
	// ExpiresAt is the expiry in the username, in Unix seconds.
	ExpiresAt int64
}

// SignConnect validates r and returns the device's login, whose password
// mac computes over the username. mac is not called for an invalid r.
// Errors are *FieldError values naming the first invalid field, mac's
// errors as they are, or an error if the MAC is not the method's size.
func SignConnect(r Request, mac MAC) (Login, error) {
	if err := r.Validate(); err != nil {
		return Login{}, err
	}
	expiresAt := r.ExpiresAt()
	clientID := r.ProductID + r.DeviceName
	username := clientID + ";" + SDKAppID + ";" + r.ConnID + ";" + strconv.FormatInt(expiresAt, 10)
	sum, err := mac(r.Method, []byte(username))
	if err != nil {
		return Login{}, err
	}
	if _, size := r.Method.newHash(); len(sum) != size {
		return Login{}, fmt.Errorf("tencent: the %s MAC is %d bytes, want %d", r.Method, len(sum), size)
	}
	return Login{
		ClientID:  clientID,
		Username:  username,
		Password:  hex.EncodeToString(sum) + ";" + r.Method.passwordSuffix(),
		ExpiresAt: expiresAt,
	}, nil
}
