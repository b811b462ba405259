package tencent_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/tencent"
)

// Reference grammars, written from the documented rules independently of
// the implementation.
var (
	productIDRE  = regexp.MustCompile(`^[A-Z0-9]{10}$`)
	deviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,48}$`)
	connIDRE     = regexp.MustCompile(`^[a-zA-Z0-9]{5}$`)
)

func FuzzSignConnect(f *testing.F) {
	for _, v := range loadVectors(f) {
		m, _ := tencent.ParseMethod(v.Input.SignMethod)
		f.Add([]byte(v.Input.DevicePsk), v.Input.ProductID, v.Input.DeviceName, v.Input.ConnID, int(m), v.Input.TTLSeconds, v.Input.IssuedAt)
	}
	f.Add([]byte("k"), "EQPOKD5111", "dev;1;2;3", "ab;de", 1, int64(0), int64(1700000000))
	f.Add([]byte("k"), "EQPOKD511", "1dev", "abcde", 1, int64(0), int64(1700000000))
	f.Add([]byte("k"), "EQPOKD5111", "dév", "abcde", 2, int64(59), int64(-1))
	f.Add([]byte{}, "", "", "", 0, int64(-1), int64(0))
	hashes := map[tencent.Method]func() hash.Hash{tencent.MethodHMACSHA256: sha256.New, tencent.MethodHMACSHA1: sha1.New}
	suffixes := map[tencent.Method]string{tencent.MethodHMACSHA256: "hmacsha256", tencent.MethodHMACSHA1: "hmacsha1"}
	f.Fuzz(func(t *testing.T, key []byte, productID, deviceName, connID string, method int, ttlSeconds, issuedAt int64) {
		for _, c := range []struct {
			fn    func(string) error
			re    *regexp.Regexp
			in    string
			field string
		}{
			{tencent.ValidateProductID, productIDRE, productID, "productId"},
			{tencent.ValidateDeviceName, deviceNameRE, deviceName, "deviceName"},
			{tencent.ValidateConnID, connIDRE, connID, "connId"},
		} {
			err := c.fn(c.in)
			if (err == nil) != c.re.MatchString(c.in) {
				t.Errorf("%s %q: error %v, grammar match %v", c.field, c.in, err, c.re.MatchString(c.in))
			}
			var fe *tencent.FieldError
			if err != nil && (!errors.As(err, &fe) || fe.Field != c.field) {
				t.Errorf("%s %q: error %#v does not name the field", c.field, c.in, err)
			}
		}
		r := tencent.Request{
			ProductID:  productID,
			DeviceName: deviceName,
			ConnID:     connID,
			Method:     tencent.Method(method),
			TTL:        time.Duration(ttlSeconds) * time.Second,
			IssuedAt:   time.Unix(issuedAt, 0),
		}
		got, err := tencent.SignConnect(r, tencent.KeyMAC(key))
		if err != nil {
			var fe *tencent.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("SignConnect(%+v): error %#v is not a *FieldError", r, err)
			}
			if got != (tencent.Login{}) {
				t.Fatalf("SignConnect returned %+v with error %v", got, err)
			}
			return
		}
		newHash, ok := hashes[r.Method]
		if !ok || !productIDRE.MatchString(productID) || !deviceNameRE.MatchString(deviceName) || !connIDRE.MatchString(connID) {
			t.Fatalf("SignConnect accepted %+v", r)
		}
		ttl := ttlSeconds
		if ttl == 0 {
			ttl = 3600
		}
		if ttl < 60 || ttl > 2592000 {
			t.Fatalf("SignConnect accepted TTL %d s", ttlSeconds)
		}
		if got.ExpiresAt != issuedAt+ttl {
			t.Errorf("ExpiresAt = %d, want %d", got.ExpiresAt, issuedAt+ttl)
		}
		if got.ClientID != productID+deviceName {
			t.Errorf("ClientID = %q", got.ClientID)
		}
		parts := strings.Split(got.Username, ";")
		if len(parts) != 4 || parts[0] != got.ClientID || parts[1] != "12010126" || parts[2] != connID || parts[3] != strconv.FormatInt(got.ExpiresAt, 10) {
			t.Errorf("Username %q is not {clientId};12010126;{connId};{expiry}", got.Username)
		}
		mac := hmac.New(newHash, key)
		mac.Write([]byte(got.Username))
		if want := hex.EncodeToString(mac.Sum(nil)) + ";" + suffixes[r.Method]; got.Password != want {
			t.Errorf("Password = %q, want %q", got.Password, want)
		}
	})
}
