package huawei_test

import (
	"fmt"
	"time"

	"github.com/signerd/signerd/signing/huawei"
)

func ExampleSignConnect() {
	login, err := huawei.SignConnect(huawei.Request{
		DeviceID:       "6203cc94c7fb24029b110408_dev001",
		CheckTimestamp: true,
		IssuedAt:       time.Date(2025, 4, 14, 1, 30, 0, 0, time.UTC),
	}, huawei.SecretKeyMAC([]byte("12345678")))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("clientId:", login.ClientID)
	fmt.Println("username:", login.Username)
	fmt.Println("password:", login.Password)
	fmt.Println("expiresAt:", time.Unix(login.ExpiresAt, 0).UTC().Format(time.RFC3339))

	// The host is per instance: settings must name one.
	fmt.Println(huawei.ValidateHost("iot-mqtts.cn-north-4.myhuaweicloud.com"), huawei.DefaultMQTTSPort)
	fmt.Println(huawei.ValidateHost("mqtts://example.com:8883"))
	// Output:
	// clientId: 6203cc94c7fb24029b110408_dev001_0_1_2025041401
	// username: 6203cc94c7fb24029b110408_dev001
	// password: c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a
	// expiresAt: 2025-04-14T02:00:00Z
	// <nil> 8883
	// host: must be a DNS name of at most 253 characters: dot-separated labels of 1–63 characters of [A-Za-z0-9-], not starting or ending with '-'
}
