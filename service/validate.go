package service

import (
	"github.com/signerd/signerd/device"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// violations collects every bad field of a request, so that a caller learns
// about all of them at once.
type violations []violation

// add records err, if any, against field.
func (vs *violations) add(field string, err error) {
	if err != nil {
		*vs = append(*vs, violation{field: field, reason: reason(err)})
	}
}

// device validates a device's names and client id, with prefix before each
// field name ("" or e.g. "sub_devices[3]."), and returns the client id with
// the console's default {productKey}.{deviceName} applied. It reports
// whether both names are valid.
func (vs *violations) device(prefix, productKey, deviceName, clientID string) (string, bool) {
	pkErr, dnErr := device.ValidateProductKey(productKey), device.ValidateDeviceName(deviceName)
	vs.add(prefix+"product_key", pkErr)
	vs.add(prefix+"device_name", dnErr)
	namesOK := pkErr == nil && dnErr == nil
	if clientID != "" {
		vs.add(prefix+"client_id", signing.ValidateClientID(clientID))
		return clientID, namesOK
	}
	clientID = productKey + "." + deviceName
	// Both names can be valid and still make a default longer than the
	// platform's 64 characters: then the caller must choose one.
	if namesOK && signing.ValidateClientID(clientID) != nil {
		*vs = append(*vs, violation{field: prefix + "client_id",
			reason: "required when the default {product_key}.{device_name} is longer than 64 characters"})
	}
	return clientID, namesOK
}
