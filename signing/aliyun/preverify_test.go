package aliyun_test

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
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

// formSignContent applies the platform's pre-verification rule to form
// independently of the package: every submitted parameter except version,
// sign, resources and signmethod, keys sorted, key and value concatenated.
func formSignContent(t *testing.T, form url.Values) string {
	t.Helper()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(form)) {
		switch k {
		case "version", "sign", "resources", "signmethod":
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

// hashFor returns the hash constructor of a sign method name.
func hashFor(t *testing.T, name string) func() hash.Hash {
	t.Helper()
	switch name {
	case "hmacsha256":
		return sha256.New
	case "hmacsha1":
		return sha1.New
	case "hmacmd5":
		return md5.New
	}
	t.Fatalf("unknown sign method %q", name)
	return nil
}

// wantForm returns the form the platform expects for the given fields.
func wantForm(pk, dn, cid, ts, method, sign string) url.Values {
	f := url.Values{
		"productKey": {pk},
		"deviceName": {dn},
		"clientId":   {cid},
		"signmethod": {method},
		"sign":       {sign},
		"resources":  {"mqtt"},
		"version":    {"default"},
	}
	if ts != "" {
		f["timestamp"] = []string{ts}
	}
	return f
}

// TestSignPreVerifyVectors cross-checks the pre-verification form against
// the independent MQTT vectors: its sign content is the MQTT password's,
// so for the same clientId and timestamp the sign equals the password.
func TestSignPreVerifyVectors(t *testing.T) {
	vs := loadVectors(t)
	var withTS, withoutTS int
	for i, v := range vs {
		t.Run(v.Input.SignMethod+"/"+v.Input.DeviceName, func(t *testing.T) {
			t.Logf("case %d", i)
			m, err := signing.ParseMethod(v.Input.SignMethod)
			if err != nil {
				t.Fatal(err)
			}
			req := signing.PreVerifyRequest{
				ProductKey: v.Input.ProductKey,
				DeviceName: v.Input.DeviceName,
				ClientID:   v.Input.ClientID,
				Timestamp:  v.Input.Timestamp,
				Method:     m,
			}
			if got := signing.PreVerifySignContent(req); got != v.Expect.SignContent {
				t.Errorf("PreVerifySignContent(%+v) = %q, want %q", req, got, v.Expect.SignContent)
			}
			secret := []byte(v.Input.DeviceSecret)
			form, err := signing.SignPreVerify(req, signing.DeviceSecretMAC(secret))
			if err != nil {
				t.Fatalf("SignPreVerify: %v", err)
			}
			want := wantForm(v.Input.ProductKey, v.Input.DeviceName, v.Input.ClientID, v.Input.Timestamp, v.Input.SignMethod, v.Expect.Password)
			if !reflect.DeepEqual(form, want) {
				t.Errorf("SignPreVerify(%+v) =\n%v\nwant\n%v", req, form, want)
			}
			// The platform's rule applied to the form as submitted, with
			// crypto/hmac directly, gives the same sign.
			content := formSignContent(t, form)
			if content != v.Expect.SignContent {
				t.Errorf("sign content of the submitted form = %q, want %q", content, v.Expect.SignContent)
			}
			if ref := referenceHMAC(hashFor(t, v.Input.SignMethod), v.Input.DeviceSecret, content); form.Get("sign") != ref {
				t.Errorf("sign = %q, reference HMAC over the form = %q", form.Get("sign"), ref)
			}
			// A MAC computed elsewhere (the Transit path) gives the same form.
			var seen string
			form2, err := signing.SignPreVerify(req, externalMAC(secret, &seen))
			if err != nil || !reflect.DeepEqual(form2, want) || seen != v.Expect.SignContent {
				t.Errorf("SignPreVerify(%+v, external MAC) = %v, %v (MAC saw %q); want %v, nil", req, form2, err, seen, want)
			}
		})
		if v.Input.Timestamp != "" {
			withTS++
		} else {
			withoutTS++
		}
	}
	if withTS == 0 || withoutTS == 0 {
		t.Errorf("vectors cover %d cases with and %d without a timestamp; want both", withTS, withoutTS)
	}
}

func TestSignPreVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	base := signing.PreVerifyRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Timestamp:  "1700000000000",
		Method:     signing.MethodHMACSHA1,
	}
	tests := []struct {
		name        string
		edit        func(*signing.PreVerifyRequest)
		wantContent string
		wantEncoded string
	}{
		{
			// Hand-checked: the password of the same MQTT login.
			name:        "hand-checked hmacsha1",
			edit:        func(*signing.PreVerifyRequest) {},
			wantContent: "clientIddev-001deviceNamedev-001productKeya1FakePK01timestamp1700000000000",
			wantEncoded: "clientId=dev-001&deviceName=dev-001&productKey=a1FakePK01&resources=mqtt" +
				"&sign=d4a300da6b324e3b82d6868e6435c22bbcbba73b&signmethod=hmacsha1&timestamp=1700000000000&version=default",
		},
		{
			name:        "no timestamp",
			edit:        func(r *signing.PreVerifyRequest) { r.Timestamp = "" },
			wantContent: "clientIddev-001deviceNamedev-001productKeya1FakePK01",
			wantEncoded: "clientId=dev-001&deviceName=dev-001&productKey=a1FakePK01&resources=mqtt" +
				"&sign=" + referenceHMAC(sha1.New, string(secret), "clientIddev-001deviceNamedev-001productKeya1FakePK01") +
				"&signmethod=hmacsha1&version=default",
		},
		{
			name: "hmacsha256, console-style clientId",
			edit: func(r *signing.PreVerifyRequest) {
				r.Method = signing.MethodHMACSHA256
				r.ClientID = "a1FakePK01.dev-001"
			},
			wantContent: "clientIda1FakePK01.dev-001deviceNamedev-001productKeya1FakePK01timestamp1700000000000",
			wantEncoded: "clientId=a1FakePK01.dev-001&deviceName=dev-001&productKey=a1FakePK01&resources=mqtt" +
				"&sign=" + referenceHMAC(sha256.New, string(secret), "clientIda1FakePK01.dev-001deviceNamedev-001productKeya1FakePK01timestamp1700000000000") +
				"&signmethod=hmacsha256&timestamp=1700000000000&version=default",
		},
		{
			name: "hmacmd5, characters that need no escaping",
			edit: func(r *signing.PreVerifyRequest) {
				r.Method = signing.MethodHMACMD5
				r.DeviceName = "dev_1.a@b:c-d"
				r.ClientID = "mac:00-11_22.33@x"
			},
			wantContent: "clientIdmac:00-11_22.33@xdeviceNamedev_1.a@b:c-dproductKeya1FakePK01timestamp1700000000000",
			wantEncoded: "clientId=mac%3A00-11_22.33%40x&deviceName=dev_1.a%40b%3Ac-d&productKey=a1FakePK01&resources=mqtt" +
				"&sign=" + referenceHMAC(md5.New, string(secret), "clientIdmac:00-11_22.33@xdeviceNamedev_1.a@b:c-dproductKeya1FakePK01timestamp1700000000000") +
				"&signmethod=hmacmd5&timestamp=1700000000000&version=default",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := base
			tc.edit(&req)
			if got := signing.PreVerifySignContent(req); got != tc.wantContent {
				t.Errorf("PreVerifySignContent = %q, want %q", got, tc.wantContent)
			}
			form, err := signing.SignPreVerify(req, signing.DeviceSecretMAC(secret))
			if err != nil {
				t.Fatalf("SignPreVerify: %v", err)
			}
			if got := form.Encode(); got != tc.wantEncoded {
				t.Errorf("SignPreVerify(%+v).Encode() =\n%s\nwant\n%s", req, got, tc.wantEncoded)
			}
			if got := formSignContent(t, form); got != tc.wantContent {
				t.Errorf("sign content of the submitted form = %q, want %q", got, tc.wantContent)
			}
			// Decoding what goes on the wire gives the form back.
			back, err := url.ParseQuery(form.Encode())
			if err != nil || !reflect.DeepEqual(back, form) {
				t.Errorf("ParseQuery(Encode()) = %v, %v; want %v", back, err, form)
			}
		})
	}
}

// TestSignPreVerifyFreshForm checks that each call returns its own form.
func TestSignPreVerifyFreshForm(t *testing.T) {
	req := signing.PreVerifyRequest{ProductKey: "pk1", DeviceName: "dev1", ClientID: "c", Method: signing.MethodHMACSHA256}
	a, err := signing.SignPreVerify(req, signing.DeviceSecretMAC([]byte("s")))
	if err != nil {
		t.Fatal(err)
	}
	want := a.Encode()
	a.Set("sign", "tampered")
	a["productKey"][0] = "x"
	b, err := signing.SignPreVerify(req, signing.DeviceSecretMAC([]byte("s")))
	if err != nil || b.Encode() != want {
		t.Errorf("second SignPreVerify = %q, %v; want %q, nil", b.Encode(), err, want)
	}
}

func TestSignPreVerifyErrors(t *testing.T) {
	secret := []byte("topsecret-0123456789")
	valid := signing.PreVerifyRequest{
		ProductKey: "a1FakePK01", DeviceName: "dev-001", ClientID: "dev-001",
		Timestamp: "1700000000000", Method: signing.MethodHMACSHA256,
	}
	tests := []struct {
		name      string
		edit      func(*signing.PreVerifyRequest)
		secret    []byte
		wantField string
		wantMsg   string
	}{
		{"empty productKey", func(r *signing.PreVerifyRequest) { r.ProductKey = "" }, secret, "productKey", errProductKey},
		{"productKey with '&'", func(r *signing.PreVerifyRequest) { r.ProductKey = "a1&sign=x" }, secret, "productKey", errProductKey},
		{"short deviceName", func(r *signing.PreVerifyRequest) { r.DeviceName = "dev" }, secret, "deviceName", errDeviceName},
		{"deviceName with '='", func(r *signing.PreVerifyRequest) { r.DeviceName = "dev=001" }, secret, "deviceName", errDeviceName},
		{"empty clientId", func(r *signing.PreVerifyRequest) { r.ClientID = "" }, secret, "clientId", errClientID},
		{"clientId of 65", func(r *signing.PreVerifyRequest) { r.ClientID = strings.Repeat("c", 65) }, secret, "clientId", errClientID},
		{"clientId with '|'", func(r *signing.PreVerifyRequest) { r.ClientID = "c|securemode=3|" }, secret, "clientId", errClientID},
		{"timestamp not digits", func(r *signing.PreVerifyRequest) { r.Timestamp = "17e11" }, secret, "timestamp", errTimestamp},
		{"timestamp of 20 digits", func(r *signing.PreVerifyRequest) { r.Timestamp = strings.Repeat("1", 20) }, secret, "timestamp", errTimestamp},
		{"unspecified method", func(r *signing.PreVerifyRequest) { r.Method = signing.MethodUnspecified }, secret, "signMethod", errSignMethod},
		{"unknown method", func(r *signing.PreVerifyRequest) { r.Method = signing.Method(9) }, secret, "signMethod", errSignMethod},
		{"nil secret", func(*signing.PreVerifyRequest) {}, nil, "deviceSecret", errSecret},
		{"empty secret", func(*signing.PreVerifyRequest) {}, []byte{}, "deviceSecret", errSecret},
		{"first invalid field wins", func(r *signing.PreVerifyRequest) { r.DeviceName = ""; r.Method = 0 }, nil, "deviceName", errDeviceName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := valid
			tc.edit(&req)
			form, err := signing.SignPreVerify(req, signing.DeviceSecretMAC(tc.secret))
			if form != nil {
				t.Errorf("SignPreVerify returned form %v alongside an error", form)
			}
			checkFieldError(t, "SignPreVerify", err, tc.wantField, tc.wantMsg)
			if err != nil && len(tc.secret) > 0 && strings.Contains(err.Error(), string(tc.secret)) {
				t.Errorf("error %q contains the secret", err)
			}
			if len(tc.secret) > 0 {
				checkFieldError(t, "Validate", req.Validate(), tc.wantField, tc.wantMsg)
			}
		})
	}
	if err := valid.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v, want nil", valid, err)
	}
}

func ExampleSignPreVerify() {
	form, err := signing.SignPreVerify(signing.PreVerifyRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Timestamp:  "1700000000000",
		Method:     signing.MethodHMACSHA1,
	}, signing.DeviceSecretMAC([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The body of POST https://iot-auth.{regionId}.aliyuncs.com/auth/devicename:
	fmt.Println(form.Encode())
	// Output:
	// clientId=dev-001&deviceName=dev-001&productKey=a1FakePK01&resources=mqtt&sign=d4a300da6b324e3b82d6868e6435c22bbcbba73b&signmethod=hmacsha1&timestamp=1700000000000&version=default
}
