package aliyun_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"strings"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// subHMAC is the platform's sub-device rule written out by hand: HMAC over
// clientId, deviceName, productKey and timestamp, keys sorted.
func subHMAC(newHash func() hash.Hash, secret, pk, dn, cid, ts string) string {
	m := hmac.New(newHash, []byte(secret))
	m.Write([]byte("clientId" + cid + "deviceName" + dn + "productKey" + pk + "timestamp" + ts))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSignSubDeviceLogin(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		method  signing.Method
		newHash func() hash.Hash
		wire    string
		clean   bool
	}{
		{"sha256", signing.MethodHMACSHA256, sha256.New, "hmacSha256", true},
		{"sha1", signing.MethodHMACSHA1, sha1.New, "hmacSha1", false},
		{"md5", signing.MethodHMACMD5, md5.New, "hmacMd5", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := signing.SubDeviceLoginRequest{ProductKey: "a1SubPK01", DeviceName: "sensor-0001",
				ClientID: "a1SubPK01.sensor-0001", Timestamp: "1700000000000", Method: tc.method, CleanSession: tc.clean}
			got, err := signing.SignSubDeviceLogin(req, signing.DeviceSecretMAC([]byte(secret)))
			if err != nil {
				t.Fatal(err)
			}
			want := signing.SubDeviceLoginParams{
				ProductKey: "a1SubPK01", DeviceName: "sensor-0001", ClientID: "a1SubPK01.sensor-0001",
				Timestamp: "1700000000000", SignMethod: tc.wire,
				Sign:         subHMAC(tc.newHash, secret, "a1SubPK01", "sensor-0001", "a1SubPK01.sensor-0001", "1700000000000"),
				CleanSession: map[bool]string{true: "true", false: "false"}[tc.clean],
			}
			if got != want {
				t.Errorf("SignSubDeviceLogin =\n%+v\nwant\n%+v", got, want)
			}
			// signMethod and cleanSession are submitted but not signed.
			if c := signing.SubDeviceSignContent(req); c != "clientIda1SubPK01.sensor-0001deviceNamesensor-0001productKeya1SubPK01timestamp1700000000000" {
				t.Errorf("SubDeviceSignContent = %q", c)
			}
		})
	}
}

// The sub-device rule has the content of the CONNECT password, so every
// independent vector with a timestamp is also a known answer for it.
func TestSignSubDeviceLoginVectors(t *testing.T) {
	n := 0
	for _, v := range loadVectors(t) {
		if v.Input.Timestamp == "" {
			continue
		}
		n++
		m, err := signing.ParseMethod(v.Input.SignMethod)
		if err != nil {
			t.Fatal(err)
		}
		req := signing.SubDeviceLoginRequest{ProductKey: v.Input.ProductKey, DeviceName: v.Input.DeviceName,
			ClientID: v.Input.ClientID, Timestamp: v.Input.Timestamp, Method: m, CleanSession: true}
		if c := signing.SubDeviceSignContent(req); c != v.Expect.SignContent {
			t.Errorf("%s/%s: content %q, want %q", v.Input.ProductKey, v.Input.DeviceName, c, v.Expect.SignContent)
		}
		got, err := signing.SignSubDeviceLogin(req, signing.DeviceSecretMAC([]byte(v.Input.DeviceSecret)))
		if err != nil || got.Sign != v.Expect.Password {
			t.Errorf("%s/%s %s: sign %q, %v; want %q", v.Input.ProductKey, v.Input.DeviceName, v.Input.SignMethod, got.Sign, err, v.Expect.Password)
		}
		var seen string
		ext, err := signing.SignSubDeviceLogin(req, externalMAC([]byte(v.Input.DeviceSecret), &seen))
		if err != nil || ext != got || seen != v.Expect.SignContent {
			t.Errorf("%s/%s %s with an external MAC: %+v, %v (MAC saw %q); want %+v", v.Input.ProductKey, v.Input.DeviceName, v.Input.SignMethod, ext, err, seen, got)
		}
	}
	if n == 0 {
		t.Fatal("no vector has a timestamp")
	}
}

func TestSignSubDeviceLoginRejects(t *testing.T) {
	ok := signing.SubDeviceLoginRequest{ProductKey: "a1SubPK01", DeviceName: "sensor-0001",
		ClientID: "c1", Timestamp: "1", Method: signing.MethodHMACSHA256}
	tests := []struct {
		name   string
		mutate func(*signing.SubDeviceLoginRequest)
		secret string
		field  string
	}{
		{"bad productKey", func(r *signing.SubDeviceLoginRequest) { r.ProductKey = "a1-PK" }, "s", "productKey"},
		{"bad deviceName", func(r *signing.SubDeviceLoginRequest) { r.DeviceName = "a|b" }, "s", "deviceName"},
		{"clientId framing", func(r *signing.SubDeviceLoginRequest) { r.ClientID = "c|securemode=3|" }, "s", "clientId"},
		{"missing timestamp", func(r *signing.SubDeviceLoginRequest) { r.Timestamp = "" }, "s", "timestamp"},
		{"timestamp not digits", func(r *signing.SubDeviceLoginRequest) { r.Timestamp = "-1" }, "s", "timestamp"},
		{"no method", func(r *signing.SubDeviceLoginRequest) { r.Method = signing.MethodUnspecified }, "s", "signMethod"},
		{"empty secret", func(*signing.SubDeviceLoginRequest) {}, "", "deviceSecret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.mutate(&r)
			_, err := signing.SignSubDeviceLogin(r, signing.DeviceSecretMAC([]byte(tc.secret)))
			var fe *signing.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("SignSubDeviceLogin: %v, want a FieldError for %s", err, tc.field)
			}
		})
	}
}

func TestSubDeviceLoginTopic(t *testing.T) {
	tests := []struct {
		n           int
		topic, resp string
		wantErr     bool
	}{
		{1, "/ext/session/a1GwPK/gw-0001/combine/login", "/ext/session/a1GwPK/gw-0001/combine/login_reply", false},
		{2, "/ext/session/a1GwPK/gw-0001/combine/batch_login", "/ext/session/a1GwPK/gw-0001/combine/batch_login_reply", false},
		{50, "/ext/session/a1GwPK/gw-0001/combine/batch_login", "/ext/session/a1GwPK/gw-0001/combine/batch_login_reply", false},
		{0, "", "", true},
		{51, "", "", true},
	}
	for _, tc := range tests {
		topic, resp, err := signing.SubDeviceLoginTopic("a1GwPK", "gw-0001", tc.n)
		if topic != tc.topic || resp != tc.resp || (err != nil) != tc.wantErr {
			t.Errorf("SubDeviceLoginTopic(%d) = %q, %q, %v; want %q, %q, error %v", tc.n, topic, resp, err, tc.topic, tc.resp, tc.wantErr)
		}
	}
	// Names are framed into a topic: '/', '+' and '#' must never get in.
	for _, gw := range [][2]string{{"a1/GW", "gw-0001"}, {"a1GwPK", "gw/0001"}, {"a1GwPK", "gw+#"}} {
		if _, _, err := signing.SubDeviceLoginTopic(gw[0], gw[1], 1); err == nil {
			t.Errorf("SubDeviceLoginTopic(%q, %q) accepted", gw[0], gw[1])
		}
	}
}

func TestSubDeviceLoginPayload(t *testing.T) {
	p := func(dn string) signing.SubDeviceLoginParams {
		return signing.SubDeviceLoginParams{ProductKey: "a1SubPK01", DeviceName: dn, ClientID: "a1SubPK01." + dn,
			Timestamp: "1700000000000", SignMethod: "hmacSha256", Sign: "ab", CleanSession: "true"}
	}
	one, err := signing.SubDeviceLoginPayload("42", []signing.SubDeviceLoginParams{p("sensor-0001")})
	if err != nil {
		t.Fatal(err)
	}
	const wantOne = `{"id":"42","params":{"productKey":"a1SubPK01","deviceName":"sensor-0001","clientId":"a1SubPK01.sensor-0001",` +
		`"timestamp":"1700000000000","signMethod":"hmacSha256","sign":"ab","cleanSession":"true"}}`
	if one != wantOne {
		t.Errorf("login payload =\n%s\nwant\n%s", one, wantOne)
	}
	two, err := signing.SubDeviceLoginPayload("4294967295", []signing.SubDeviceLoginParams{p("sensor-0001"), p("sensor-0002")})
	if err != nil {
		t.Fatal(err)
	}
	var batch struct {
		ID     string `json:"id"`
		Params struct {
			DeviceList []signing.SubDeviceLoginParams `json:"deviceList"`
		} `json:"params"`
	}
	dec := json.NewDecoder(strings.NewReader(two))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil {
		t.Fatalf("batch payload %s: %v", two, err)
	}
	if batch.ID != "4294967295" || len(batch.Params.DeviceList) != 2 || batch.Params.DeviceList[1] != p("sensor-0002") {
		t.Errorf("batch payload = %s", two)
	}
	for _, id := range []string{"", "-1", "4294967296", "01", "1e3", "x"} {
		if _, err := signing.SubDeviceLoginPayload(id, []signing.SubDeviceLoginParams{p("sensor-0001")}); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	if _, err := signing.SubDeviceLoginPayload("1", nil); err == nil {
		t.Error("no params accepted")
	}
	if _, err := signing.SubDeviceLoginPayload("1", make([]signing.SubDeviceLoginParams, 51)); err == nil {
		t.Error("51 params accepted")
	}
}

func TestSubDeviceMethodName(t *testing.T) {
	for m, want := range map[signing.Method]string{
		signing.MethodHMACSHA256: "hmacSha256", signing.MethodHMACSHA1: "hmacSha1", signing.MethodHMACMD5: "hmacMd5",
		signing.MethodUnspecified: "", signing.Method(99): "",
	} {
		if got := signing.SubDeviceMethodName(m); got != want {
			t.Errorf("SubDeviceMethodName(%v) = %q, want %q", m, got, want)
		}
	}
}
