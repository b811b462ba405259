// Package device is the platform-neutral identity of one device: the
// (productKey, deviceName) pair every layer names a device by, and the rules
// a name must follow before any layer acts on it.
//
// It sits below auth, secrets, service and every platform package so that
// they can share the identity without importing each other: auth checks
// names in certificates and policies, secrets keys its lookups by [ID], and
// the platform packages validate the same fields of their messages. It
// imports nothing from signerd.
package device
