package tencent

import (
	"time"

	"github.com/signerd/signerd/device"
)

// FieldError reports an invalid input field; it is [device.FieldError], so
// one errors.As finds the field whatever the platform. It never contains the
// offending value.
type FieldError = device.FieldError

// Field names, in their REST/JSON (camelCase) form.
const (
	fieldProductID  = "productId"
	fieldDeviceName = "deviceName"
	fieldConnID     = "connId"
	fieldSignMethod = "signMethod"
	fieldTTL        = "ttlSeconds"
	fieldIssuedAt   = "issuedAt"
	fieldDevicePsk  = "devicePsk"
)

// Length rules.
const (
	productIDLen     = 10
	maxDeviceNameLen = 48
	connIDLen        = 5
)

// Reasons: they state the rule, never the value.
const (
	reasonProductID  = "must be 10 characters of [A-Z0-9]"
	reasonDeviceName = "must be 1–48 characters of [A-Za-z0-9:_-]"
	reasonConnID     = "must be 5 characters of [A-Za-z0-9]"
	reasonSignMethod = "must be HMAC_SHA256 or HMAC_SHA1"
	reasonTTL        = "must be 0 (default 3600) or a whole number of seconds between 60 and 2592000"
	reasonIssuedAt   = "must be between 1970 and 9999 (UTC)"
	reasonEmptyKey   = "must not be empty"
)

func fieldError(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Character classes, as bits in charClass.
const (
	classDigit uint8 = 1 << iota
	classUpper
	classLower
	classNamePunct // : _ -

	classAlnum     = classDigit | classUpper | classLower
	classProductID = classDigit | classUpper
	className      = classAlnum | classNamePunct
)

// charClass maps each byte to its classes; every byte outside the
// allow-lists, including every byte >= 0x80, maps to 0.
var charClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= classDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= classUpper
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= classLower
	}
	for _, c := range []byte(":_-") {
		t[c] |= classNamePunct
	}
	return t
}()

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

// ValidateProductID checks that s is a Tencent product ID: exactly 10
// characters of [A-Z0-9].
//
// Tencent assigns product IDs and documents no rule for them beyond their
// examples, all 10 upper-case letters and digits (EQPOKD5111, UTY5QRLMQY in
// the CreateProduct API reference, https://cloud.tencent.com/document/api/634/73646;
// 1A17RZR3XX in the MQTT access guide,
// https://cloud.tencent.com/document/product/1081/102803); the device SDKs hold
// it in a 10-character buffer (MAX_SIZE_OF_PRODUCT_ID 10 in
// qcloud-iot-explorer-sdk-embedded-c and qcloud-iot-sdk-embedded-c), so an
// SDK device cannot use a longer one. (One Explorer API example,
// "LJ0INDNU7Us", has 11 characters and a lower-case letter; next to
// M5AWDSEUYO in the same reference and the SDK's buffer it reads as a typo.) The
// fixed length is also what keeps the clientId "{productId}{deviceName}",
// which has no separator, unambiguous: with a variable length "AB"+"Cx" and
// "ABC"+"x" would be one client.
func ValidateProductID(s string) error {
	if !matches(s, productIDLen, productIDLen, classProductID) {
		return fieldError(fieldProductID, reasonProductID)
	}
	return nil
}

// ValidateDeviceName checks that s is a Tencent device name: 1–48 characters
// of [A-Za-z0-9:_-], the rule of CreateDevice in both IoT Hub
// ("命名规则：[a-zA-Z0-9:_-]{1,48}", https://cloud.tencent.com/document/api/634/71950)
// and IoT Explorer (https://cloud.tencent.com/document/api/1081/37178). None
// of these characters is ';', the username's separator.
func ValidateDeviceName(s string) error {
	if !matches(s, 1, maxDeviceNameLen, className) {
		return fieldError(fieldDeviceName, reasonDeviceName)
	}
	return nil
}

// ValidateConnID checks that s is a connection ID: exactly 5 characters of
// [A-Za-z0-9]. Tencent's C SDK draws 5 random characters from these classes
// (get_next_conn_id with MAX_CONN_ID_LEN 6, NUL included); the documentation
// calls it "一个随机字符串" (a random string) that helps the back end trace a
// connection.
func ValidateConnID(s string) error {
	if !matches(s, connIDLen, connIDLen, classAlnum) {
		return fieldError(fieldConnID, reasonConnID)
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

// validateIssuedAt checks that the issue time, plus the longest lifetime,
// is a Unix time the platform's decimal expiry can carry.
func validateIssuedAt(t time.Time) error {
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return fieldError(fieldIssuedAt, reasonIssuedAt)
	}
	return nil
}
