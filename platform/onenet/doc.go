// Package onenet serves the logins of China Mobile OneNET devices
// (SignOnenetMqttConnect): its [Module] reads the platform's section of the
// platforms file and returns the Signer, which validates a request and
// signs the device's token with the rules of
// [github.com/signerd/signerd/signing/onenet], the key's HMAC computed
// wherever the key lives.
//
// Settings (every key optional; the defaults shown):
//
//	onenet:
//	  vault:
//	    mount: iot
//	    path: "onenet/{productKey}/{deviceName}"   # {productKey} is the productId
//	    field: deviceKey                           # base64, as the console shows it
//
// The platform is always on: its hosts are OneNET's fixed MQTT endpoints.
package onenet
