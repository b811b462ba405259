package azure

import (
	"time"

	"github.com/signerd/signerd/device"
)

// FieldError reports an invalid input field. It is [device.FieldError], so
// one errors.As finds the field of a bad Azure name and of a bad Alibaba
// name alike; it never contains the offending value.
type FieldError = device.FieldError

// Field names, in their JSON (camelCase) form.
const (
	fieldHub            = "hub"
	fieldHost           = "host"
	fieldDeviceID       = "deviceId"
	fieldModuleID       = "moduleId"
	fieldIDScope        = "idScope"
	fieldRegistrationID = "registrationId"
	fieldTTL            = "ttlSeconds"
	fieldTransport      = "transport"
)

// Length limits.
const (
	minHubLen   = 3
	maxHubLen   = 50
	maxIDLen    = 128 // device, module and registration ids
	maxHostLen  = 253
	maxLabelLen = 63
	// idScopePrefix starts every DPS ID scope; eight hex digits follow.
	idScopePrefix = "0ne"
	idScopeLen    = len(idScopePrefix) + 8
)

// Reasons. They state the rule, never the value.
const (
	reasonHub            = "must be 3–50 characters of [A-Za-z0-9-], not starting or ending with '-'"
	reasonHost           = "must be a DNS name of at most 253 characters: dot-separated labels of 1–63 characters of [A-Za-z0-9-], not starting or ending with '-'"
	reasonDeviceID       = "must be 1–128 characters of ASCII letters, digits and -.%_*?!(),:=@$'"
	reasonModuleID       = "must be 1–128 characters of ASCII letters, digits and -.%_*?!(),:=@$'"
	reasonIDScope        = "must be \"0ne\" followed by 8 hexadecimal digits"
	reasonRegistrationID = "must be 1–128 characters of ASCII letters, digits and -._:, ending with a letter, digit or '-'"
	reasonTTL            = "must be a whole number of seconds between 60 and 2592000, or 0 for the default 3600"
	reasonTransport      = "must be TLS or WebSocket over TLS"
)

// Token lifetimes. A request's TTL of 0 means DefaultTTL; one outside
// [MinTTL, MaxTTL] is refused rather than clamped, so that a caller never
// gets a credential that lives longer or shorter than it asked for.
const (
	DefaultTTL = time.Hour
	MinTTL     = time.Minute
	MaxTTL     = 30 * 24 * time.Hour
)

// fieldError returns a new *FieldError, allocated per call so that a caller
// that modifies one cannot affect another.
func fieldError(field, reason string) error {
	return &FieldError{Field: field, Reason: reason}
}

// Character classes, as bits in charClass.
const (
	classDigit uint8 = 1 << iota
	classLower
	classUpper
	classHex     // 0-9 a-f A-F
	classIDPunct // - . % _ * ? ! ( ) , : = @ $ '
	classRegPunct

	classAlnum = classDigit | classLower | classUpper
	classID    = classAlnum | classIDPunct
	classReg   = classAlnum | classRegPunct
)

// idPunct is the punctuation of a device or module id: the identity
// registry's list without '+' and '#'.
const idPunct = "-.%_*?!(),:=@$'"

// regPunct is the punctuation of a DPS registration id.
const regPunct = "-._:"

// charClass maps each byte to its classes. Bytes outside every allow-list,
// including every byte >= 0x80, map to 0.
var charClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= classDigit | classHex
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= classLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= classUpper
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] |= classHex
		t[c-'a'+'A'] |= classHex
	}
	for _, c := range []byte(idPunct) {
		t[c] |= classIDPunct
	}
	for _, c := range []byte(regPunct) {
		t[c] |= classRegPunct
	}
	return t
}()

// matches reports whether s has between minLen and maxLen bytes, each in
// one of the classes of mask.
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

// isLabel reports whether s is 1–maxLen characters of [A-Za-z0-9-] not
// starting or ending with '-'.
func isLabel(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&classAlnum == 0 && s[i] != '-' {
			return false
		}
	}
	return true
}

// ValidateHub checks an IoT hub's name, the first label of its host
// {hub}.azure-devices.net. Azure's naming rules (Microsoft.Devices/IotHubs
// in "Naming rules and restrictions for Azure resources") allow 3–50
// alphanumerics and hyphens, not ending with a hyphen; the name is also a
// DNS label, which cannot start with one. It returns nil or a *FieldError
// for the hub field.
func ValidateHub(s string) error {
	if !isLabel(s, minHubLen, maxHubLen) {
		return fieldError(fieldHub, reasonHub)
	}
	return nil
}

// ValidateHost checks a hub host set in the settings instead of
// {hub}.azure-devices.net (a national cloud, a custom domain, an IoT Edge
// gateway): a DNS name of at most 253 characters whose labels are 1–63
// characters of [A-Za-z0-9-] (RFC 1123), not starting or ending with '-'.
// It is framed into the username and the signed resource URI, so nothing
// else (no port, no path, no trailing dot) is accepted. It returns nil or
// a *FieldError for the host field.
func ValidateHost(s string) error {
	if len(s) == 0 || len(s) > maxHostLen {
		return fieldError(fieldHost, reasonHost)
	}
	for start := 0; start <= len(s); {
		end := start
		for end < len(s) && s[end] != '.' {
			end++
		}
		if !isLabel(s[start:end], 1, maxLabelLen) {
			return fieldError(fieldHost, reasonHost)
		}
		start = end + 1
	}
	return nil
}

// ValidateDeviceID checks an IoT Hub device id. Microsoft's identity
// registry ("Understand the identity registry in your IoT hub", device
// identity properties) allows a case-sensitive string of up to 128 ASCII
// 7-bit alphanumeric characters plus - . % _ * ? ! ( ) , : = @ $ ' and
// says '+' and '#' are not supported (the device SDKs cannot use them;
// they are MQTT topic wildcards). It returns nil or a *FieldError for the
// deviceId field.
func ValidateDeviceID(s string) error {
	if !matches(s, 1, maxIDLen, classID) {
		return fieldError(fieldDeviceID, reasonDeviceID)
	}
	return nil
}

// ValidateModuleID checks an IoT Hub module id: the same rule as a device
// id. The registry's module table lists '+' and '#' too, but notes that
// the device SDKs do not support them in a module id either, so they are
// refused. It returns nil or a *FieldError for the moduleId field.
func ValidateModuleID(s string) error {
	if !matches(s, 1, maxIDLen, classID) {
		return fieldError(fieldModuleID, reasonModuleID)
	}
	return nil
}

// ValidateIDScope checks a DPS ID scope. Microsoft documents only that the
// service generates it ("Azure IoT Hub Device Provisioning Service
// concepts", ID scope); every scope it issues, and every example in its
// documentation (such as 0ne00000A0A), is "0ne" followed by 8 hexadecimal
// digits, so that shape is required. It returns nil or a *FieldError for
// the idScope field.
func ValidateIDScope(s string) error {
	if len(s) != idScopeLen || s[:len(idScopePrefix)] != idScopePrefix ||
		!matches(s[len(idScopePrefix):], 8, 8, classHex) {
		return fieldError(fieldIDScope, reasonIDScope)
	}
	return nil
}

// ValidateRegistrationID checks a DPS registration id. Microsoft's DPS
// concepts ("Registration ID") allow a case-insensitive string of up to
// 128 alphanumeric characters plus - . _ : whose last character is
// alphanumeric or '-'. In a group enrollment the registration id becomes
// the device id in IoT Hub; every registration id is a valid device id. It
// returns nil or a *FieldError for the registrationId field.
func ValidateRegistrationID(s string) error {
	if !matches(s, 1, maxIDLen, classReg) {
		return fieldError(fieldRegistrationID, reasonRegistrationID)
	}
	if last := s[len(s)-1]; charClass[last]&classAlnum == 0 && last != '-' {
		return fieldError(fieldRegistrationID, reasonRegistrationID)
	}
	return nil
}

// ResolveTTL returns the lifetime of a token asked for with ttl: DefaultTTL
// for 0, ttl itself if it is a whole number of seconds in [MinTTL, MaxTTL],
// else a *FieldError for the ttlSeconds field.
func ResolveTTL(ttl time.Duration) (time.Duration, error) {
	if ttl == 0 {
		return DefaultTTL, nil
	}
	if ttl < MinTTL || ttl > MaxTTL || ttl%time.Second != 0 {
		return 0, fieldError(fieldTTL, reasonTTL)
	}
	return ttl, nil
}
