package aliyun

import (
	"crypto/fips140"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Minimum HMAC key length that crypto/hmac accepts in FIPS 140-only mode.
const fipsMinKeyLen = 112 / 8

// MAC computes the MAC of content by method m with a key the caller has
// chosen, and returns it raw (binary). Every sign function takes one, so
// that the rules here do not depend on where the key lives: in this
// process ([DeviceSecretMAC], [ProductSecretMAC]) or in a service that
// never hands it out (such as Vault Transit, through package secrets).
//
// content is a buffer the MAC may overwrite and whose capacity it may use
// for its result: the sign functions do not read it after the call. A MAC
// must not retain it. Its errors are returned by the sign functions as
// they are.
type MAC func(m Method, content []byte) ([]byte, error)

// DeviceSecretMAC returns the MAC keyed with a device's DeviceSecret (the
// bytes of the secret string), computed in this process. Its errors are
// *FieldError values for the deviceSecret field if secret is empty, or
// (in FIPS 140-only mode) too short for m, and for the signMethod field if
// m is not valid or FIPS 140-only mode refuses it. They never contain the
// secret.
func DeviceSecretMAC(secret []byte) MAC { return secretMAC(fieldDeviceSecret, secret) }

// ProductSecretMAC is DeviceSecretMAC for a product's ProductSecret: its
// errors name the productSecret field.
func ProductSecretMAC(secret []byte) MAC { return secretMAC(fieldProductSecret, secret) }

// secretMAC returns the MAC keyed with secret; field names the secret in
// errors.
func secretMAC(field string, secret []byte) MAC {
	return func(m Method, content []byte) ([]byte, error) {
		newHash, _ := m.newHash()
		if newHash == nil {
			return nil, fieldError(fieldSignMethod, reasonSignMethod)
		}
		if err := checkSecret(field, m, secret); err != nil {
			return nil, err
		}
		h := hmac.New(newHash, secret)
		h.Write(content) // hash.Hash.Write never returns an error.
		// The MAC goes over content, which is no longer needed: no
		// allocation when content has the digest's capacity.
		return h.Sum(content[:0]), nil
	}
}

// HMACHex returns the lower-case hexadecimal HMAC of content keyed with
// secret, using method m. The secret must not be empty.
//
// It returns a *FieldError for the signMethod field if m is not valid, and
// for the secret field if secret is empty. When the program runs with
// GODEBUG=fips140=only, methods other than hmacsha256 and secrets shorter
// than 14 bytes are rejected with an error rather than a panic.
func HMACHex(m Method, secret []byte, content string) (string, error) {
	_, size := m.newHash()
	// One buffer holds the message and then the MAC, which the MAC writes
	// over it.
	buf := make([]byte, len(content), max(len(content), size))
	copy(buf, content)
	sum, err := secretMAC(fieldSecret, secret)(m, buf)
	if err != nil {
		return "", err
	}
	return hexString(sum), nil
}

// macHex asks mac for the MAC of content by m and returns it as
// lower-case hex. The MAC is checked to have the method's size, so that a
// wrong answer from elsewhere never reaches a device.
func macHex(m Method, mac MAC, content []byte) (string, error) {
	_, size := m.newHash()
	sum, err := mac(m, content)
	if err != nil {
		return "", err
	}
	if len(sum) != size {
		return "", fmt.Errorf("signing: the %s MAC is %d bytes, want %d", m, len(sum), size)
	}
	return hexString(sum), nil
}

// checkSecret checks that secret is usable with m; field names the secret
// in errors.
func checkSecret(field string, m Method, secret []byte) error {
	if len(secret) == 0 {
		return fieldError(field, reasonEmpty)
	}
	if fips140.Enforced() {
		if m != MethodHMACSHA256 {
			return fieldError(fieldSignMethod, "must be hmacsha256 in FIPS 140-only mode")
		}
		if len(secret) < fipsMinKeyLen {
			return fieldError(field, "must be at least 14 bytes in FIPS 140-only mode")
		}
	}
	return nil
}

// hexString returns sum, at most a SHA-256 digest, in lower-case hex.
func hexString(sum []byte) string {
	var hx [2 * sha256.Size]byte // SHA-256 has the largest digest.
	n := hex.Encode(hx[:], sum)
	return string(hx[:n])
}
