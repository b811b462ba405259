package tencent

import (
	"crypto/fips140"
	"crypto/hmac"
)

// MAC computes the HMAC of content by method m with the device's key (the
// base64-decoded devicePsk) and returns it raw. [SignConnect] takes one so
// that the rule does not depend on where the key lives: here ([KeyMAC]) or
// in a service that never hands it out (Vault Transit). content may be
// overwritten; a MAC must not retain it.
type MAC func(m Method, content []byte) ([]byte, error)

// KeyMAC returns the MAC keyed with key, computed with crypto/hmac. Its
// errors are *FieldError values: devicePsk if key is empty (or, in FIPS
// 140-only mode, shorter than 14 bytes), signMethod if m is not valid or
// FIPS 140-only mode refuses it. They never contain the key.
func KeyMAC(key []byte) MAC {
	return func(m Method, content []byte) ([]byte, error) {
		newHash, _ := m.newHash()
		if newHash == nil {
			return nil, fieldError(fieldSignMethod, reasonSignMethod)
		}
		if len(key) == 0 {
			return nil, fieldError(fieldDevicePsk, reasonEmptyKey)
		}
		if fips140.Enforced() {
			if m != MethodHMACSHA256 {
				return nil, fieldError(fieldSignMethod, "must be HMAC_SHA256 in FIPS 140-only mode")
			}
			if len(key) < 14 {
				return nil, fieldError(fieldDevicePsk, "must be at least 14 bytes in FIPS 140-only mode")
			}
		}
		h := hmac.New(newHash, key)
		h.Write(content)
		return h.Sum(nil), nil
	}
}
