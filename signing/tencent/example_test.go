package tencent_test

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/signerd/signerd/signing/tencent"
)

func ExampleSignConnect() {
	// The devicePsk as the console shows it, base64-decoded.
	key, _ := base64.StdEncoding.DecodeString("MDEyMzQ1Njc4OWFiY2RlZg==")
	login, err := tencent.SignConnect(tencent.Request{
		ProductID:  "EQPOKD5111",
		DeviceName: "dev-001",
		ConnID:     "aB3dE",
		Method:     tencent.MethodHMACSHA256,
		IssuedAt:   time.Unix(1700000000, 0),
	}, tencent.KeyMAC(key))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("host:", tencent.Host("EQPOKD5111"), tencent.DefaultPort)
	fmt.Println("clientId:", login.ClientID)
	fmt.Println("username:", login.Username)
	fmt.Println("password:", login.Password)
	fmt.Println("expiresAt:", login.ExpiresAt)

	// Invalid input is refused before anything is signed.
	_, err = tencent.SignConnect(tencent.Request{ProductID: "EQPOKD5111", DeviceName: "dev;001", ConnID: "aB3dE",
		Method: tencent.MethodHMACSHA256, IssuedAt: time.Unix(1700000000, 0)}, tencent.KeyMAC(key))
	fmt.Println(err)
	// Output:
	// host: EQPOKD5111.iotcloud.tencentdevices.com 1883
	// clientId: EQPOKD5111dev-001
	// username: EQPOKD5111dev-001;12010126;aB3dE;1700003600
	// password: 8c276bd9387057ff84db5367d3cdf77fb56799dd139041520e539e24d12e6b73;hmacsha256
	// expiresAt: 1700003600
	// deviceName: must be 1–48 characters of [A-Za-z0-9:_-]
}
