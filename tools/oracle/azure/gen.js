// gen.js writes signing/azure/testdata/vectors.json: known answers for
// package signing/azure computed by Microsoft's Azure IoT SDK for Node.js,
// so that the Go code is checked against the code devices really run and
// not against a second reading of the same documentation.
//
// Run it through gen.sh (npm ci of the pinned package-lock.json, then node).
// Every case is one line below starting with hub(, dps( or derive(;
// signing/azure's TestVectorsMatchGenerator counts those lines and fails
// when the committed vectors were not regenerated after a change here.
//
// What comes from where (the SDK source lines followed, quoted from the
// pinned versions in package-lock.json):
//
// IoT Hub token: azure-iot-device's SharedAccessKeyAuthenticationProvider,
// the provider a device using a connection string runs
// (azure-iot-device/dist/sak_authentication_provider.js, _renewToken):
//
//	const newExpiry = Math.floor(Date.now() / 1000) + this._tokenValidTimeInSeconds;
//	let resourceString = this._credentials.host + '/devices/' + this._credentials.deviceId;
//	if (this._credentials.moduleId) {
//	    resourceString += '/modules/' + this._credentials.moduleId;
//	}
//	const resourceUri = (0, azure_iot_common_1.encodeUriComponentStrict)(resourceString);
//
// and _sign, which is azure-iot-common's SharedAccessSignature.create:
//
//	callback(null, azure_iot_common_1.SharedAccessSignature.create(resourceUri,
//	    this._credentials.sharedAccessKeyName, this._credentials.sharedAccessKey, expiry).toString());
//
// Date.now is set to the vector's issue time, the token lifetime is the
// vector's ttlSeconds. The same token is also made directly with
// SharedAccessSignature.create(encodeUriComponentStrict(resource), null,
// key, expiry) and the two must agree.
//
// IoT Hub clientId and username: azure-iot-device-mqtt's Mqtt transport
// (azure-iot-device-mqtt/dist/mqtt.js, _getBaseTransportConfig):
//
//	if (credentials.moduleId) {
//	    clientId = credentials.deviceId + '/' + credentials.moduleId;
//	}
//	else {
//	    clientId = credentials.deviceId;
//	}
//	const apiVersionString = azure_iot_common_1.endpoint.versionQueryString();
//	...
//	    username: credentials.host + '/' + clientId +
//	        '/' + apiVersionString + this._mid +
//	        '&DeviceClientType=' + encodeURIComponent(this._userAgentString),
//
// with versionQueryString() = '?api-version=' + '2021-04-12'
// (azure-iot-common/dist/endpoint.js). The SDK's own "&DeviceClientType=…"
// product tag is cut off: it names the SDK, the hub does not require it,
// and signerd does not pretend to be the Node SDK. _mid is '' for a device
// without a Plug and Play model id.
//
// DPS token: azure-iot-security-symmetric-key's SymmetricKeySecurityClient
// (azure-iot-security-symmetric-key/dist/symmetric_key.js,
// createSharedAccessSignature):
//
//	_callback(null, azure_iot_common_1.SharedAccessSignature.create(idScope + '/registrations/' + this._registrationId,
//	    'registration', this._symmetricKey, (0, azure_iot_common_1.anHourFromNow)()));
//
// The resource URI is passed as it is, not URL-encoded. anHourFromNow() is
// Math.ceil(Date.now() / 1000 + 3600), so Date.now is set to
// (expiry - 3600) s to obtain the vector's expiry.
//
// DPS clientId and username: azure-iot-provisioning-device-mqtt's Mqtt
// transport (azure-iot-provisioning-device-mqtt/dist/mqtt.js, _connect):
//
//	clientId: request.registrationId,
//	...
//	username: request.idScope + '/registrations/' + request.registrationId + '/api-version=' +
//	    azure_iot_provisioning_device_1.ProvisioningDeviceConstants.apiVersion + '&ClientVersion=' +
//	    encodeURIComponent(azure_iot_provisioning_device_1.ProvisioningDeviceConstants.userAgent),
//
// with apiVersion '2019-03-31' (azure-iot-provisioning-device/dist/constants.js);
// "&ClientVersion=…" is cut off as above.
//
// DPS device key derivation: azure-iot-common's hmacHash
// (azure-iot-common/dist/authorization.js):
//
//	const hmac = crypto.createHmac('sha256', Buffer.from(password, 'base64'));
//	hmac.update(stringToSign);
//	return hmac.digest('base64');
//
// called as hmacHash(groupKey, registrationId), which reproduces the
// documented example of `az iot dps enrollment-group compute-device-key`
// (learn.microsoft.com/azure/iot-dps/how-to-legacy-device-symm-key, "Derive
// a device key"); the script stops if it does not.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const common = require('azure-iot-common');
// hmacHash is not re-exported by the package's entry point (common.js).
const { hmacHash } = require('azure-iot-common/dist/authorization.js');
const { SharedAccessKeyAuthenticationProvider } = require('azure-iot-device');
const { Mqtt: HubMqtt } = require('azure-iot-device-mqtt');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { Mqtt: DpsMqtt } = require('azure-iot-provisioning-device-mqtt');

const out = process.argv[2] || path.join(__dirname, '..', '..', '..', 'signing', 'azure', 'testdata', 'vectors.json');

// key returns a base64 key of n bytes, made from label so that every run
// writes the same file.
function key(label, n) {
  let b = Buffer.alloc(0);
  for (let i = 0; b.length < n; i++) {
    b = Buffer.concat([b, crypto.createHash('sha512').update(label + '#' + i).digest()]);
  }
  return b.subarray(0, n).toString('base64');
}

// Every punctuation character signerd accepts in a device or module id
// (Microsoft's identity registry list without '+' and '#', which the device
// SDKs do not support).
const idPunct = "-.%_*?!(),:=@$'";
// Every punctuation character of a DPS registration id.
const regPunct = '-._:';

const cases = { hub: [], dps: [], derive: [] };
const hub = (c) => cases.hub.push(c);
const dps = (c) => cases.dps.push(c);
const derive = (c) => cases.derive.push(c);

const docGroupKey = '8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==';
const docRegistrationId = 'sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6';
const docDerivedKey = 'Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=';

// IoT Hub device and module logins. host '' means the default
// {hub}.azure-devices.net; groupKey set means the device key is the one
// DPS derives from that group key for the device id.
hub({ name: 'device, 32-byte key, default ttl', hub: 'myhub', host: '', deviceId: 'dev-001', moduleId: '', key: key('k1', 32), issuedAt: 1700000000, ttlSeconds: 3600 });
hub({ name: 'device, 64-byte key', hub: 'contoso-iot-01', host: '', deviceId: 'thermostat67', moduleId: '', key: key('k2', 64), issuedAt: 1700000000, ttlSeconds: 86400 });
hub({ name: 'device, 16-byte key, min ttl', hub: 'abc', host: '', deviceId: 'A', moduleId: '', key: key('k3', 16), issuedAt: 1600000000, ttlSeconds: 60 });
hub({ name: 'device, 1-byte key, max ttl', hub: 'a'.repeat(49) + '0', host: '', deviceId: 'Z9', moduleId: '', key: key('k4', 1), issuedAt: 1750000000, ttlSeconds: 2592000 });
hub({ name: 'device id with every punctuation', hub: 'punct-hub', host: '', deviceId: 'a' + idPunct + 'z', moduleId: '', key: key('k5', 32), issuedAt: 1700000123, ttlSeconds: 3600 });
hub({ name: 'device id of punctuation only', hub: 'punct-hub', host: '', deviceId: idPunct, moduleId: '', key: key('k6', 33), issuedAt: 1700000456, ttlSeconds: 7200 });
hub({ name: 'device id of 128 characters', hub: 'long-ids', host: '', deviceId: 'D'.repeat(64) + 'd'.repeat(63) + '9', moduleId: '', key: key('k7', 32), issuedAt: 1800000000, ttlSeconds: 3600 });
hub({ name: 'device, custom host', hub: 'myhub', host: 'myhub.azure-devices.cn', deviceId: 'dev-002', moduleId: '', key: key('k8', 32), issuedAt: 1700000000, ttlSeconds: 3600 });
hub({ name: 'device, custom gateway host', hub: 'myhub', host: 'edge-gw.factory.example', deviceId: 'leaf:7', moduleId: '', key: key('k9', 48), issuedAt: 1710000000, ttlSeconds: 600 });
hub({ name: 'module', hub: 'myhub', host: '', deviceId: 'dev-001', moduleId: 'mod1', key: key('m1', 32), issuedAt: 1700000000, ttlSeconds: 3600 });
hub({ name: 'module with every punctuation', hub: 'myhub', host: '', deviceId: 'edge(1)', moduleId: 'm' + idPunct + 'M', key: key('m2', 32), issuedAt: 1700000789, ttlSeconds: 3600 });
hub({ name: 'module ids of 128 characters', hub: 'long-ids', host: '', deviceId: 'x'.repeat(128), moduleId: 'Y'.repeat(128), key: key('m3', 20), issuedAt: 2000000000, ttlSeconds: 2592000 });
hub({ name: 'module, custom host', hub: 'edgehub', host: 'EdgeHub.Azure-Devices.net', deviceId: 'edge-01', moduleId: '$edgeAgent', key: key('m4', 32), issuedAt: 1700000000, ttlSeconds: 120 });
hub({ name: 'module, 64-byte key, far expiry', hub: 'myhub', host: '', deviceId: "o'brien", moduleId: 'a=b,c', key: key('m5', 64), issuedAt: 4102444800, ttlSeconds: 3600 });
hub({ name: 'group-enrolled device', hub: 'myhub', host: '', deviceId: 'sensor-0001', moduleId: '', groupKey: key('g1', 64), issuedAt: 1700000000, ttlSeconds: 3600 });
hub({ name: 'group-enrolled device, documented group key', hub: 'myhub', host: '', deviceId: docRegistrationId, moduleId: '', groupKey: docGroupKey, issuedAt: 1700000000, ttlSeconds: 3600 });

// DPS registration logins with the key derived from a group key.
dps({ name: 'documented example', idScope: '0ne00000A0A', registrationId: docRegistrationId, groupKey: docGroupKey, issuedAt: 1700000000, ttlSeconds: 3600 });
dps({ name: 'lower-case scope hex, 32-byte group key', idScope: '0ne0001f2c3', registrationId: 'sensor-0001', groupKey: key('g1', 32), issuedAt: 1700000000, ttlSeconds: 3600 });
dps({ name: 'every registration punctuation', idScope: '0ne12345678', registrationId: 'a' + regPunct + 'z', groupKey: key('g2', 64), issuedAt: 1700000321, ttlSeconds: 60 });
dps({ name: 'registration id ending in dash', idScope: '0neABCDEF09', registrationId: 'Dev:01-', groupKey: key('g3', 16), issuedAt: 1650000000, ttlSeconds: 2592000 });
dps({ name: 'registration id of 128 characters', idScope: '0ne00000A0A', registrationId: 'r'.repeat(127) + '0', groupKey: key('g4', 64), issuedAt: 1800000000, ttlSeconds: 86400 });
dps({ name: 'one-character registration id', idScope: '0neFFFFFFFF', registrationId: '7', groupKey: key('g5', 48), issuedAt: 2000000000, ttlSeconds: 3600 });

// DPS device key derivations alone.
derive({ name: 'documented compute-device-key example', groupKey: docGroupKey, registrationId: docRegistrationId, documented: docDerivedKey });
derive({ name: '32-byte group key', groupKey: key('d1', 32), registrationId: 'device-1' });
derive({ name: '16-byte group key', groupKey: key('d2', 16), registrationId: 'Device.2_b:c' });
derive({ name: '1-byte group key', groupKey: key('d3', 1), registrationId: 'x' });
derive({ name: '100-byte group key (longer than a SHA-256 block)', groupKey: key('d4', 100), registrationId: 'mac-a1-b2-c3' });
derive({ name: '128-character registration id', groupKey: key('d5', 64), registrationId: 'q'.repeat(128) });

// withNow runs fn with Date.now returning ms.
function withNow(ms, fn) {
  const real = Date.now;
  Date.now = () => ms;
  try {
    return fn();
  } finally {
    Date.now = real;
  }
}

// stripSuffix cuts the SDK's product tag off a username.
function stripSuffix(username, marker) {
  const i = username.indexOf(marker);
  if (i < 0) throw new Error('username without ' + marker + ': ' + username);
  return username.slice(0, i);
}

function promise(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

// A stand-in for the MQTT connection, which the transports take as an
// argument: nothing here connects anywhere.
function fakeMqttBase(onConnect) {
  return { on() {}, connect: onConnect };
}

async function hubVector(c) {
  const host = c.host || c.hub + '.azure-devices.net';
  let deviceKey = c.key;
  if (c.groupKey) deviceKey = hmacHash(c.groupKey, c.deviceId);
  const credentials = { host, deviceId: c.deviceId, sharedAccessKey: deviceKey };
  if (c.moduleId) credentials.moduleId = c.moduleId;

  const provider = new SharedAccessKeyAuthenticationProvider(credentials, c.ttlSeconds, c.ttlSeconds - 1);
  const signed = await withNow(c.issuedAt * 1000, () => promise((cb) => provider.getDeviceCredentials(cb)));
  provider.stop();
  const password = signed.sharedAccessSignature;

  const expiry = c.issuedAt + c.ttlSeconds;
  const resource = host + '/devices/' + c.deviceId + (c.moduleId ? '/modules/' + c.moduleId : '');
  const direct = common.SharedAccessSignature.create(common.encodeUriComponentStrict(resource), null, deviceKey, expiry).toString();
  if (direct !== password) throw new Error(c.name + ': provider and SharedAccessSignature.create disagree');

  const transport = new HubMqtt(provider, fakeMqttBase());
  const config = transport._getBaseTransportConfig(Object.assign({}, credentials, { sharedAccessSignature: password }));
  const v = {
    name: c.name,
    input: { hub: c.hub, host: c.host, deviceId: c.deviceId, moduleId: c.moduleId, issuedAt: c.issuedAt, ttlSeconds: c.ttlSeconds },
    expect: {
      clientId: config.clientId,
      username: stripSuffix(config.username, '&DeviceClientType='),
      password,
      expiresAt: expiry,
    },
  };
  if (c.groupKey) {
    v.input.groupKey = c.groupKey;
    v.expect.deviceKey = deviceKey;
  } else {
    v.input.key = c.key;
  }
  return v;
}

async function dpsVector(c) {
  const deviceKey = hmacHash(c.groupKey, c.registrationId);
  const expiry = c.issuedAt + c.ttlSeconds;
  const client = new SymmetricKeySecurityClient(c.registrationId, deviceKey);
  const sas = await withNow((expiry - 3600) * 1000, () => client.createSharedAccessSignature(c.idScope));
  const password = sas.toString();
  if (sas.se !== expiry) throw new Error(c.name + ': SDK expiry ' + sas.se + ', want ' + expiry);

  let config;
  const transport = new DpsMqtt(fakeMqttBase((cfg) => { config = cfg; }));
  transport.setSharedAccessSignature(password);
  transport._connect({ registrationId: c.registrationId, idScope: c.idScope, provisioningHost: 'global.azure-devices-provisioning.net' }, () => {});
  if (!config) throw new Error(c.name + ': the provisioning transport did not connect');
  if (config.sharedAccessSignature !== password) throw new Error(c.name + ': transport password differs');
  return {
    name: c.name,
    input: { idScope: c.idScope, registrationId: c.registrationId, groupKey: c.groupKey, issuedAt: c.issuedAt, ttlSeconds: c.ttlSeconds },
    expect: {
      deviceKey,
      clientId: config.clientId,
      username: stripSuffix(config.username, '&ClientVersion='),
      password,
      expiresAt: expiry,
    },
  };
}

function deriveVector(c) {
  const deviceKey = hmacHash(c.groupKey, c.registrationId);
  if (c.documented && deviceKey !== c.documented) {
    throw new Error(c.name + ': hmacHash gives ' + deviceKey + ', Microsoft documents ' + c.documented);
  }
  const v = { name: c.name, input: { groupKey: c.groupKey, registrationId: c.registrationId }, expect: { deviceKey } };
  if (c.documented) v.documented = true;
  return v;
}

async function main() {
  const doc = {
    comment: 'Generated by tools/oracle/azure/gen.js from Microsoft\'s Azure IoT SDK for Node.js; do not edit by hand.',
    sdk: {},
    hub: [],
    dps: [],
    derive: [],
  };
  for (const p of ['azure-iot-common', 'azure-iot-device', 'azure-iot-device-mqtt', 'azure-iot-security-symmetric-key', 'azure-iot-provisioning-device-mqtt']) {
    doc.sdk[p] = require(p + '/package.json').version;
  }
  for (const c of cases.hub) doc.hub.push(await hubVector(c));
  for (const c of cases.dps) doc.dps.push(await dpsVector(c));
  for (const c of cases.derive) doc.derive.push(deriveVector(c));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(doc, null, 2) + '\n');
  console.log('wrote %s: %d hub, %d dps, %d derive', out, doc.hub.length, doc.dps.length, doc.derive.length);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
