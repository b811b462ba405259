// Package huawei serves the logins of Huawei Cloud IoTDA devices
// (SignHuaweiMqttConnect): its [Module] reads the platform's section of the
// platforms file and returns the Signer, which validates a request and
// signs the login with the rules of
// [github.com/signerd/signerd/signing/huawei], the HMAC of the device's
// secret computed where the secret lives.
//
// Settings (the defaults shown; host has none):
//
//	huawei:
//	  host: xxx.iot-mqtts.cn-north-4.myhuaweicloud.com   # the instance's access address
//	  vault:
//	    mount: iot
//	    path: "huawei/devices/{deviceName}"   # {deviceName} is the deviceId
//	    field: secret                         # the secret as issued (raw)
//
// The device host is per instance and has no default: without host the
// platform is off (SignHuaweiMqttConnect answers UNIMPLEMENTED), while its
// key location still stands, so that -dev-secrets and the Vault settings
// are checked the same way either way.
package huawei
