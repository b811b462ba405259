package aliyun_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// TestAllocations guards the allocation budget. crypto/hmac's own
// allocations are measured rather than hard-coded, so the budget follows
// the toolchain; on top of them SignConnect may allocate one scratch
// buffer and the three result strings, HMACHex one scratch buffer and the
// result string.
func TestAllocations(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	hmacAllocs := testing.AllocsPerRun(100, func() {
		hmac.New(sha256.New, secret)
	})
	req := benchRequest(signing.MethodHMACSHA256)
	content := signing.ConnectSignContent(req)
	tests := []struct {
		name string
		fn   func()
		max  float64
	}{
		{"Validate", func() { _ = req.Validate() }, 0},
		{"ConnectSignContent", func() { _ = signing.ConnectSignContent(req) }, 1},
		{"HMACHex", func() { _, _ = signing.HMACHex(req.Method, secret, content) }, hmacAllocs + 2},
		{"SignConnect", func() { _, _ = signing.SignConnect(req, signing.DeviceSecretMAC(secret)) }, hmacAllocs + 4},
	}
	for _, tc := range tests {
		if got := testing.AllocsPerRun(100, tc.fn); got > tc.max {
			t.Errorf("%s: %v allocs/op, want at most %v (crypto/hmac.New: %v)", tc.name, got, tc.max, hmacAllocs)
		}
	}
}
