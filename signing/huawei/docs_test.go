package huawei_test

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/huawei"
)

// TestDocumentedExamples checks the worked examples of Huawei's own
// documentation, verbatim.
func TestDocumentedExamples(t *testing.T) {
	// "时间戳：为设备连接平台时的UTC时间，格式为YYYYMMDDHH，如UTC 时间2018/7/24
	// 17:56:20 则应表示为2018072417" and "以deviceId为例的clientId示例为：
	// D39564861q3gDa_0_0_2018072417"
	// (https://support.huaweicloud.com/devg-roma/roma_04_4003.html, and the
	// device connection authentication API,
	// https://support.huaweicloud.com/intl/en-us/api-iothub/iot_06_v5_3009.html).
	issued := time.Date(2018, 7, 24, 17, 56, 20, 0, time.UTC)
	if got := huawei.Timestamp(issued); got != "2018072417" {
		t.Errorf("Timestamp(%v) = %q, want 2018072417", issued, got)
	}
	// The same instant in another zone names the same UTC hour.
	if got := huawei.Timestamp(issued.In(time.FixedZone("UTC+8", 8*3600))); got != "2018072417" {
		t.Errorf("Timestamp in UTC+8 = %q, want 2018072417", got)
	}
	login, err := huawei.SignConnect(huawei.Request{DeviceID: "D39564861q3gDa", IssuedAt: issued}, huawei.SecretKeyMAC([]byte("secret")))
	if err != nil || login.ClientID != "D39564861q3gDa_0_0_2018072417" || login.Username != "D39564861q3gDa" || login.ExpiresAt != 0 {
		t.Errorf("SignConnect = %+v, %v; want clientId D39564861q3gDa_0_0_2018072417, username D39564861q3gDa, no expiry", login, err)
	}

	// "例如，设备密码为：12345678；时间戳为：2025041401；那么，HMACSHA256后的值为：
	// c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
	// (https://support.huaweicloud.com/devg-ocsmartcampus/ocsmartcampus_04_0030.html).
	login, err = huawei.SignConnect(huawei.Request{
		DeviceID:       "D39564861q3gDa",
		CheckTimestamp: true,
		IssuedAt:       time.Date(2025, 4, 14, 1, 30, 0, 0, time.UTC),
	}, huawei.SecretKeyMAC([]byte("12345678")))
	const want = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
	if err != nil || login.Password != want || login.ClientID != "D39564861q3gDa_0_1_2025041401" {
		t.Errorf("SignConnect = %+v, %v; want password %s, clientId D39564861q3gDa_0_1_2025041401", login, err, want)
	}
	if wantExp := time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC).Unix(); login.ExpiresAt != wantExp {
		t.Errorf("ExpiresAt = %d, want %d (the end of the hour 2025041401)", login.ExpiresAt, wantExp)
	}
}

// TestLuatOSVector checks a vector of another independent implementation,
// LuatOS's iotauth.iotda (the C library multi-platform devices run), from
// its test suite: device 6203cc94c7fb24029b110408_88888888, secret
// 123456789, timestamp 2023111506 (captured in UTC+8, so the key is that
// string), password 1c05cd54….
func TestLuatOSVector(t *testing.T) {
	sum, err := huawei.SecretKeyMAC([]byte("123456789"))([]byte("2023111506"))
	const want = "1c05cd54cb1b9585d40f10581aa2c84bf8c93c418eceff2f55f55dbc396c5b32"
	if err != nil || hex.EncodeToString(sum) != want {
		t.Errorf("SecretKeyMAC = %x, %v; want %s", sum, err, want)
	}
	login, err := huawei.SignConnect(huawei.Request{
		DeviceID:       "6203cc94c7fb24029b110408_88888888",
		CheckTimestamp: true,
		IssuedAt:       time.Date(2023, 11, 15, 6, 0, 0, 0, time.UTC),
	}, huawei.SecretKeyMAC([]byte("123456789")))
	if err != nil || login.Password != want || login.ClientID != "6203cc94c7fb24029b110408_88888888_0_1_2023111506" {
		t.Errorf("SignConnect = %+v, %v", login, err)
	}
}
