package aliyun

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"strconv"
)

// Method is an HMAC algorithm accepted by the IoT Platform. The zero value,
// MethodUnspecified, is not a valid method.
type Method int

// The supported signing methods.
const (
	MethodUnspecified Method = iota
	MethodHMACSHA256
	MethodHMACSHA1
	MethodHMACMD5
)

// String returns the name the IoT Platform uses for m, such as "hmacsha256",
// or "Method(n)" if m is not a valid method.
func (m Method) String() string {
	switch m {
	case MethodHMACSHA256:
		return "hmacsha256"
	case MethodHMACSHA1:
		return "hmacsha1"
	case MethodHMACMD5:
		return "hmacmd5"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// ParseMethod returns the method named s, which must be exactly one of
// "hmacsha256", "hmacsha1" or "hmacmd5". Otherwise it returns a *FieldError
// for the signMethod field.
func ParseMethod(s string) (Method, error) {
	switch s {
	case "hmacsha256":
		return MethodHMACSHA256, nil
	case "hmacsha1":
		return MethodHMACSHA1, nil
	case "hmacmd5":
		return MethodHMACMD5, nil
	}
	return MethodUnspecified, fieldError(fieldSignMethod, reasonSignMethod)
}

// newHash returns the hash constructor and digest size of m, or nil and 0
// if m is not valid.
func (m Method) newHash() (func() hash.Hash, int) {
	switch m {
	case MethodHMACSHA256:
		return sha256.New, sha256.Size
	case MethodHMACSHA1:
		return sha1.New, sha1.Size
	case MethodHMACMD5:
		return md5.New, md5.Size
	}
	return nil, 0
}

// Transport is the network transport a device connects over. The zero
// value, TransportUnspecified, is not a valid transport.
type Transport int

// The supported transports.
const (
	TransportUnspecified Transport = iota
	TransportTLS
	TransportTCP
	TransportWebSocketTLS
)

// String returns "tls", "tcp" or "wss", or "Transport(n)" if t is not a
// valid transport.
func (t Transport) String() string {
	switch t {
	case TransportTLS:
		return "tls"
	case TransportTCP:
		return "tcp"
	case TransportWebSocketTLS:
		return "wss"
	}
	return "Transport(" + strconv.Itoa(int(t)) + ")"
}

// SecureMode returns the securemode value the IoT Platform expects in the
// CONNECT clientId for t: 2 for TLS and WebSocket over TLS, 3 for plain TCP.
// It returns 0 if t is not a valid transport.
func (t Transport) SecureMode() int {
	switch t {
	case TransportTLS, TransportWebSocketTLS:
		return 2
	case TransportTCP:
		return 3
	}
	return 0
}

// secureModeDigit is SecureMode as an ASCII digit, for framing.
func (t Transport) secureModeDigit() byte {
	return byte('0' + t.SecureMode())
}
