package huawei

import (
	"crypto/fips140"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Ports of an instance's device endpoint: MQTTS (TLS) and plain MQTT.
const (
	DefaultMQTTSPort = 8883
	DefaultMQTTPort  = 1883
)

// SecretMAC returns HMAC-SHA256 of the device's secret keyed by key, raw.
// On IoTDA the timestamp is the HMAC key and the secret the message, so the
// device's secret is what the MAC holds: here ([SecretKeyMAC]) or in a
// service that never hands it out. key may be overwritten; a SecretMAC must
// not retain it.
type SecretMAC func(key []byte) ([]byte, error)

// SecretKeyMAC returns the SecretMAC of secret (the bytes of the secret
// string the platform issued), computed with crypto/hmac. Its errors are
// *FieldError values for the secret field; they never contain the secret.
func SecretKeyMAC(secret []byte) SecretMAC {
	return func(key []byte) ([]byte, error) {
		if len(secret) == 0 {
			return nil, fieldError(fieldSecret, reasonEmpty)
		}
		if fips140.Enforced() {
			// The key is the 10-byte timestamp, below FIPS 140's 112 bits:
			// refuse rather than let crypto/hmac panic.
			return nil, fieldError(fieldSecret, "cannot be used in FIPS 140-only mode: IoTDA keys the HMAC with a 10-byte timestamp")
		}
		h := hmac.New(sha256.New, key)
		h.Write(secret)
		return h.Sum(nil), nil
	}
}

// Timestamp returns t in UTC as YYYYMMDDHH, the form of the clientId and
// the HMAC key: 2018-07-24T17:56:20Z is "2018072417".
func Timestamp(t time.Time) string { return t.UTC().Format("2006010215") }

// Request is a login to sign.
type Request struct {
	DeviceID string
	// CheckTimestamp asks the platform to check the timestamp against its
	// clock (signature type 1); false sends signature type 0, which the
	// platform accepts at any time. The API's default is true.
	CheckTimestamp bool
	// IssuedAt is the issue time, whose UTC hour is the timestamp.
	IssuedAt time.Time
}

// Validate returns a *FieldError for the first invalid field (deviceId,
// issuedAt), or nil.
func (r Request) Validate() error {
	if err := ValidateDeviceID(r.DeviceID); err != nil {
		return err
	}
	return validateIssuedAt(r.IssuedAt)
}

// Login is the MQTT CONNECT credentials of a device.
type Login struct {
	// ClientID is "{deviceId}_0_{0|1}_{YYYYMMDDHH}".
	ClientID string
	// Username is the device ID.
	Username string
	// Password is the lower-case hex HMAC-SHA256 of the secret keyed by
	// the timestamp.
	Password string
	// ExpiresAt is when a checked login stops being valid, in Unix seconds:
	// the end of the UTC hour its timestamp names. The platform documents
	// the check only as "whether the message timestamp is consistent with
	// the platform time", and the timestamp names an hour, so the end of
	// that hour is the latest time a checked login is sure to pass. An
	// unchecked login carries the timestamp but the platform "only checks
	// the password": it does not expire, and ExpiresAt is 0.
	ExpiresAt int64
}

// SignConnect validates r and returns the device's login, whose password
// mac computes with the timestamp as key. mac is not called for an invalid
// r. Errors are *FieldError values naming the first invalid field, mac's
// errors as they are, or an error if the MAC is not 32 bytes.
func SignConnect(r Request, mac SecretMAC) (Login, error) {
	if err := r.Validate(); err != nil {
		return Login{}, err
	}
	ts := Timestamp(r.IssuedAt)
	sum, err := mac([]byte(ts))
	if err != nil {
		return Login{}, err
	}
	if len(sum) != sha256.Size {
		return Login{}, fmt.Errorf("huawei: the HMAC-SHA256 is %d bytes, want %d", len(sum), sha256.Size)
	}
	check, expiresAt := "0", int64(0)
	if r.CheckTimestamp {
		check = "1"
		expiresAt = r.IssuedAt.UTC().Truncate(time.Hour).Add(time.Hour).Unix()
	}
	return Login{
		ClientID:  r.DeviceID + "_0_" + check + "_" + ts,
		Username:  r.DeviceID,
		Password:  hex.EncodeToString(sum),
		ExpiresAt: expiresAt,
	}, nil
}
