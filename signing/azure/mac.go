package azure

import (
	"crypto/fips140"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MAC computes HMAC-SHA256 of content with a key the caller has chosen and
// returns it raw (32 bytes). Every sign function takes one, so that the
// rules here do not depend on where the key lives: in this process
// ([KeyMAC]) or in a service that never hands it out (Vault Transit,
// through package secrets).
//
// content is a buffer the MAC may overwrite and whose capacity it may use
// for its result: the sign functions do not read it after the call. A MAC
// must not retain it. Its errors are returned by the sign functions as
// they are.
type MAC func(content []byte) ([]byte, error)

// ErrKey is the error of a [KeyMAC] whose key is unusable: empty, or (in
// FIPS 140-only mode) shorter than 14 bytes. It never contains the key.
var ErrKey = errors.New("azure: unusable HMAC key")

// Minimum HMAC key length that crypto/hmac accepts in FIPS 140-only mode.
const fipsMinKeyLen = 112 / 8

// KeyMAC returns the MAC keyed with key, the decoded bytes of a device key
// (the portal's base64 primaryKey), a DPS group key, or a device key
// derived from one ([DeriveDeviceKey]), computed in this process. Its
// errors wrap [ErrKey].
func KeyMAC(key []byte) MAC {
	return func(content []byte) ([]byte, error) {
		if len(key) == 0 {
			return nil, fmt.Errorf("%w: the key is empty", ErrKey)
		}
		// crypto/hmac panics on a short key in FIPS 140-only mode; an
		// error is what a caller can map.
		if fips140.Enforced() && len(key) < fipsMinKeyLen {
			return nil, fmt.Errorf("%w: the key must be at least %d bytes in FIPS 140-only mode", ErrKey, fipsMinKeyLen)
		}
		h := hmac.New(sha256.New, key)
		h.Write(content) // hash.Hash.Write never returns an error.
		// The MAC goes over content, no longer needed: no allocation
		// when content has the digest's capacity.
		return h.Sum(content[:0]), nil
	}
}

// callMAC asks mac for the MAC of content and checks its size, so that a
// wrong answer from elsewhere never reaches a device.
func callMAC(mac MAC, content []byte) ([]byte, error) {
	sum, err := mac(content)
	if err != nil {
		return nil, err
	}
	if len(sum) != sha256.Size {
		return nil, fmt.Errorf("azure: the HMAC-SHA256 is %d bytes, want %d", len(sum), sha256.Size)
	}
	return sum, nil
}
