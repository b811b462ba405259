// Package tencent holds the MQTT login rules of Tencent Cloud IoT Hub (物联网通信)
// and IoT Explorer (物联网开发平台) for key-authenticated devices.
//
// A device logs in with
//
//	clientId: {productId}{deviceName}
//	username: {productId}{deviceName};12010126;{connId};{expiry}
//	password: {hex HMAC-SHA256|HMAC-SHA1(key, username)};hmacsha256|hmacsha1
//
// where key is the base64-decoded devicePsk, connId is 5 random characters
// of [A-Za-z0-9] and expiry is in Unix seconds; the host is
// {productId}.iotcloud.tencentdevices.com (Guangzhou), port 1883 (8883 with
// TLS). Sources: the MQTT access guide, "设备基于 TCP 的 MQTT 接入"
// (https://cloud.tencent.com/document/product/1081/102803 for Explorer,
// https://cloud.tencent.com/document/product/634/32546 and
// https://www.tencentcloud.com/document/product/1105/41824 for IoT Hub), whose
// Python, Java, Node.js and C samples all compute the password this way;
// Tencent's C SDKs (qcloud-iot-sdk-embedded-c,
// qcloud-iot-explorer-sdk-embedded-c) for the connId and the name buffers;
// CreateDevice (https://cloud.tencent.com/document/api/634/71950,
// https://cloud.tencent.com/document/api/1081/37178) for device names. See
// each Validate function for the rule it follows and why.
//
// The documentation gives the algorithm and sample code, but no worked
// example with fixed inputs and output; the known answers are the vectors of
// the independent Python implementation tools/oracle/iotsign/gen.py, which
// follows the guide's Python sample (testdata/vectors.json; the tests check
// them byte for byte and that the script still writes them).
//
// # Purity
//
// No I/O, no clock, no randomness: the issue time and the connId are
// inputs. [SignConnect] holds no key; it takes a [MAC] that computes the
// HMAC with the device's key wherever the key lives, and checks its size.
//
// # Lifetime
//
// The expiry is the issue time plus the request's TTL: [DefaultTTL] when the
// TTL is 0, else within [MinTTL, MaxTTL]; anything else is refused. See the
// constants for why these limits.
package tencent
