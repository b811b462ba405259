// Package azure holds Microsoft Azure IoT's sign rules for devices that log
// in with a symmetric key: the IoT Hub login of a device or module (a SAS
// token), the Device Provisioning Service (DPS) registration login, and the
// DPS derivation of a device's key from an enrollment group's key.
//
// An IoT Hub device logs in over MQTT 3.1.1 (TLS on 8883, or WebSocket over
// TLS on 443 at /$iothub/websocket) with
//
//	clientId: {deviceId}                      (module: {deviceId}/{moduleId})
//	username: {host}/{clientId}/?api-version=2021-04-12
//	password: SharedAccessSignature sr={enc(resource)}&sig={enc(sig)}&se={expiry}
//
// where host is {hub}.azure-devices.net unless set, resource is
// {host}/devices/{deviceId}[/modules/{moduleId}], sig is base64 of
// HMAC-SHA256 by the device's key of "{enc(resource)}\n{expiry}", and enc
// is encodeUriComponentStrict of Microsoft's azure-iot-common.
//
// A device of a DPS group enrollment registers at
// global.azure-devices-provisioning.net:8883 with
//
//	clientId: {registrationId}
//	username: {idScope}/registrations/{registrationId}/api-version=2019-03-31
//	password: SharedAccessSignature sr={idScope}/registrations/{registrationId}&sig={enc(sig)}&skn=registration&se={expiry}
//
// signed with its derived key, base64(HMAC-SHA256(groupKey,
// registrationId)). Once DPS has assigned it to a hub, the same derived key
// signs its IoT Hub login, its device id being its registration id.
//
// # Sources
//
// The formats follow the code devices run, Microsoft's Azure IoT SDK for
// Node.js, where it and the prose documentation could be read
// differently: azure-iot-common (SharedAccessSignature.create,
// encodeUriComponentStrict, hmacHash, endpoint.apiVersion), azure-iot-device
// (SharedAccessKeyAuthenticationProvider: the hub resource URI is
// URL-encoded before signing, '*' as "%2a"), azure-iot-device-mqtt (the hub
// clientId and username), azure-iot-security-symmetric-key (the DPS token:
// its resource URI is neither encoded nor signed encoded, skn=registration)
// and azure-iot-provisioning-device-mqtt (the DPS username). The SDKs'
// own product tags (&DeviceClientType=…, &ClientVersion=…) are left out:
// the services do not require them. testdata/vectors.json holds answers
// computed by those packages at pinned versions; tools/oracle/azure
// regenerates it, and the tests check every one byte for byte.
//
// The name rules follow Microsoft's documentation, cited on each
// validator: [ValidateHub] ("Naming rules and restrictions for Azure
// resources", Microsoft.Devices/IotHubs), [ValidateDeviceID] and
// [ValidateModuleID] ("Understand the identity registry in your IoT hub"),
// [ValidateRegistrationID] and [ValidateIDScope] (DPS concepts), and the
// derivation its "Derive a device key" example, which a test reproduces.
// All are ASCII allow-lists: no byte >= 0x80, no '/', '&', '#', '+',
// whitespace or control character can reach a clientId, username or
// token, so a caller cannot add a path segment, a token field or an MQTT
// wildcard.
//
// # Why the package is pure
//
// No I/O, no clock, no randomness, no keys: the issue time is an input,
// and every sign function takes a [MAC] computing HMAC-SHA256 with the
// device's key wherever it lives (in this process with [KeyMAC], or in
// Vault Transit). For a group enrollment, [DerivedMAC] turns the group
// key's MAC into the device key's MAC, so the group key itself is never
// needed here. Invalid input is refused with a [*FieldError] naming the
// field before any MAC is asked; a MAC answer of the wrong size is an
// error, never a token.
//
// # Lifetimes
//
// Tokens expire TTL after the issue time: [DefaultTTL] (one hour, the SDKs'
// default) when none is asked, otherwise a whole number of seconds in
// [MinTTL, MaxTTL] (one minute to 30 days); anything else is refused, not
// clamped.
package azure
