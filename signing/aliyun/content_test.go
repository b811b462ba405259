package aliyun_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"slices"
	"strings"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

func TestContent(t *testing.T) {
	tests := []struct {
		name   string
		params []signing.Param
		want   string
	}{
		{"none", nil, ""},
		{"one", []signing.Param{{"k", "v"}}, "kv"},
		{"already sorted", []signing.Param{{"a", "1"}, {"b", "2"}, {"c", "3"}}, "a1b2c3"},
		{"reversed", []signing.Param{{"c", "3"}, {"b", "2"}, {"a", "1"}}, "a1b2c3"},
		{"byte order puts upper case first", []signing.Param{{"b", "1"}, {"B", "2"}, {"a", "3"}}, "B2a3b1"},
		{"prefix sorts first", []signing.Param{{"timestampx", "1"}, {"timestamp", "2"}}, "timestamp2timestampx1"},
		{"empty values kept", []signing.Param{{"y", ""}, {"x", ""}}, "xy"},
		{"equal keys keep their order", []signing.Param{{"k", "2"}, {"a", "0"}, {"k", "1"}}, "a0k2k1"},
		{"https form", []signing.Param{
			{"productKey", "a1FakePK01"}, {"signmethod", "hmacsha1"}, {"clientId", "dev-001"},
			{"deviceName", "dev-001"}, {"timestamp", "1700000000000"},
		}, "clientIddev-001deviceNamedev-001productKeya1FakePK01signmethodhmacsha1timestamp1700000000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.params)
			if got := signing.Content(in...); got != tc.want {
				t.Errorf("Content(%+v) = %q, want %q", tc.params, got, tc.want)
			}
			if !slices.Equal(in, tc.params) {
				t.Errorf("Content modified its argument: got %+v, want %+v", in, tc.params)
			}
		})
	}
}

func TestConnectSignContent(t *testing.T) {
	tests := []struct {
		req  signing.ConnectRequest
		want string
	}{
		{
			signing.ConnectRequest{ProductKey: "pk", DeviceName: "dev1", ClientID: "cid", Timestamp: "0"},
			"clientIdciddeviceNamedev1productKeypktimestamp0",
		},
		{
			signing.ConnectRequest{ProductKey: "pk", DeviceName: "dev1", ClientID: "cid"},
			"clientIdciddeviceNamedev1productKeypk",
		},
		{
			// Method and transport do not enter the content.
			signing.ConnectRequest{ProductKey: "pk", DeviceName: "dev1", ClientID: "cid", Method: signing.MethodHMACMD5, Transport: signing.TransportTCP},
			"clientIdciddeviceNamedev1productKeypk",
		},
	}
	for _, tc := range tests {
		if got := signing.ConnectSignContent(tc.req); got != tc.want {
			t.Errorf("ConnectSignContent(%+v) = %q, want %q", tc.req, got, tc.want)
		}
	}
}

func TestHMACHex(t *testing.T) {
	long := []byte(strings.Repeat("\xaa", 131)) // longer than every block size
	tests := []struct {
		name    string
		m       signing.Method
		secret  []byte
		content string
		want    string
	}{
		// RFC 4231 test case 2.
		{"sha256 rfc4231 2", signing.MethodHMACSHA256, []byte("Jefe"), "what do ya want for nothing?",
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		// RFC 4231 test case 6.
		{"sha256 rfc4231 6", signing.MethodHMACSHA256, long, "Test Using Larger Than Block-Size Key - Hash Key First",
			"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
		// RFC 2202 test case 2, SHA-1 and MD5.
		{"sha1 rfc2202 2", signing.MethodHMACSHA1, []byte("Jefe"), "what do ya want for nothing?",
			"effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
		{"md5 rfc2202 2", signing.MethodHMACMD5, []byte("Jefe"), "what do ya want for nothing?",
			"750c783e6ab0b503eaa86e310a5db738"},
		{"sha256 empty content", signing.MethodHMACSHA256, []byte("k"), "", referenceHMAC(sha256.New, "k", "")},
		{"md5 empty content", signing.MethodHMACMD5, []byte("k"), "", referenceHMAC(md5.New, "k", "")},
		{"sha1 long content", signing.MethodHMACSHA1, []byte("k"), strings.Repeat("x", 10000), referenceHMAC(sha1.New, "k", strings.Repeat("x", 10000))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signing.HMACHex(tc.m, tc.secret, tc.content)
			if err != nil || got != tc.want {
				t.Errorf("HMACHex(%v, %q, %q) = %q, %v; want %q, nil", tc.m, tc.secret, tc.content, got, err, tc.want)
			}
		})
	}
}

func TestHMACHexErrors(t *testing.T) {
	tests := []struct {
		name      string
		m         signing.Method
		secret    []byte
		wantField string
		wantMsg   string
	}{
		{"unspecified method", signing.MethodUnspecified, []byte("k"), "signMethod", errSignMethod},
		{"unknown method", signing.Method(4), []byte("k"), "signMethod", errSignMethod},
		{"nil secret", signing.MethodHMACSHA256, nil, "secret", "secret: must not be empty"},
		{"empty secret", signing.MethodHMACMD5, []byte{}, "secret", "secret: must not be empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signing.HMACHex(tc.m, tc.secret, "content")
			if got != "" {
				t.Errorf("HMACHex returned %q alongside an error, want \"\"", got)
			}
			checkFieldError(t, "HMACHex", err, tc.wantField, tc.wantMsg)
		})
	}
}

// referenceHMAC computes the hex HMAC with crypto/hmac directly.
func referenceHMAC(newHash func() hash.Hash, secret, content string) string {
	h := hmac.New(newHash, []byte(secret))
	h.Write([]byte(content))
	return hex.EncodeToString(h.Sum(nil))
}
