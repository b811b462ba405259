package onenet

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"strconv"
)

// Method is the HMAC algorithm of the token's sign ("支持md5、sha1、sha256").
// The zero value, MethodUnspecified, is not a valid method.
type Method int

// The methods OneNET accepts.
const (
	MethodUnspecified Method = iota
	MethodSHA256
	MethodSHA1
	MethodMD5
)

// DefaultMethod is the method of a request that names none.
const DefaultMethod = MethodSHA256

// String returns the API's name of m ("SHA256", "SHA1", "MD5"), or
// "Method(n)" if m is not valid.
func (m Method) String() string {
	switch m {
	case MethodSHA256:
		return "SHA256"
	case MethodSHA1:
		return "SHA1"
	case MethodMD5:
		return "MD5"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// ParseMethod returns the method the API names s: "SHA256", "SHA1" or
// "MD5", exactly; the empty string (no method asked for) is
// [DefaultMethod]. Otherwise it returns a *FieldError for signMethod.
func ParseMethod(s string) (Method, error) {
	switch s {
	case "":
		return DefaultMethod, nil
	case "SHA256":
		return MethodSHA256, nil
	case "SHA1":
		return MethodSHA1, nil
	case "MD5":
		return MethodMD5, nil
	}
	return MethodUnspecified, fieldError(fieldSignMethod, reasonSignMethod)
}

// tokenName is m's name in the token and the string to sign, lower case as
// the documentation writes it.
func (m Method) tokenName() string {
	switch m {
	case MethodSHA256:
		return "sha256"
	case MethodSHA1:
		return "sha1"
	case MethodMD5:
		return "md5"
	}
	return ""
}

func (m Method) newHash() (func() hash.Hash, int) {
	switch m {
	case MethodSHA256:
		return sha256.New, sha256.Size
	case MethodSHA1:
		return sha1.New, sha1.Size
	case MethodMD5:
		return md5.New, md5.Size
	}
	return nil, 0
}
