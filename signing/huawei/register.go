package huawei

import (
	"errors"

	"github.com/signerd/signerd/device"
)

// PlatformName is the platform's name in device IDs, policy grants, Vault
// locations and the platforms file.
const PlatformName = "huawei"

// init registers IoTDA devices' names with package device, so that every
// layer (certificate identities huawei-iot://{deviceId}, policy grants,
// Vault paths) reads them by this package's rules. An IoTDA device id
// stands alone: it names its product itself ("{product_id}_{node_id}").
func init() {
	device.Register(device.Platform{
		Name:     PlatformName,
		Scheme:   "huawei-iot",
		Products: false,
		Validate: validateID,
	})
}

// validateID checks a Huawei device's ID: a device id, with no product and
// no module.
func validateID(id device.ID) error {
	var product, module error
	if id.ProductKey != "" {
		product = fieldError("productKey", "must be empty: an IoTDA device id stands alone")
	}
	if id.Module != "" {
		module = fieldError("module", "must be empty: IoTDA devices have no modules")
	}
	return errors.Join(product, ValidateDeviceID(id.DeviceName), module)
}
