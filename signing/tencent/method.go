package tencent

import (
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"strconv"
)

// Method is the HMAC algorithm of the password. The zero value,
// MethodUnspecified, is not a valid method.
type Method int

// The methods the platform accepts ("可选的值有 hmacsha256 和 hmacsha1").
const (
	MethodUnspecified Method = iota
	MethodHMACSHA256
	MethodHMACSHA1
)

// DefaultMethod is the method of a request that names none.
const DefaultMethod = MethodHMACSHA256

// String returns the API's name of m ("HMAC_SHA256", "HMAC_SHA1"), or
// "Method(n)" if m is not valid.
func (m Method) String() string {
	switch m {
	case MethodHMACSHA256:
		return "HMAC_SHA256"
	case MethodHMACSHA1:
		return "HMAC_SHA1"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// ParseMethod returns the method the API names s: "HMAC_SHA256" or
// "HMAC_SHA1", exactly; the empty string (no method asked for) is
// [DefaultMethod]. Otherwise it returns a *FieldError for signMethod.
func ParseMethod(s string) (Method, error) {
	switch s {
	case "":
		return DefaultMethod, nil
	case "HMAC_SHA256":
		return MethodHMACSHA256, nil
	case "HMAC_SHA1":
		return MethodHMACSHA1, nil
	}
	return MethodUnspecified, fieldError(fieldSignMethod, reasonSignMethod)
}

// passwordSuffix is the method's name after the password's ';'.
func (m Method) passwordSuffix() string {
	switch m {
	case MethodHMACSHA256:
		return "hmacsha256"
	case MethodHMACSHA1:
		return "hmacsha1"
	}
	return ""
}

// newHash returns the hash and digest size of m, or nil and 0.
func (m Method) newHash() (func() hash.Hash, int) {
	switch m {
	case MethodHMACSHA256:
		return sha256.New, sha256.Size
	case MethodHMACSHA1:
		return sha1.New, sha1.Size
	}
	return nil, 0
}
