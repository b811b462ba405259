// Package aliyun holds the Alibaba Cloud IoT Platform's sign rules: the
// credentials a device presents when it logs in over MQTT, the HTTPS
// pre-verification and dynamic-registration forms, a gateway's sub-device
// logins, and the MQTT endpoint and other settings of a product.
//
// A device logs in with an MQTT CONNECT whose fields are
//
//	clientId: {clientId}|securemode={mode},signmethod={method},timestamp={ts}|
//	username: {deviceName}&{productKey}
//	password: lower-case hex HMAC(DeviceSecret, sign content)
//
// where the sign content concatenates the key and value of each parameter
// in key order, for example
//
//	clientId{c}deviceName{d}productKey{p}timestamp{t}
//
// The timestamp parameter (and its part of the clientId) is omitted when the
// request has no timestamp.
//
// # Why the package is pure
//
// The package performs no I/O: it does not read files, the network, the
// environment or the clock, it does not talk to Vault and it knows nothing
// about gRPC. Every result is a function of the arguments, which keeps the
// signing rules easy to test against fixed vectors and fuzz, and lets the
// layers that do have side effects (fetching a DeviceSecret, calling Vault,
// serving gRPC) be swapped without touching the rules. The only ambient
// state consulted is the Go runtime's FIPS 140-only switch
// (GODEBUG=fips140=only), so that a request the runtime would refuse yields
// an error instead of a panic.
//
// For the same reason, the sign functions ([SignConnect], [SignPreVerify],
// [SignRegister], [SignSubDeviceLogin]) do not hold keys: each takes a
// [MAC] that computes the HMAC of the sign content it builds, and checks
// the answer's size. The MAC may run in this process ([DeviceSecretMAC],
// [ProductSecretMAC], for callers that have the secret) or elsewhere (the
// service passes one that asks package secrets, which may ask Vault
// Transit), so there is one function per message whatever the key's home.
//
// # Product settings
//
// [Products] is the per-product settings table of the products file:
// endpoint (region, instance or host, ports), keep-alive and clean session
// handed to devices, the auth endpoint override for the platform client,
// and whether the product's keys are in Vault Transit. [ParseProducts]
// decodes it strictly from bytes (unknown keys and keys in the wrong case
// are errors, every problem is reported at once); the caller reads the
// file.
//
// # Input validation
//
// Every caller-supplied field is checked against a strict ASCII allow-list
// before it is framed into the CONNECT clientId or username (see
// [ConnectRequest.Validate]). None of the allow-lists contains '|', ',', '=',
// '&', whitespace, control characters or non-ASCII bytes, so a caller cannot
// smuggle an extra '|'-framed extension or an extra parameter into the
// CONNECT fields. Validation errors are [*FieldError] values that name the
// offending field and never repeat the value, so they cannot leak secrets.
package aliyun
