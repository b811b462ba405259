package tencent

import (
	"errors"

	"github.com/signerd/signerd/device"
)

// PlatformName is the platform's name in device IDs, policy grants, Vault
// locations and the platforms file.
const PlatformName = "tencent"

// init registers Tencent devices' names with package device, so that every
// layer (certificate identities tencent-iot://{productId}/{deviceName},
// policy grants, Vault paths) reads them by this package's rules.
func init() {
	device.Register(device.Platform{
		Name:     PlatformName,
		Scheme:   "tencent-iot",
		Products: true,
		Validate: validateID,
	})
}

// validateID checks each part of a Tencent device's ID, naming them as the
// API does: a product ID and a device name, and no module.
func validateID(id device.ID) error {
	var module error
	if id.Module != "" {
		module = fieldError("module", "must be empty: Tencent devices have no modules")
	}
	return errors.Join(ValidateProductID(id.ProductKey), ValidateDeviceName(id.DeviceName), module)
}
