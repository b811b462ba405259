// Package huawei holds the MQTT login rules of Huawei Cloud IoTDA (设备接入)
// for secret-authenticated devices.
//
// A device logs in with
//
//	clientId: {device_id}_0_{0|1}_{YYYYMMDDHH}
//	username: {device_id}
//	password: hex(HMAC-SHA256(key = YYYYMMDDHH, message = secret))
//
// where YYYYMMDDHH is the UTC hour of the login, "0" after the device id
// says the id is a device id, and the next digit says whether the platform
// checks the timestamp against its clock (1) or not (0). The timestamp is
// the HMAC key and the secret the message: the sign function takes a
// [SecretMAC], the HMAC of the secret under a key it is given. Sources: the
// device connection authentication API
// (https://support.huaweicloud.com/api-iothub/iot_06_v5_3009.html,
// English at https://support.huaweicloud.com/intl/en-us/api-iothub/iot_06_v5_3009.html),
// which also gives the device_id rule, and the worked examples checked
// verbatim in docs_test.go: the clientId D39564861q3gDa_0_0_2018072417
// (https://support.huaweicloud.com/devg-roma/roma_04_4003.html) and the
// password of secret 12345678 at 2025041401
// (https://support.huaweicloud.com/devg-ocsmartcampus/ocsmartcampus_04_0030.html).
// testdata/vectors.json holds the vectors of the independent Python
// implementation tools/oracle/iotsign/gen.py.
//
// # Expiry
//
// With the timestamp checked, the platform "checks whether the message
// timestamp is consistent with the platform time" and documents no other
// window; the timestamp names an hour, so [Login.ExpiresAt] is the end of
// that UTC hour, the latest time the login is sure to pass. Unchecked, the
// platform "only checks the password": the login does not expire and
// ExpiresAt is 0.
//
// # Endpoint
//
// The host is per instance (the instance's access details show it) and has
// no default: settings must name one, checked by [ValidateHost]. Ports are
// [DefaultMQTTSPort] (8883) and [DefaultMQTTPort] (1883).
//
// # Purity
//
// No I/O, no clock: the issue time is an input. In FIPS 140-only mode the
// login cannot be computed (the HMAC key is the 10-byte timestamp) and
// [SecretKeyMAC] returns an error instead of panicking.
package huawei
