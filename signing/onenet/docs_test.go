package onenet_test

import (
	"encoding/base64"
	"testing"

	"github.com/signerd/signerd/signing/onenet"
)

// docKey is the accessKey of OneNET's own token samples (Python:
// https://onenet.hk.chinamobile.com/suben/doc/multiprotocol/book/manual/auth/python.html;
// the Java sample uses the same key).
const docKey = "KuF3NT/jUBJ62LNBB/A8XZA9CqS3Cu79B/ABmfA1UCw="

func decode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDocumentedExample checks the token documentation's worked example
// (https://open.iot.10086.cn/doc/multiprotocol/book/manual/auth/token.html):
// "et = 1537255523, method = sha1, res = products/123123, version =
// 2018-10-31 ... StringForSignature = "1537255523" + "\n" + "sha1" + "\n" +
// "products/123123" + "\n" + "2018-10-31"". The page's sign is a placeholder,
// so the sign is that of the samples' key, lsaPSiiGvEFFjXu5WU7a6IkScqE=,
// which a third-party implementation's test also pins.
func TestDocumentedExample(t *testing.T) {
	const res = "products/123123"
	if got, want := onenet.StringForSignature(1537255523, onenet.MethodSHA1, res), "1537255523\nsha1\nproducts/123123\n2018-10-31"; got != want {
		t.Errorf("StringForSignature = %q, want %q", got, want)
	}
	got, err := onenet.Token(res, 1537255523, onenet.MethodSHA1, onenet.KeyMAC(decode(t, docKey)))
	const want = "version=2018-10-31&res=products%2F123123&et=1537255523&method=sha1&sign=lsaPSiiGvEFFjXu5WU7a6IkScqE%3D"
	if err != nil || got != want {
		t.Errorf("Token = %q, %v; want %q", got, err, want)
	}
}

// TestLuatOSVectors checks the vectors of another independent
// implementation, LuatOS's iotauth.onenet (the C library that
// multi-platform devices run), from its test suite: product Ck2AF9QD2K,
// device test, the documentation's key, et 32472115200.
func TestLuatOSVectors(t *testing.T) {
	for _, tc := range []struct {
		m    onenet.Method
		want string
	}{
		{onenet.MethodMD5, "version=2018-10-31&res=products%2FCk2AF9QD2K%2Fdevices%2Ftest&et=32472115200&method=md5&sign=htDD26UhXtXayMFAWRmNiA%3D%3D"},
		{onenet.MethodSHA1, "version=2018-10-31&res=products%2FCk2AF9QD2K%2Fdevices%2Ftest&et=32472115200&method=sha1&sign=onzQlILHFFNqIY%2BdOXYM3lthLT8%3D"},
		{onenet.MethodSHA256, "version=2018-10-31&res=products%2FCk2AF9QD2K%2Fdevices%2Ftest&et=32472115200&method=sha256&sign=6Y4zbk3Sa89tRf9lMxCCE0jG74uEcEuu%2Fnly1pU9ADM%3D"},
	} {
		got, err := onenet.Token("products/Ck2AF9QD2K/devices/test", 32472115200, tc.m, onenet.KeyMAC(decode(t, docKey)))
		if err != nil || got != tc.want {
			t.Errorf("%v: Token = %q, %v; want %q", tc.m, got, err, tc.want)
		}
	}
}
