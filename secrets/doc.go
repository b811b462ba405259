// Package secrets is where device secrets live: a small Store interface, an
// in-memory store for -dev and tests, and (in later files) the Vault backend
// and a cache in front of it.
//
// A Store hands out a device's secret to the signing code in the same process
// and to nobody else: errors name the device and the storage path, never the
// value.
package secrets
