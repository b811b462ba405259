package onenet_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/onenet"
)

func TestValidateNames(t *testing.T) {
	tests := []struct {
		name  string
		fn    func(string) error
		field string
		in    string
		ok    bool
	}{
		{"productId studio", onenet.ValidateProductID, "productId", "Ck2AF9QD2K", true},
		{"productId legacy numeric", onenet.ValidateProductID, "productId", "123123", true},
		{"productId 1", onenet.ValidateProductID, "productId", "a", true},
		{"productId 32", onenet.ValidateProductID, "productId", strings.Repeat("Z", 32), true},
		{"productId empty", onenet.ValidateProductID, "productId", "", false},
		{"productId 33", onenet.ValidateProductID, "productId", strings.Repeat("Z", 33), false},
		{"productId slash", onenet.ValidateProductID, "productId", "a/b", false},
		{"productId underscore", onenet.ValidateProductID, "productId", "a_b", false},
		{"productId ampersand", onenet.ValidateProductID, "productId", "a&b", false},
		{"productId non-ASCII", onenet.ValidateProductID, "productId", "Ck2AF9QD2\u212a", false},

		{"deviceName 1", onenet.ValidateDeviceName, "deviceName", "a", true},
		{"deviceName 64", onenet.ValidateDeviceName, "deviceName", strings.Repeat("z", 64), true},
		{"deviceName underscore", onenet.ValidateDeviceName, "deviceName", "_", true},
		{"deviceName hyphen", onenet.ValidateDeviceName, "deviceName", "-", true},
		{"deviceName documented", onenet.ValidateDeviceName, "deviceName", "ceshi-0003", true},
		{"deviceName empty", onenet.ValidateDeviceName, "deviceName", "", false},
		{"deviceName 65", onenet.ValidateDeviceName, "deviceName", strings.Repeat("z", 65), false},
		{"deviceName slash", onenet.ValidateDeviceName, "deviceName", "a/devices/b", false},
		{"deviceName ampersand", onenet.ValidateDeviceName, "deviceName", "a&et=1", false},
		{"deviceName percent", onenet.ValidateDeviceName, "deviceName", "a%2F", false},
		{"deviceName dot", onenet.ValidateDeviceName, "deviceName", "a.b", false},
		{"deviceName space", onenet.ValidateDeviceName, "deviceName", "a b", false},
		{"deviceName newline", onenet.ValidateDeviceName, "deviceName", "a\nb", false},
		{"deviceName non-ASCII", onenet.ValidateDeviceName, "deviceName", "设备", false},
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
			var fe *onenet.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("%q: %#v, want *FieldError for %s", tc.in, err, tc.field)
			}
		})
	}
}

func TestParseMethod(t *testing.T) {
	tests := []struct {
		in   string
		want onenet.Method
		ok   bool
	}{
		{"", onenet.MethodSHA256, true},
		{"SHA256", onenet.MethodSHA256, true},
		{"SHA1", onenet.MethodSHA1, true},
		{"MD5", onenet.MethodMD5, true},
		{"sha256", 0, false},
		{"md5", 0, false},
		{"HMAC_SHA256", 0, false},
		{"SHA512", 0, false},
	}
	for _, tc := range tests {
		got, err := onenet.ParseMethod(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseMethod(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		var fe *onenet.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "signMethod") {
			t.Errorf("ParseMethod(%q) error %#v is not a signMethod *FieldError", tc.in, err)
		}
		if tc.ok && tc.in != "" && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

func TestSignConnectRefuses(t *testing.T) {
	valid := onenet.Request{ProductID: "Ck2AF9QD2K", DeviceName: "dev", Method: onenet.MethodSHA256, IssuedAt: time.Unix(1700000000, 0)}
	tests := []struct {
		name  string
		edit  func(*onenet.Request)
		field string
	}{
		{"valid", func(*onenet.Request) {}, ""},
		{"TTL min", func(r *onenet.Request) { r.TTL = onenet.MinTTL }, ""},
		{"TTL max", func(r *onenet.Request) { r.TTL = onenet.MaxTTL }, ""},
		{"TTL below min", func(r *onenet.Request) { r.TTL = 59 * time.Second }, "ttlSeconds"},
		{"TTL above max", func(r *onenet.Request) { r.TTL = onenet.MaxTTL + time.Second }, "ttlSeconds"},
		{"TTL negative", func(r *onenet.Request) { r.TTL = -time.Second }, "ttlSeconds"},
		{"TTL fraction", func(r *onenet.Request) { r.TTL = 90*time.Second + 1 }, "ttlSeconds"},
		{"method zero", func(r *onenet.Request) { r.Method = onenet.MethodUnspecified }, "signMethod"},
		{"method unknown", func(r *onenet.Request) { r.Method = 7 }, "signMethod"},
		{"before epoch", func(r *onenet.Request) { r.IssuedAt = time.Unix(-1, 0) }, "issuedAt"},
		{"year 10000", func(r *onenet.Request) { r.IssuedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "issuedAt"},
		{"productId first", func(r *onenet.Request) { r.ProductID = ""; r.DeviceName = "" }, "productId"},
		{"deviceName", func(r *onenet.Request) { r.DeviceName = "a/b" }, "deviceName"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid
			tc.edit(&r)
			called := false
			mac := func(m onenet.Method, c []byte) ([]byte, error) {
				called = true
				return onenet.KeyMAC([]byte("k"))(m, c)
			}
			got, err := onenet.SignConnect(r, mac)
			if tc.field == "" {
				if err != nil || !called {
					t.Fatalf("SignConnect(%+v) = %+v, %v", r, got, err)
				}
				return
			}
			var fe *onenet.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("SignConnect(%+v) error %#v, want *FieldError for %s", r, err, tc.field)
			}
			if called || got != (onenet.Login{}) {
				t.Errorf("MAC called %v, login %+v for an invalid request", called, got)
			}
		})
	}
}

func TestTokenRefuses(t *testing.T) {
	mac := onenet.KeyMAC([]byte("k"))
	for _, tc := range []struct {
		res   string
		et    int64
		m     onenet.Method
		field string
	}{
		{"products/123123", 1, onenet.MethodSHA1, ""},
		{"products/123123/devices/dev_1", 1, onenet.MethodMD5, ""},
		{"", 1, onenet.MethodSHA1, "res"},
		{"products/", 1, onenet.MethodSHA1, "res"},
		{"products/123123/", 1, onenet.MethodSHA1, "res"},
		{"products/123123/devices/", 1, onenet.MethodSHA1, "res"},
		{"products/123123/devices/a/b", 1, onenet.MethodSHA1, "res"},
		{"products/123123/things/a", 1, onenet.MethodSHA1, "res"},
		{"mqs/osndf09nand9f21390", 1, onenet.MethodSHA1, "res"},
		{"userid/12321", 1, onenet.MethodSHA1, "res"},
		{"products/1&et=2", 1, onenet.MethodSHA1, "res"},
		{"products/123123", -1, onenet.MethodSHA1, "expiresAt"},
		{"products/123123", 1, onenet.MethodUnspecified, "signMethod"},
	} {
		got, err := onenet.Token(tc.res, tc.et, tc.m, mac)
		if tc.field == "" {
			if err != nil || !strings.HasPrefix(got, "version=2018-10-31&res=products%2F") {
				t.Errorf("Token(%q) = %q, %v", tc.res, got, err)
			}
			continue
		}
		var fe *onenet.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || got != "" {
			t.Errorf("Token(%q, %d, %v) = %q, %#v; want a *FieldError for %s", tc.res, tc.et, tc.m, got, err, tc.field)
		}
	}
}

func TestMACChecked(t *testing.T) {
	r := onenet.Request{ProductID: "Ck2AF9QD2K", DeviceName: "dev", Method: onenet.MethodMD5, IssuedAt: time.Unix(1700000000, 0)}
	if got, err := onenet.SignConnect(r, func(onenet.Method, []byte) ([]byte, error) { return make([]byte, 32), nil }); err == nil {
		t.Fatalf("a 32-byte MD5 MAC gave %+v, want an error", got)
	}
	boom := errors.New("transit unavailable")
	if _, err := onenet.SignConnect(r, func(onenet.Method, []byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v, want the MAC's error", err)
	}
	var fe *onenet.FieldError
	if _, err := onenet.SignConnect(r, onenet.KeyMAC(nil)); !errors.As(err, &fe) || fe.Field != "deviceKey" {
		t.Fatalf("empty key: %v, want a deviceKey *FieldError", err)
	}
}
