package huawei

import (
	"time"

	"github.com/signerd/signerd/device"
)

// FieldError reports an invalid input field; it is [device.FieldError]. It
// never contains the offending value.
type FieldError = device.FieldError

// Field names, in their REST/JSON (camelCase) form.
const (
	fieldDeviceID = "deviceId"
	fieldHost     = "host"
	fieldIssuedAt = "issuedAt"
	fieldSecret   = "secret"
)

const (
	maxDeviceIDLen = 128
	maxHostLen     = 253
	maxLabelLen    = 63
)

// Reasons: they state the rule, never the value.
const (
	reasonDeviceID = "must be 1–128 characters of [A-Za-z0-9_-]"
	reasonHost     = "must be a DNS name of at most 253 characters: dot-separated labels of 1–63 characters of [A-Za-z0-9-], not starting or ending with '-'"
	reasonIssuedAt = "must be between 1970 and 9999 (UTC)"
	reasonEmpty    = "must not be empty"
)

func fieldError(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// ValidateDeviceID checks that s is an IoTDA device_id: 1–128 characters of
// letters, digits, '_' and '-' ("长度不超过128，只允许字母、数字、下划线（_）、
// 连接符（-）的组合", the device_id of AddDevice,
// https://support.huaweicloud.com/api-iothub/iot_06_v5_0046.html, and of
// every other device API of the IoTDA API reference).
// Platform-assigned ids are "{product_id}_{node_id}". Every byte >= 0x80 is
// refused.
//
// The clientId "{device_id}_0_{t}_{timestamp}" stays unambiguous although
// '_' is allowed in the id: the last three '_'-separated fields have a fixed
// shape, so the id is everything before them.
func ValidateDeviceID(s string) error {
	if len(s) == 0 || len(s) > maxDeviceIDLen {
		return fieldError(fieldDeviceID, reasonDeviceID)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' {
			return fieldError(fieldDeviceID, reasonDeviceID)
		}
	}
	return nil
}

// ValidateHost checks that s is the MQTT host of an IoTDA instance, as the
// instance's access details show it (such as
// "a1b2c3d4e5.st1.iotda-device.cn-north-4.myhuaweicloud.com"): a DNS name of
// at most 253 characters, dot-separated labels of 1–63 characters of
// [A-Za-z0-9-] that neither start nor end with '-'. An IPv4 address passes.
// No scheme, port, path or trailing dot. The host is per instance, so there
// is no default: settings must name it.
func ValidateHost(s string) error {
	if len(s) == 0 || len(s) > maxHostLen {
		return fieldError(fieldHost, reasonHost)
	}
	for start := 0; start <= len(s); {
		end := start
		for end < len(s) && s[end] != '.' {
			end++
		}
		label := s[start:end]
		if len(label) == 0 || len(label) > maxLabelLen || label[0] == '-' || label[len(label)-1] == '-' {
			return fieldError(fieldHost, reasonHost)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return fieldError(fieldHost, reasonHost)
			}
		}
		start = end + 1
	}
	return nil
}

// validateIssuedAt checks that the issue time has a four-digit year, so
// that the timestamp is YYYYMMDDHH.
func validateIssuedAt(t time.Time) error {
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return fieldError(fieldIssuedAt, reasonIssuedAt)
	}
	return nil
}
