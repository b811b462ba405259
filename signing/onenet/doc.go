// Package onenet holds the MQTT login rules of China Mobile's OneNET
// (studio products) for key-authenticated devices.
//
// A device logs in with clientId = {deviceName}, username = {productId} and
// password = the token
//
//	version=2018-10-31&res={res}&et={et}&method={method}&sign={sign}
//
// for res = products/{productId}/devices/{deviceName}, where et is the expiry
// in Unix seconds, method is md5, sha1 or sha256, and
//
//	sign = base64(HMAC-method(base64decode(deviceKey), et+"\n"+method+"\n"+res+"\n"+version))
//
// with every value URL-encoded. Hosts: mqtts.heclouds.com:1883, and with TLS
// mqttstls.heclouds.com:8883. Sources: the token algorithm
// (https://open.iot.10086.cn/doc/multiprotocol/book/manual/auth/token.html), its
// Python and Java samples
// (https://onenet.hk.chinamobile.com/suben/doc/multiprotocol/book/manual/auth/python.html),
// and PLATFORMS.md. The documentation's worked example (et 1537255523, sha1,
// products/123123) is checked verbatim in docs_test.go with the samples' key,
// together with the vectors of LuatOS's iotauth; testdata/vectors.json holds
// the vectors of the independent Python implementation
// tools/oracle/iotsign/gen.py.
//
// # Purity
//
// No I/O, no clock: the issue time is an input. [SignConnect] and [Token]
// hold no key; they take a [MAC] that computes the HMAC with the device's
// key wherever it lives, and check its size.
//
// # Lifetime
//
// et is the issue time plus the request's TTL: [DefaultTTL] when the TTL is
// 0, else within [MinTTL, MaxTTL]; anything else is refused.
package onenet
