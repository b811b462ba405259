package device

import (
	"errors"
	"strings"
)

// ID names one device: the platform it logs in to, the product it belongs
// to there and its name within that product. The zero Platform is the
// Alibaba Cloud IoT Platform, whose rules this package holds itself; every
// other platform registers its own (see [Register]). Two IDs name the same
// device only if every field is equal, so a device of one platform is never
// taken for a device of another whose names coincide.
type ID struct {
	// Platform is a registered platform's name; "" is Alibaba.
	Platform string
	// ProductKey is the product (Azure: the hub; DPS: the ID scope); empty
	// on platforms whose device ids stand alone (Huawei IoTDA).
	ProductKey string
	// DeviceName is the device's name (its device id or registration id
	// where the platform calls it so).
	DeviceName string
	// Module is an Azure IoT Hub module of the device; empty otherwise.
	Module string
}

// String returns "{productKey}/{deviceName}" for an Alibaba device, the
// form [Parse] reads, and "{platform}:{productKey}/{deviceName}[/{module}]"
// (without "{productKey}/" where the platform has no products) for others.
// No valid name holds "/" or ":" in a position that makes two IDs print the
// same.
func (d ID) String() string {
	if d.Platform == "" {
		return d.ProductKey + "/" + d.DeviceName
	}
	s := d.Platform + ":"
	if d.ProductKey != "" {
		s += d.ProductKey + "/"
	}
	s += d.DeviceName
	if d.Module != "" {
		s += "/" + d.Module
	}
	return s
}

// Validate returns nil when every part is valid by its platform's rules,
// else the *FieldError of each part that is not, joined. An ID of a
// platform that is not registered is invalid.
func (d ID) Validate() error {
	if d.Platform == "" {
		var module error
		if d.Module != "" {
			module = &FieldError{Field: "module", Reason: "must be empty: Alibaba devices have no modules"}
		}
		return errors.Join(ValidateProductKey(d.ProductKey), ValidateDeviceName(d.DeviceName), module)
	}
	p, ok := Lookup(d.Platform)
	if !ok {
		return &FieldError{Field: "platform", Reason: "not a platform this server knows"}
	}
	return p.Validate(d)
}

// Parse reads "{productKey}/{deviceName}" and validates both parts. Neither
// part may contain "/", so the split is unambiguous and Parse(id.String())
// returns id for every valid id.
func Parse(s string) (ID, error) {
	pk, dn, ok := strings.Cut(s, "/")
	if !ok {
		return ID{}, errors.New(`device: want "{productKey}/{deviceName}"`)
	}
	id := ID{ProductKey: pk, DeviceName: dn}
	if err := id.Validate(); err != nil {
		return ID{}, err
	}
	return id, nil
}

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

// Length limits of the identifiers.
const (
	maxProductKeyLen = 32
	minDeviceNameLen = 4
	maxDeviceNameLen = 32
)

// Reasons. They describe the rule, never the value.
const (
	reasonProductKey = "must be 1–32 characters of [A-Za-z0-9]"
	reasonDeviceName = "must be 4–32 characters of [A-Za-z0-9_.@:-]"
)

// Character classes, as bits in charClass.
const (
	classAlnum uint8 = 1 << iota
	classDeviceNamePunct

	classDeviceName = classAlnum | classDeviceNamePunct
)

// charClass maps each byte to its classes. Bytes outside the allow-lists,
// including every byte >= 0x80, map to 0, so no look-alike Unicode name
// can pass.
var charClass = func() (t [256]uint8) {
	for _, r := range [][2]byte{{'0', '9'}, {'a', 'z'}, {'A', 'Z'}} {
		for c := r[0]; c <= r[1]; c++ {
			t[c] |= classAlnum
		}
	}
	for _, c := range []byte("-_.@:") {
		t[c] |= classDeviceNamePunct
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

// ValidateProductKey checks that s is a ProductKey: 1–32 characters of
// [A-Za-z0-9]. It returns nil or a *FieldError for the productKey field.
func ValidateProductKey(s string) error {
	if !matches(s, 1, maxProductKeyLen, classAlnum) {
		return &FieldError{Field: "productKey", Reason: reasonProductKey}
	}
	return nil
}

// ValidateDeviceName checks that s is a DeviceName: 4–32 characters of
// ASCII letters, digits and "-_.@:". It returns nil or a *FieldError for the
// deviceName field.
func ValidateDeviceName(s string) error {
	if !matches(s, minDeviceNameLen, maxDeviceNameLen, classDeviceName) {
		return &FieldError{Field: "deviceName", Reason: reasonDeviceName}
	}
	return nil
}
