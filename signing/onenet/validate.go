package onenet

import (
	"time"

	"github.com/signerd/signerd/device"
)

// FieldError reports an invalid input field; it is [device.FieldError]. It
// never contains the offending value.
type FieldError = device.FieldError

// Field names, in their REST/JSON (camelCase) form.
const (
	fieldProductID  = "productId"
	fieldDeviceName = "deviceName"
	fieldSignMethod = "signMethod"
	fieldTTL        = "ttlSeconds"
	fieldIssuedAt   = "issuedAt"
	fieldDeviceKey  = "deviceKey"
	fieldRes        = "res"
	fieldExpiresAt  = "expiresAt"
)

const (
	maxProductIDLen  = 32
	maxDeviceNameLen = 64
)

// Reasons: they state the rule, never the value.
const (
	reasonProductID  = "must be 1–32 characters of [A-Za-z0-9]"
	reasonDeviceName = "must be 1–64 characters of [A-Za-z0-9_-]"
	reasonSignMethod = "must be SHA256, SHA1 or MD5"
	reasonTTL        = "must be 0 (default 3600) or a whole number of seconds between 60 and 2592000"
	reasonIssuedAt   = "must be between 1970 and 9999 (UTC)"
	reasonEmptyKey   = "must not be empty"
	reasonRes        = "must be products/{productId} or products/{productId}/devices/{deviceName}"
	reasonExpiresAt  = "must not be negative"
)

func fieldError(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// ValidateProductID checks that s is a OneNET product ID: 1–32 characters
// of [A-Za-z0-9]. OneNET assigns product IDs: 10 letters and digits on the
// current platform (Ck2AF9QD2K, N57oL1l2fe in its API examples,
// https://iot.10086.cn/doc/iot_platform/book/api/common/registDeviceIdentity.html),
// digits on the legacy one (123123 in the token documentation,
// https://open.iot.10086.cn/doc/multiprotocol/book/manual/auth/token.html). No
// character outside [A-Za-z0-9] appears in either, and none of them needs
// URL-encoding in the token's res.
func ValidateProductID(s string) error {
	if len(s) == 0 || len(s) > maxProductIDLen {
		return fieldError(fieldProductID, reasonProductID)
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return fieldError(fieldProductID, reasonProductID)
		}
	}
	return nil
}

// ValidateDeviceName checks that s is a OneNET device name: 1–64
// characters of letters, digits, '_' and '-'.
//
// The copies of OneNET's documentation at hand while this was written give
// no character rule for device names, only examples (mydev and
// products/123123/devices/78329710 in the token documentation, ceshi-0003
// in the device API, DEV867435057486946 in its Java sample), which this
// rule admits. It is deliberately narrow: it leaves out '/', which would add
// a level to res = products/{pid}/devices/{name}, and every character the
// token's URL-encoding would change, so a name that passes means the same
// thing in the token, the topic and the clientId. Widen it only from
// OneNET's own rule.
func ValidateDeviceName(s string) error {
	if len(s) == 0 || len(s) > maxDeviceNameLen {
		return fieldError(fieldDeviceName, reasonDeviceName)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' {
			return fieldError(fieldDeviceName, reasonDeviceName)
		}
	}
	return nil
}

// ValidateTTL checks a requested lifetime: 0 (the default, [DefaultTTL]) or
// a whole number of seconds in [MinTTL, MaxTTL]. A TTL outside the limits is
// refused, never clamped.
func ValidateTTL(ttl time.Duration) error {
	if ttl == 0 {
		return nil
	}
	if ttl < MinTTL || ttl > MaxTTL || ttl%time.Second != 0 {
		return fieldError(fieldTTL, reasonTTL)
	}
	return nil
}

func validateIssuedAt(t time.Time) error {
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return fieldError(fieldIssuedAt, reasonIssuedAt)
	}
	return nil
}

// validateRes checks that res is "products/{productId}" or
// "products/{productId}/devices/{deviceName}" with valid names.
func validateRes(res string) error {
	const products, devices = "products/", "/devices/"
	if len(res) <= len(products) || res[:len(products)] != products {
		return fieldError(fieldRes, reasonRes)
	}
	rest := res[len(products):]
	pid, name := rest, ""
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			if len(rest)-i <= len(devices) || rest[i:i+len(devices)] != devices {
				return fieldError(fieldRes, reasonRes)
			}
			pid, name = rest[:i], rest[i+len(devices):]
			if ValidateDeviceName(name) != nil {
				return fieldError(fieldRes, reasonRes)
			}
			break
		}
	}
	if ValidateProductID(pid) != nil {
		return fieldError(fieldRes, reasonRes)
	}
	return nil
}
