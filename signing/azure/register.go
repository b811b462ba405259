package azure

import (
	"errors"

	"github.com/signerd/signerd/device"
)

// signerd's names of the Azure platforms (device.ID.Platform, policy
// grants, Vault locations) and the URI schemes of their devices'
// certificate identities.
const (
	// PlatformHub is an IoT Hub device or module: ProductKey is the hub's
	// name, DeviceName the device id, Module the module id.
	PlatformHub = "azure"
	// SchemeHub names an IoT Hub device in a certificate:
	// azure-iot://{hub}/{deviceId}[/{moduleId}].
	SchemeHub = "azure-iot"
	// PlatformDPS is a DPS registration: ProductKey is the ID scope,
	// DeviceName the registration id.
	PlatformDPS = "azure-dps"
	// SchemeDPS names a DPS registration in a certificate:
	// azure-dps://{idScope}/{registrationId}.
	SchemeDPS = "azure-dps"
	// PlatformDPSGroup is a DPS symmetric-key enrollment group, the key
	// its registrations' keys derive from: ProductKey is the ID scope,
	// DeviceName the enrollment group id. It is a namespace of keys, not
	// of devices: no certificate names one, and no RPC signs for one.
	PlatformDPSGroup = "azure-dps-group"
)

// Field names of the enrollment group key's ID.
const (
	fieldGroup    = "group"
	fieldModule   = "module"
	reasonGroup   = "must be 1–128 characters of ASCII letters, digits and -._:, ending with a letter, digit or '-'"
	reasonNoDPSMd = "must be empty: DPS registrations and enrollment groups have no modules"
)

// ValidateGroupID checks a DPS enrollment group id. Microsoft's "How to
// manage device enrollments with Azure portal" (DPS, Create a symmetric key
// enrollment group: Group name) allows a case-insensitive string of up to
// 128 alphanumeric characters plus - . _ : whose last character is
// alphanumeric or '-': the rule of a registration id. It returns nil or a
// *FieldError for the group field.
func ValidateGroupID(s string) error {
	if ValidateRegistrationID(s) != nil {
		return fieldError(fieldGroup, reasonGroup)
	}
	return nil
}

// noModule refuses a module on the DPS platforms, which have none.
func noModule(module string) error {
	if module != "" {
		return fieldError(fieldModule, reasonNoDPSMd)
	}
	return nil
}

// The Azure platforms are registered with package device here, next to
// the rules that validate their names, so that every part of signerd that
// parses or checks an Azure ID (certificate identities, policy grants,
// Vault paths) applies the same rules.
func init() {
	device.Register(device.Platform{
		Name: PlatformHub, Scheme: SchemeHub, Products: true, Modules: true,
		Validate: func(id device.ID) error {
			errs := []error{ValidateHub(id.ProductKey), ValidateDeviceID(id.DeviceName)}
			if id.Module != "" {
				errs = append(errs, ValidateModuleID(id.Module))
			}
			return errors.Join(errs...)
		},
	})
	device.Register(device.Platform{
		Name: PlatformDPS, Scheme: SchemeDPS, Products: true,
		Validate: func(id device.ID) error {
			return errors.Join(ValidateIDScope(id.ProductKey), ValidateRegistrationID(id.DeviceName), noModule(id.Module))
		},
	})
	device.Register(device.Platform{
		Name: PlatformDPSGroup, Products: true,
		Validate: func(id device.ID) error {
			return errors.Join(ValidateIDScope(id.ProductKey), ValidateGroupID(id.DeviceName), noModule(id.Module))
		},
	})
}
