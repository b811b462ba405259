package huawei_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/huawei"
)

// host253 is a valid host of the longest length: 63+1+63+1+63+1+61.
var host253 = strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61)

func TestValidate(t *testing.T) {
	if len(host253) != 253 {
		t.Fatalf("host253 has %d bytes", len(host253))
	}
	tests := []struct {
		name  string
		fn    func(string) error
		field string
		in    string
		ok    bool
	}{
		{"deviceId 1", huawei.ValidateDeviceID, "deviceId", "a", true},
		{"deviceId 128", huawei.ValidateDeviceID, "deviceId", strings.Repeat("Z", 128), true},
		{"deviceId underscore", huawei.ValidateDeviceID, "deviceId", "_", true},
		{"deviceId hyphen", huawei.ValidateDeviceID, "deviceId", "-", true},
		{"deviceId platform form", huawei.ValidateDeviceID, "deviceId", "6203cc94c7fb24029b110408_88888888", true},
		{"deviceId empty", huawei.ValidateDeviceID, "deviceId", "", false},
		{"deviceId 129", huawei.ValidateDeviceID, "deviceId", strings.Repeat("Z", 129), false},
		{"deviceId dot", huawei.ValidateDeviceID, "deviceId", "a.b", false},
		{"deviceId colon", huawei.ValidateDeviceID, "deviceId", "a:b", false},
		{"deviceId slash", huawei.ValidateDeviceID, "deviceId", "a/b", false},
		{"deviceId space", huawei.ValidateDeviceID, "deviceId", "a b", false},
		{"deviceId NUL", huawei.ValidateDeviceID, "deviceId", "a\x00", false},
		{"deviceId non-ASCII", huawei.ValidateDeviceID, "deviceId", "dév", false},
		{"deviceId high byte", huawei.ValidateDeviceID, "deviceId", "a\x80", false},

		{"host instance", huawei.ValidateHost, "host", "a1b2c3d4e5.st1.iotda-device.cn-north-4.myhuaweicloud.com", true},
		{"host single label", huawei.ValidateHost, "host", "localhost", true},
		{"host IPv4", huawei.ValidateHost, "host", "121.36.42.100", true},
		{"host label 63", huawei.ValidateHost, "host", strings.Repeat("a", 63) + ".com", true},
		{"host 253", huawei.ValidateHost, "host", host253, true},
		{"host empty", huawei.ValidateHost, "host", "", false},
		{"host 254", huawei.ValidateHost, "host", host253 + "a", false},
		{"host label 64", huawei.ValidateHost, "host", strings.Repeat("a", 64) + ".com", false},
		{"host trailing dot", huawei.ValidateHost, "host", "example.com.", false},
		{"host leading dot", huawei.ValidateHost, "host", ".example.com", false},
		{"host empty label", huawei.ValidateHost, "host", "example..com", false},
		{"host leading hyphen", huawei.ValidateHost, "host", "-example.com", false},
		{"host trailing hyphen", huawei.ValidateHost, "host", "example-.com", false},
		{"host scheme", huawei.ValidateHost, "host", "mqtts://example.com", false},
		{"host port", huawei.ValidateHost, "host", "example.com:8883", false},
		{"host path", huawei.ValidateHost, "host", "example.com/x", false},
		{"host underscore", huawei.ValidateHost, "host", "ex_ample.com", false},
		{"host IPv6", huawei.ValidateHost, "host", "::1", false},
		{"host non-ASCII", huawei.ValidateHost, "host", "exämple.com", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn(tc.in)
			if tc.ok {
				if err != nil {
					t.Fatalf("%q: %v, want nil", tc.in, err)
				}
				return
			}
			var fe *huawei.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("%q: %#v, want *FieldError for %s", tc.in, err, tc.field)
			}
		})
	}
}

func TestSignConnectRefuses(t *testing.T) {
	tests := []struct {
		name  string
		r     huawei.Request
		field string
	}{
		{"bad device", huawei.Request{DeviceID: "a.b", IssuedAt: time.Unix(1700000000, 0)}, "deviceId"},
		{"bad device before time", huawei.Request{DeviceID: "", IssuedAt: time.Time{}}, "deviceId"},
		{"zero time", huawei.Request{DeviceID: "d", IssuedAt: time.Time{}}, "issuedAt"},
		{"before epoch", huawei.Request{DeviceID: "d", IssuedAt: time.Unix(-1, 0)}, "issuedAt"},
		{"year 10000", huawei.Request{DeviceID: "d", IssuedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "issuedAt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			mac := func(key []byte) ([]byte, error) { called = true; return huawei.SecretKeyMAC([]byte("s"))(key) }
			got, err := huawei.SignConnect(tc.r, mac)
			var fe *huawei.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("SignConnect(%+v) error %#v, want *FieldError for %s", tc.r, err, tc.field)
			}
			if called || got != (huawei.Login{}) {
				t.Errorf("MAC called %v, login %+v for an invalid request", called, got)
			}
		})
	}
}

// TestSignConnectHours checks the timestamp and expiry at the edges of an
// hour and of the valid years.
func TestSignConnectHours(t *testing.T) {
	tests := []struct {
		issued   time.Time
		ts       string
		expireAt time.Time
	}{
		{time.Date(2025, 4, 14, 1, 0, 0, 0, time.UTC), "2025041401", time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC)},
		{time.Date(2025, 4, 14, 1, 59, 59, 999999999, time.UTC), "2025041401", time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC)},
		{time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC), "2025123123", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Unix(0, 0), "1970010100", time.Unix(3600, 0)},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "9999123123", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2025, 4, 14, 9, 30, 0, 0, time.FixedZone("UTC+8", 8*3600)), "2025041401", time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		got, err := huawei.SignConnect(huawei.Request{DeviceID: "d", CheckTimestamp: true, IssuedAt: tc.issued}, huawei.SecretKeyMAC([]byte("s")))
		if err != nil || got.ClientID != "d_0_1_"+tc.ts || got.ExpiresAt != tc.expireAt.Unix() {
			t.Errorf("issued %v: %+v, %v; want clientId d_0_1_%s, expiry %v", tc.issued, got, err, tc.ts, tc.expireAt)
		}
		got, err = huawei.SignConnect(huawei.Request{DeviceID: "d", IssuedAt: tc.issued}, huawei.SecretKeyMAC([]byte("s")))
		if err != nil || got.ClientID != "d_0_0_"+tc.ts || got.ExpiresAt != 0 {
			t.Errorf("issued %v, unchecked: %+v, %v; want clientId d_0_0_%s, no expiry", tc.issued, got, err, tc.ts)
		}
	}
}

func TestMACChecked(t *testing.T) {
	r := huawei.Request{DeviceID: "d", IssuedAt: time.Unix(1700000000, 0)}
	if got, err := huawei.SignConnect(r, func([]byte) ([]byte, error) { return make([]byte, 20), nil }); err == nil {
		t.Fatalf("a 20-byte MAC gave %+v, want an error", got)
	}
	boom := errors.New("transit unavailable")
	if _, err := huawei.SignConnect(r, func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v, want the MAC's error", err)
	}
	var fe *huawei.FieldError
	if _, err := huawei.SignConnect(r, huawei.SecretKeyMAC(nil)); !errors.As(err, &fe) || fe.Field != "secret" {
		t.Fatalf("empty secret: %v, want a secret *FieldError", err)
	}
}
