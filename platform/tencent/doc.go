// Package tencent serves the logins of Tencent Cloud IoT Hub and IoT
// Explorer devices (SignTencentMqttConnect): its [Module] reads the
// platform's section of the platforms file and returns the Signer, which
// validates a request, draws the connection ID and signs the login with
// the rules of [github.com/signerd/signerd/signing/tencent], the key's HMAC
// computed wherever the key lives.
//
// Settings (every key optional; the defaults shown):
//
//	tencent:
//	  vault:
//	    mount: iot
//	    path: "tencent/{productKey}/{deviceName}"   # {productKey} is the productId
//	    field: devicePsk                            # base64, as the console shows it
//
// The platform is always on: its host follows from the product ID.
package tencent
