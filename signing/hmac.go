package signing

import (
	"crypto/fips140"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// Minimum HMAC key length that crypto/hmac accepts in FIPS 140-only mode.
const fipsMinKeyLen = 112 / 8

// HMACHex returns the lower-case hexadecimal HMAC of content keyed with
// secret, using method m. The secret must not be empty.
//
// It returns a *FieldError for the signMethod field if m is not valid, and
// for the secret field if secret is empty. When the program runs with
// GODEBUG=fips140=only, methods other than hmacsha256 and secrets shorter
// than 14 bytes are rejected with an error rather than a panic.
func HMACHex(m Method, secret []byte, content string) (string, error) {
	newHash, size := m.newHash()
	if newHash == nil {
		return "", fieldError(fieldSignMethod, reasonSignMethod)
	}
	if err := checkSecret(fieldSecret, m, secret); err != nil {
		return "", err
	}
	// One buffer holds the message and then the MAC, which macHex writes
	// over it.
	buf := make([]byte, len(content), max(len(content), size))
	copy(buf, content)
	return macHex(newHash, secret, buf), nil
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

// macHex returns the lower-case hex HMAC of msg keyed with secret. It
// overwrites msg, whose capacity must be at least the digest size, with the
// binary MAC.
func macHex(newHash func() hash.Hash, secret, msg []byte) string {
	h := hmac.New(newHash, secret)
	h.Write(msg) // hash.Hash.Write never returns an error.
	sum := h.Sum(msg[:0])
	var hx [2 * sha256.Size]byte // SHA-256 has the largest digest.
	n := hex.Encode(hx[:], sum)
	return string(hx[:n])
}
