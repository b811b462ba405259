package onenet_test

import (
	"fmt"
	"time"

	"github.com/signerd/signerd/signing/onenet"
)

func ExampleSignConnect() {
	key := []byte("0123456789abcdef0123456789abcdef") // the base64-decoded deviceKey
	login, err := onenet.SignConnect(onenet.Request{
		ProductID:  "Ck2AF9QD2K",
		DeviceName: "dev-001",
		Method:     onenet.MethodSHA256,
		IssuedAt:   time.Unix(1700000000, 0),
	}, onenet.KeyMAC(key))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("endpoint:", onenet.TLSHost, onenet.TLSPort)
	fmt.Println("clientId:", login.ClientID)
	fmt.Println("username:", login.Username)
	fmt.Println("password:", login.Password)
	fmt.Println("expiresAt:", login.ExpiresAt)

	// A TTL outside the limits is refused, not clamped.
	_, err = onenet.SignConnect(onenet.Request{ProductID: "Ck2AF9QD2K", DeviceName: "dev-001", Method: onenet.MethodSHA256,
		TTL: 31 * 24 * time.Hour, IssuedAt: time.Unix(1700000000, 0)}, onenet.KeyMAC(key))
	fmt.Println(err)
	// Output:
	// endpoint: mqttstls.heclouds.com 8883
	// clientId: dev-001
	// username: Ck2AF9QD2K
	// password: version=2018-10-31&res=products%2FCk2AF9QD2K%2Fdevices%2Fdev-001&et=1700003600&method=sha256&sign=v8DH6OylDZzdfVh7jWt7kWS2zU9IPlll%2BZJPTqhu6fs%3D
	// expiresAt: 1700003600
	// ttlSeconds: must be 0 (default 3600) or a whole number of seconds between 60 and 2592000
}
