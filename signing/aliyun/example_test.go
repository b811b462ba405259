package aliyun_test

import (
	"fmt"

	signing "github.com/signerd/signerd/signing/aliyun"
)

func ExampleSignConnect() {
	req := signing.ConnectRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Timestamp:  "1700000000000",
		Method:     signing.MethodHMACSHA1,
		Transport:  signing.TransportTLS,
	}
	p, err := signing.SignConnect(req, signing.DeviceSecretMAC([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("clientId:", p.ClientID)
	fmt.Println("username:", p.Username)
	fmt.Println("password:", p.Password)

	// Invalid input is rejected before anything is signed.
	req.ClientID = "dev-001|securemode=3|"
	_, err = signing.SignConnect(req, signing.DeviceSecretMAC([]byte("0123456789abcdef0123456789abcdef")))
	fmt.Println(err)
	// Output:
	// clientId: dev-001|securemode=2,signmethod=hmacsha1,timestamp=1700000000000|
	// username: dev-001&a1FakePK01
	// password: d4a300da6b324e3b82d6868e6435c22bbcbba73b
	// clientId: must be 1–64 characters of [A-Za-z0-9_.:@-]
}

func ExampleResolveEndpoint() {
	ep, err := signing.ResolveEndpoint("a1FakePK01", signing.ProductSettings{Region: "ap-southeast-1"}, signing.TransportTLS)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ep.URI)
	// Output:
	// mqtts://a1FakePK01.iot-as-mqtt.ap-southeast-1.aliyuncs.com:1883
}
