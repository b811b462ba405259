package tencent_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/tencent"
)

func TestValidateNames(t *testing.T) {
	tests := []struct {
		name  string
		fn    func(string) error
		field string
		in    string
		ok    bool
	}{
		{"productId documented example", tencent.ValidateProductID, "productId", "EQPOKD5111", true},
		{"productId digits first", tencent.ValidateProductID, "productId", "1A17RZR3XX", true},
		{"productId all digits", tencent.ValidateProductID, "productId", "0123456789", true},
		{"productId empty", tencent.ValidateProductID, "productId", "", false},
		{"productId 9", tencent.ValidateProductID, "productId", "EQPOKD511", false},
		{"productId 11", tencent.ValidateProductID, "productId", "EQPOKD51111", false},
		{"productId lower case", tencent.ValidateProductID, "productId", "eqpokd5111", false},
		{"productId punctuation", tencent.ValidateProductID, "productId", "EQPOKD511-", false},
		{"productId separator", tencent.ValidateProductID, "productId", "EQPOKD511;", false},
		{"productId non-ASCII", tencent.ValidateProductID, "productId", "EQPOKD511\u0130", false},
		{"productId high byte", tencent.ValidateProductID, "productId", "EQPOKD511\xff", false},

		{"deviceName 1", tencent.ValidateDeviceName, "deviceName", "a", true},
		{"deviceName 48", tencent.ValidateDeviceName, "deviceName", strings.Repeat("z", 48), true},
		{"deviceName colon", tencent.ValidateDeviceName, "deviceName", ":", true},
		{"deviceName underscore", tencent.ValidateDeviceName, "deviceName", "_", true},
		{"deviceName hyphen", tencent.ValidateDeviceName, "deviceName", "-", true},
		{"deviceName mixed", tencent.ValidateDeviceName, "deviceName", "Dev:01_a-B", true},
		{"deviceName empty", tencent.ValidateDeviceName, "deviceName", "", false},
		{"deviceName 49", tencent.ValidateDeviceName, "deviceName", strings.Repeat("z", 49), false},
		{"deviceName semicolon", tencent.ValidateDeviceName, "deviceName", "dev;1", false},
		{"deviceName dot", tencent.ValidateDeviceName, "deviceName", "dev.1", false},
		{"deviceName at", tencent.ValidateDeviceName, "deviceName", "dev@1", false},
		{"deviceName slash", tencent.ValidateDeviceName, "deviceName", "dev/1", false},
		{"deviceName space", tencent.ValidateDeviceName, "deviceName", "dev 1", false},
		{"deviceName NUL", tencent.ValidateDeviceName, "deviceName", "dev\x00", false},
		{"deviceName non-ASCII", tencent.ValidateDeviceName, "deviceName", "dév", false},

		{"connId letters and digits", tencent.ValidateConnID, "connId", "aB3dE", true},
		{"connId digits", tencent.ValidateConnID, "connId", "01234", true},
		{"connId 4", tencent.ValidateConnID, "connId", "aB3d", false},
		{"connId 6", tencent.ValidateConnID, "connId", "aB3dEf", false},
		{"connId empty", tencent.ValidateConnID, "connId", "", false},
		{"connId punctuation", tencent.ValidateConnID, "connId", "aB3d_", false},
		{"connId separator", tencent.ValidateConnID, "connId", "aB;dE", false},
		{"connId non-ASCII", tencent.ValidateConnID, "connId", "aB3\u00e9", false},
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
			var fe *tencent.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("%q: %#v, want *FieldError for %s", tc.in, err, tc.field)
			}
			if tc.in != "" && strings.Contains(fe.Reason, tc.in) {
				t.Errorf("reason %q repeats the value", fe.Reason)
			}
		})
	}
}

func TestParseMethod(t *testing.T) {
	tests := []struct {
		in   string
		want tencent.Method
		ok   bool
	}{
		{"", tencent.MethodHMACSHA256, true},
		{"HMAC_SHA256", tencent.MethodHMACSHA256, true},
		{"HMAC_SHA1", tencent.MethodHMACSHA1, true},
		{"hmacsha256", 0, false},
		{"hmac_sha256", 0, false},
		{"HMAC_SHA256 ", 0, false},
		{"HMAC_MD5", 0, false},
		{"SHA256", 0, false},
	}
	for _, tc := range tests {
		got, err := tencent.ParseMethod(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseMethod(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		var fe *tencent.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "signMethod") {
			t.Errorf("ParseMethod(%q) error %#v is not a signMethod *FieldError", tc.in, err)
		}
		if tc.ok && tc.in != "" && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

// TestSignConnectRefuses checks each request-level rule, that the MAC is
// never called for an invalid request, and that the first invalid field is
// named.
func TestSignConnectRefuses(t *testing.T) {
	valid := tencent.Request{
		ProductID:  "EQPOKD5111",
		DeviceName: "dev-001",
		ConnID:     "aB3dE",
		Method:     tencent.MethodHMACSHA256,
		IssuedAt:   time.Unix(1700000000, 0),
	}
	tests := []struct {
		name  string
		edit  func(*tencent.Request)
		field string // "" = valid
	}{
		{"valid", func(*tencent.Request) {}, ""},
		{"TTL min", func(r *tencent.Request) { r.TTL = tencent.MinTTL }, ""},
		{"TTL max", func(r *tencent.Request) { r.TTL = tencent.MaxTTL }, ""},
		{"TTL below min", func(r *tencent.Request) { r.TTL = tencent.MinTTL - time.Second }, "ttlSeconds"},
		{"TTL above max", func(r *tencent.Request) { r.TTL = tencent.MaxTTL + time.Second }, "ttlSeconds"},
		{"TTL negative", func(r *tencent.Request) { r.TTL = -time.Hour }, "ttlSeconds"},
		{"TTL fraction", func(r *tencent.Request) { r.TTL = time.Hour + time.Millisecond }, "ttlSeconds"},
		{"method zero", func(r *tencent.Request) { r.Method = tencent.MethodUnspecified }, "signMethod"},
		{"method unknown", func(r *tencent.Request) { r.Method = 9 }, "signMethod"},
		{"before epoch", func(r *tencent.Request) { r.IssuedAt = time.Unix(-1, 0) }, "issuedAt"},
		{"zero time", func(r *tencent.Request) { r.IssuedAt = time.Time{} }, "issuedAt"},
		{"year 10000", func(r *tencent.Request) { r.IssuedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "issuedAt"},
		{"bad productId first", func(r *tencent.Request) { r.ProductID = "x"; r.DeviceName = ";" }, "productId"},
		{"bad deviceName before connId", func(r *tencent.Request) { r.DeviceName = ";"; r.ConnID = "" }, "deviceName"},
		{"bad connId", func(r *tencent.Request) { r.ConnID = "abc;e" }, "connId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid
			tc.edit(&r)
			called := false
			mac := func(m tencent.Method, content []byte) ([]byte, error) {
				called = true
				return tencent.KeyMAC([]byte("k"))(m, content)
			}
			got, err := tencent.SignConnect(r, mac)
			if tc.field == "" {
				if err != nil || !called || got.Password == "" {
					t.Fatalf("SignConnect(%+v) = %+v, %v; want a login", r, got, err)
				}
				return
			}
			var fe *tencent.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("SignConnect(%+v) error %#v, want *FieldError for %s", r, err, tc.field)
			}
			if called {
				t.Error("the MAC was called for an invalid request")
			}
			if got != (tencent.Login{}) {
				t.Errorf("SignConnect returned %+v with an error", got)
			}
		})
	}
}

func TestSignConnectExpiry(t *testing.T) {
	r := tencent.Request{ProductID: "EQPOKD5111", DeviceName: "d", ConnID: "abcde",
		Method: tencent.MethodHMACSHA1, IssuedAt: time.Unix(1700000000, 999_000_000)}
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
	}{
		{0, 1700003600},
		{time.Minute, 1700000060},
		{tencent.MaxTTL, 1700000000 + 2592000},
	} {
		r.TTL = tc.ttl
		got, err := tencent.SignConnect(r, tencent.KeyMAC([]byte("k")))
		if err != nil || got.ExpiresAt != tc.want || !strings.HasSuffix(got.Username, ";"+itoa(tc.want)) {
			t.Errorf("TTL %v: %+v, %v; want expiry %d in the username", tc.ttl, got, err, tc.want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestMACSizeChecked checks that a MAC of the wrong size (a misconfigured
// Transit key, say) never reaches a device.
func TestMACSizeChecked(t *testing.T) {
	r := tencent.Request{ProductID: "EQPOKD5111", DeviceName: "d", ConnID: "abcde",
		Method: tencent.MethodHMACSHA256, IssuedAt: time.Unix(1700000000, 0)}
	short := func(tencent.Method, []byte) ([]byte, error) { return make([]byte, 20), nil }
	if got, err := tencent.SignConnect(r, short); err == nil {
		t.Fatalf("SignConnect with a 20-byte SHA-256 MAC = %+v, want an error", got)
	}
	boom := errors.New("transit unavailable")
	failing := func(tencent.Method, []byte) ([]byte, error) { return nil, boom }
	if _, err := tencent.SignConnect(r, failing); !errors.Is(err, boom) {
		t.Fatalf("SignConnect error %v, want the MAC's error", err)
	}
	var fe *tencent.FieldError
	if _, err := tencent.SignConnect(r, tencent.KeyMAC(nil)); !errors.As(err, &fe) || fe.Field != "devicePsk" {
		t.Fatalf("SignConnect with an empty key: %v, want a devicePsk *FieldError", err)
	}
}
