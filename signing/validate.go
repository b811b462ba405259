package signing

// FieldError reports an invalid input field. Field is the field's JSON
// (camelCase) name, such as "productKey"; Reason describes the rule the value
// broke. A FieldError never contains the offending value, so it is safe to
// log or return to a client even when the value is a secret.
type FieldError struct {
	Field  string
	Reason string
}

// Error returns the field name and the reason, such as
// "productKey: must be 1–32 characters of [A-Za-z0-9]".
func (e *FieldError) Error() string {
	return e.Field + ": " + e.Reason
}

// Length limits of the IoT Platform identifiers.
const (
	maxProductKeyLen = 32
	minDeviceNameLen = 4
	maxDeviceNameLen = 32
	maxClientIDLen   = 64
	maxTimestampLen  = 19
)

// Field names, in their JSON (camelCase) form.
const (
	fieldProductKey   = "productKey"
	fieldDeviceName   = "deviceName"
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
	reasonProductKey = "must be 1–32 characters of [A-Za-z0-9]"
	reasonDeviceName = "must be 4–32 characters of [A-Za-z0-9_.@:-]"
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
	classDeviceNamePunct // - _ . @ :
	classClientIDPunct   // _ . : @ -

	classAlnum      = classDigit | classLower | classUpper
	classDeviceName = classAlnum | classDeviceNamePunct
	classClientID   = classAlnum | classClientIDPunct
	classLabel      = classDigit | classLower // plus '-', checked separately
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
	for _, c := range []byte("-_.@:") {
		t[c] |= classDeviceNamePunct
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

// ValidateProductKey checks that s is a ProductKey: 1–32 characters of
// [A-Za-z0-9]. It returns nil or a *FieldError for the productKey field.
func ValidateProductKey(s string) error {
	if !matches(s, 1, maxProductKeyLen, classAlnum) {
		return fieldError(fieldProductKey, reasonProductKey)
	}
	return nil
}

// ValidateDeviceName checks that s is a DeviceName: 4–32 characters of
// ASCII letters, digits and "-_.@:". It returns nil or a *FieldError for the
// deviceName field.
func ValidateDeviceName(s string) error {
	if !matches(s, minDeviceNameLen, maxDeviceNameLen, classDeviceName) {
		return fieldError(fieldDeviceName, reasonDeviceName)
	}
	return nil
}

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
