package aliyun_test

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// registerFormContent applies the platform's registration rule to a form
// independently of the package: deviceName, productKey and random, keys
// sorted, key and value concatenated.
func registerFormContent(t *testing.T, form url.Values) string {
	t.Helper()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(form)) {
		if k == "sign" || k == "signMethod" {
			continue
		}
		if len(form[k]) != 1 {
			t.Fatalf("form field %q has %d values, want 1", k, len(form[k]))
		}
		b.WriteString(k)
		b.WriteString(form[k][0])
	}
	return b.String()
}

func TestSignRegister(t *testing.T) {
	const productSecret = "vDZ7RMMGZ1dCq6SYq2e6ad6NnHhZ9Emm"
	const content = "deviceNamedevice-0001productKeya1RegTestrandom8Ygb7ULYh53B6OA"
	// The signs were computed with `openssl dgst -hmac`, independently of
	// Go's crypto.
	tests := []struct {
		method signing.Method
		name   string
		sign   string
		newH   func() hash.Hash
	}{
		{signing.MethodHMACSHA256, "hmacsha256", "e084883826bb04e5c231fcc3adc9e4040bad0095d956a01ffc91b6fec70050b6", sha256.New},
		{signing.MethodHMACSHA1, "hmacsha1", "100b9c52df1caf0da869f214125d79494e10ff1b", sha1.New},
		{signing.MethodHMACMD5, "hmacmd5", "225a3c3c6a1ead077a4c60a36d5a2e3f", md5.New},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := signing.RegisterRequest{ProductKey: "a1RegTest", DeviceName: "device-0001", Random: "8Ygb7ULYh53B6OA", Method: tc.method}
			if got := signing.RegisterSignContent(req); got != content {
				t.Errorf("RegisterSignContent = %q, want %q", got, content)
			}
			form, err := signing.SignRegister(req, signing.ProductSecretMAC([]byte(productSecret)))
			if err != nil {
				t.Fatalf("SignRegister: %v", err)
			}
			want := url.Values{
				"productKey": {"a1RegTest"},
				"deviceName": {"device-0001"},
				"random":     {"8Ygb7ULYh53B6OA"},
				"signMethod": {tc.name},
				"sign":       {tc.sign},
			}
			if !reflect.DeepEqual(form, want) {
				t.Errorf("SignRegister =\n%v\nwant\n%v", form, want)
			}
			var seen string
			if ext, err := signing.SignRegister(req, externalMAC([]byte(productSecret), &seen)); err != nil || !reflect.DeepEqual(ext, want) || seen != content {
				t.Errorf("SignRegister with an external MAC =\n%v, %v (MAC saw %q)\nwant\n%v", ext, err, seen, want)
			}
			// The rule applied to the form as submitted gives the same sign.
			if got := registerFormContent(t, form); got != content {
				t.Errorf("sign content of the submitted form = %q, want %q", got, content)
			}
			if ref := referenceHMAC(tc.newH, productSecret, content); ref != tc.sign {
				t.Errorf("reference HMAC = %q, want the openssl value %q", ref, tc.sign)
			}
			back, err := url.ParseQuery(form.Encode())
			if err != nil || !reflect.DeepEqual(back, form) {
				t.Errorf("ParseQuery(Encode()) = %v, %v; want %v", back, err, form)
			}
		})
	}
}

func TestSignRegisterEscaping(t *testing.T) {
	req := signing.RegisterRequest{ProductKey: "a1PK", DeviceName: "mac:00-11_22.33@x", Random: "r1", Method: signing.MethodHMACSHA256}
	form, err := signing.SignRegister(req, signing.ProductSecretMAC([]byte("s3cr3t")))
	if err != nil {
		t.Fatal(err)
	}
	want := "deviceName=mac%3A00-11_22.33%40x&productKey=a1PK&random=r1&sign=" +
		referenceHMAC(sha256.New, "s3cr3t", "deviceNamemac:00-11_22.33@xproductKeya1PKrandomr1") + "&signMethod=hmacsha256"
	if got := form.Encode(); got != want {
		t.Errorf("Encode() =\n%s\nwant\n%s", got, want)
	}
}

func TestSignRegisterErrors(t *testing.T) {
	const secret = "pr0ductS3cretValue"
	good := signing.RegisterRequest{ProductKey: "a1PK", DeviceName: "dev-001", Random: "abc123", Method: signing.MethodHMACSHA256}
	tests := []struct {
		name      string
		edit      func(*signing.RegisterRequest)
		secret    string
		wantField string
	}{
		{"empty product key", func(r *signing.RegisterRequest) { r.ProductKey = "" }, secret, "productKey"},
		{"product key with a pipe", func(r *signing.RegisterRequest) { r.ProductKey = "a1|x" }, secret, "productKey"},
		{"short device name", func(r *signing.RegisterRequest) { r.DeviceName = "abc" }, secret, "deviceName"},
		{"device name with &", func(r *signing.RegisterRequest) { r.DeviceName = "dev&x=1" }, secret, "deviceName"},
		{"empty random", func(r *signing.RegisterRequest) { r.Random = "" }, secret, "random"},
		{"random with a dash", func(r *signing.RegisterRequest) { r.Random = "ab-c" }, secret, "random"},
		{"random with an ampersand", func(r *signing.RegisterRequest) { r.Random = "a&sign=x" }, secret, "random"},
		{"random too long", func(r *signing.RegisterRequest) { r.Random = strings.Repeat("a", 65) }, secret, "random"},
		{"no method", func(r *signing.RegisterRequest) { r.Method = signing.MethodUnspecified }, secret, "signMethod"},
		{"bad method", func(r *signing.RegisterRequest) { r.Method = 42 }, secret, "signMethod"},
		{"empty product secret", func(*signing.RegisterRequest) {}, "", "productSecret"},
		{"first bad field wins", func(r *signing.RegisterRequest) { r.DeviceName, r.Random = "x", "" }, secret, "deviceName"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			tc.edit(&req)
			form, err := signing.SignRegister(req, signing.ProductSecretMAC([]byte(tc.secret)))
			var fe *signing.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("SignRegister = %v, %v; want a FieldError for %s", form, err, tc.wantField)
			}
			if form != nil {
				t.Errorf("form %v alongside an error", form)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
	// The longest random is fine.
	req := good
	req.Random = strings.Repeat("Z9", 32)
	if _, err := signing.SignRegister(req, signing.ProductSecretMAC([]byte(secret))); err != nil {
		t.Errorf("64-character random: %v", err)
	}
}

// TestSignRegisterSecretNotInForm checks that no form field carries the
// ProductSecret or any part of it in the clear.
func TestSignRegisterSecretNotInForm(t *testing.T) {
	const secret = "ThisIsTheProductSecret0123456789"
	form, err := signing.SignRegister(signing.RegisterRequest{
		ProductKey: "a1PK", DeviceName: "dev-001", Random: "r", Method: signing.MethodHMACMD5,
	}, signing.ProductSecretMAC([]byte(secret)))
	if err != nil {
		t.Fatal(err)
	}
	if enc := form.Encode(); strings.Contains(enc, secret) || strings.Contains(fmt.Sprint(form), secret) {
		t.Errorf("form %s contains the ProductSecret", enc)
	}
}
