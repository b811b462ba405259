package aliyun

import "github.com/signerd/signerd/device"

// FieldError reports an invalid input field. It is [device.FieldError], so
// one errors.As finds the field of a bad name and of a bad signing input
// alike; it never contains the offending value.
type FieldError = device.FieldError

// Length limits of the IoT Platform identifiers.
const (
	maxClientIDLen  = 64
	maxTimestampLen = 19
)

// Field names, in their JSON (camelCase) form.
const (
	fieldClientID     = "clientId"
	fieldTimestamp    = "timestamp"
	fieldSignMethod   = "signMethod"
	fieldTransport    = "transport"
	fieldDeviceSecret = "deviceSecret"
	fieldSecret       = "secret"
	fieldRegion       = "region"
	fieldInstanceID   = "instanceId"
	fieldHost         = "host"
	fieldTCPPort      = "tcpPort"
	fieldTLSPort      = "tlsPort"
	fieldWSSPort      = "wssPort"
)

// Reasons. They describe the rule, never the value.
const (
	reasonClientID   = "must be 1–64 characters of [A-Za-z0-9_.:@-]"
	reasonTimestamp  = "must be 1–19 decimal digits (milliseconds since the Unix epoch)"
	reasonSignMethod = "must be one of hmacsha256, hmacsha1, hmacmd5"
	reasonTransport  = "must be TLS, TCP or WebSocket over TLS"
	reasonEmpty      = "must not be empty"
	reasonLabel      = "must be a DNS label: 1–63 characters of [a-z0-9-], not starting or ending with '-'"
	reasonHost       = "must be a DNS name of at most 253 characters: dot-separated labels of 1–63 characters of [A-Za-z0-9-], not starting or ending with '-'"
	reasonPort       = "must be between 1 and 65535, or 0 for the default"
)

// fieldError returns a new *FieldError. Errors are allocated per call, so a
// caller that modifies one cannot affect another.
func fieldError(field, reason string) error {
	return &FieldError{Field: field, Reason: reason}
}

// Character classes, as bits in charClass.
const (
	classDigit uint8 = 1 << iota
	classLower
	classUpper
	classClientIDPunct // _ . : @ -

	classAlnum    = classDigit | classLower | classUpper
	classClientID = classAlnum | classClientIDPunct
	classLabel    = classDigit | classLower // plus '-', checked separately
)

// charClass maps each byte to its character classes. Bytes outside the
// allow-lists, including every byte >= 0x80, map to 0.
var charClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= classDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= classLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= classUpper
	}
	for _, c := range []byte("_.:@-") {
		t[c] |= classClientIDPunct
	}
	return t
}()

// matches reports whether s has between minLen and maxLen bytes, each of
// which is in one of the classes in mask.
func matches(s string, minLen, maxLen int, mask uint8) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&mask == 0 {
			return false
		}
	}
	return true
}

// ValidateProductKey is [device.ValidateProductKey]: the identity's rules
// are the platform-neutral ones every layer shares.
func ValidateProductKey(s string) error { return device.ValidateProductKey(s) }

// ValidateDeviceName is [device.ValidateDeviceName].
func ValidateDeviceName(s string) error { return device.ValidateDeviceName(s) }

// ValidateClientID checks that s is a device-chosen client ID: 1–64
// characters of [A-Za-z0-9_.:@-]. It returns nil or a *FieldError for the
// clientId field.
func ValidateClientID(s string) error {
	if !matches(s, 1, maxClientIDLen, classClientID) {
		return fieldError(fieldClientID, reasonClientID)
	}
	return nil
}

// ValidateTimestamp checks that s is a present timestamp: 1–19 decimal
// digits, the milliseconds since the Unix epoch. The empty string is
// rejected; a [ConnectRequest] expresses "no timestamp" by not calling this.
// It returns nil or a *FieldError for the timestamp field.
func ValidateTimestamp(s string) error {
	if !matches(s, 1, maxTimestampLen, classDigit) {
		return fieldError(fieldTimestamp, reasonTimestamp)
	}
	return nil
}

// validateMethod checks that m is one of the defined methods.
func validateMethod(m Method) error {
	if newHash, _ := m.newHash(); newHash == nil {
		return fieldError(fieldSignMethod, reasonSignMethod)
	}
	return nil
}

// validateTransport checks that t is one of the defined transports.
func validateTransport(t Transport) error {
	if t.SecureMode() == 0 {
		return fieldError(fieldTransport, reasonTransport)
	}
	return nil
}
