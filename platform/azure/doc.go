// Package azure serves Microsoft Azure IoT logins: the IoT Hub login of a
// device or module (RPC SignAzureMqttConnect) and the Device Provisioning
// Service registration login of a device of a symmetric-key enrollment
// group (RPC SignAzureDpsMqttConnect). The sign rules are package
// signing/azure's; this package reads the platform's settings, names the
// device for authorization, picks the key and assembles the answer.
//
// # Settings
//
// The "azure" section of the platforms file (-platforms), every key
// optional:
//
//	azure:
//	  vault:     # hub device and module keys (base64, as the portal shows them)
//	    mount: iot
//	    devicePath: "azure/{productKey}/devices/{deviceName}"
//	    modulePath: "azure/{productKey}/devices/{deviceName}/modules/{module}"
//	    field: primaryKey
//	  dpsVault:  # enrollment group keys (base64)
//	    mount: iot
//	    path: "azure-dps/{productKey}/groups/{deviceName}"
//	    field: primaryKey
//	  hubs:
//	    myhub:
//	      host: myhub.azure-devices.cn          # default {hub}.azure-devices.net
//	      dpsGroup: {idScope: 0ne00000A0A, group: grp1}
//	  dps:
//	    0ne00000A0A:
//	      groups:
//	        - {name: grp1, registrations: ["sensor-*", "exact-id"]}
//
// In the paths {productKey} is the hub (device keys) or the ID scope (group
// keys), {deviceName} the device id or the group id, {module} the module
// id; both paths must name {productKey}, so that two hubs' devices or two
// scopes' groups of one name never share a key. The section is read
// strictly: an unknown key is an error, and every bad setting is reported
// at once.
//
// A hub needs no settings: the IoT Hub RPC serves every hub with the
// defaults. A hub with dpsGroup has devices provisioned through that DPS
// enrollment group: their keys are not in Vault but derived from the
// group's (base64(HMAC-SHA256(groupKey, deviceId)), DPS's rule), and a
// device id that is no registration id is refused. Modules always have
// their own keys.
//
// The DPS RPC is served only when dps names an ID scope. A registration
// belongs to the first group with a pattern matching its id: an exact id
// or a prefix followed by "*" ("*" alone matches every id), compared
// case-insensitively as DPS compares registration ids. An unknown scope or
// a registration of no group is NOT_FOUND, as a device without a key is.
//
// # Answers
//
// IoT Hub: {hub host}:8883 over TLS (mqtts://) or :443 over WebSocket
// (wss://…/$iothub/websocket); DPS: global.azure-devices-provisioning.net:8883.
// Both MQTT 3.1.1 with a keep-alive of 180 seconds, as Microsoft's Node.js
// SDK connects (azure-iot-mqtt-base: "since the Azure Load Balancer TCP
// Idle timeout default is 4 minutes"); a clean session for DPS only, as the
// SDK's hub client keeps its session and its provisioning client does not.
//
// # Errors
//
// Bad request fields are *device.FieldError values, joined, named by their
// JSON names (hub, deviceId, moduleId, idScope, registrationId, ttlSeconds,
// transport); the service reports them as INVALID_ARGUMENT. No error holds
// a key: keys stay behind platform.Keys, which answers MACs only.
package azure
