package onenet_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/onenet"
)

var (
	productIDRE  = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)
	deviceNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func FuzzSignConnect(f *testing.F) {
	for _, v := range loadVectors(f) {
		m, _ := onenet.ParseMethod(v.Input.SignMethod)
		f.Add([]byte(v.Input.DeviceKey), v.Input.ProductID, v.Input.DeviceName, int(m), v.Input.TTLSeconds, v.Input.IssuedAt)
	}
	f.Add([]byte("k"), "123/devices/x", "y", 1, int64(0), int64(1700000000))
	f.Add([]byte("k"), "123", "a&et=9&sign=x", 2, int64(60), int64(0))
	f.Add([]byte{}, "", "", 0, int64(-5), int64(-5))
	hashes := map[onenet.Method]func() hash.Hash{onenet.MethodSHA256: sha256.New, onenet.MethodSHA1: sha1.New, onenet.MethodMD5: md5.New}
	names := map[onenet.Method]string{onenet.MethodSHA256: "sha256", onenet.MethodSHA1: "sha1", onenet.MethodMD5: "md5"}
	f.Fuzz(func(t *testing.T, key []byte, productID, deviceName string, method int, ttlSeconds, issuedAt int64) {
		if err := onenet.ValidateProductID(productID); (err == nil) != productIDRE.MatchString(productID) {
			t.Errorf("ValidateProductID(%q) = %v", productID, err)
		}
		if err := onenet.ValidateDeviceName(deviceName); (err == nil) != deviceNameRE.MatchString(deviceName) {
			t.Errorf("ValidateDeviceName(%q) = %v", deviceName, err)
		}
		r := onenet.Request{ProductID: productID, DeviceName: deviceName, Method: onenet.Method(method),
			TTL: time.Duration(ttlSeconds) * time.Second, IssuedAt: time.Unix(issuedAt, 0)}
		got, err := onenet.SignConnect(r, onenet.KeyMAC(key))
		if err != nil {
			var fe *onenet.FieldError
			if !errors.As(err, &fe) || fe.Field == "" || got != (onenet.Login{}) {
				t.Fatalf("SignConnect(%+v) = %+v, %#v; want no login and a *FieldError", r, got, err)
			}
			return
		}
		newHash, ok := hashes[r.Method]
		if !ok || !productIDRE.MatchString(productID) || !deviceNameRE.MatchString(deviceName) {
			t.Fatalf("SignConnect accepted %+v", r)
		}
		ttl := ttlSeconds
		if ttl == 0 {
			ttl = 3600
		}
		if ttl < 60 || ttl > 2592000 || got.ExpiresAt != issuedAt+ttl {
			t.Fatalf("TTL %d s accepted, ExpiresAt %d", ttlSeconds, got.ExpiresAt)
		}
		if got.ClientID != deviceName || got.Username != productID {
			t.Errorf("clientId %q, username %q", got.ClientID, got.Username)
		}
		// The token parses back, with exactly the documented keys in order.
		fields := strings.Split(got.Password, "&")
		keys := []string{"version", "res", "et", "method", "sign"}
		vals := map[string]string{}
		if len(fields) != len(keys) {
			t.Fatalf("token %q has %d fields", got.Password, len(fields))
		}
		for i, fld := range fields {
			k, v, ok := strings.Cut(fld, "=")
			if !ok || k != keys[i] {
				t.Fatalf("token field %d is %q, want key %s", i, fld, keys[i])
			}
			dv, err := url.QueryUnescape(v)
			if err != nil {
				t.Fatalf("token value %q: %v", v, err)
			}
			vals[k] = dv
		}
		res := "products/" + productID + "/devices/" + deviceName
		if vals["version"] != "2018-10-31" || vals["res"] != res || vals["et"] != strconv.FormatInt(got.ExpiresAt, 10) || vals["method"] != names[r.Method] {
			t.Errorf("token %q decodes to %v", got.Password, vals)
		}
		mac := hmac.New(newHash, key)
		mac.Write([]byte(vals["et"] + "\n" + vals["method"] + "\n" + res + "\n" + "2018-10-31"))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); vals["sign"] != want {
			t.Errorf("sign %q, want %q", vals["sign"], want)
		}
	})
}
