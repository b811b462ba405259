// Package secrets is where device keys live and the one place that uses
// them.
//
// A Store looks a device's secret up: Memory for -dev and tests, Vault (KV
// version 2) in production, and Cache, a bounded, expiring Store in front
// of another. Registry reads ProductSecrets and writes the secrets that
// dynamic registration issues.
//
// A MACer answers the one question signing needs answered about a key:
// "the MAC of this content with this device's key, by this algorithm".
// LocalMACer does it over a Store, in this process; Transit does it in
// Vault's Transit engine, so that signerd never holds the key; Router
// sends each device to one of them, as its product's settings say. A new
// home for keys is a new MACer and a Router entry; the service and the
// platform's sign rules stay as they are. The package knows no platform:
// Algorithm is its own type, mapped from a platform's sign method by the
// service.
//
// Keys reach nobody outside the process: errors name the device and the
// storage path, never a value, and Secret redacts itself in every format.
package secrets
