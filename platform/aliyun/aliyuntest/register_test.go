package aliyuntest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
)

// A registration computed with `openssl dgst -hmac`, independently of the
// emulator's crypto.
const (
	regPK       = "a1RegTest"
	regDN       = "device-0001"
	regSecret   = "vDZ7RMMGZ1dCq6SYq2e6ad6NnHhZ9Emm"
	regRandom   = "8Ygb7ULYh53B6OA"
	regSHA256   = "e084883826bb04e5c231fcc3adc9e4040bad0095d956a01ffc91b6fec70050b6"
	regSHA1     = "100b9c52df1caf0da869f214125d79494e10ff1b"
	regMD5      = "225a3c3c6a1ead077a4c60a36d5a2e3f"
	formCT      = "application/x-www-form-urlencoded"
	otherSecret = "0000000000000000000000000000000a"
)

func regForm() url.Values {
	return url.Values{
		"productKey": {regPK}, "deviceName": {regDN}, "random": {regRandom},
		"signMethod": {"hmacsha256"}, "sign": {regSHA256},
	}
}

// regAnswer is a registration answer.
type regAnswer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    *struct {
		ProductKey   string `json:"productKey"`
		DeviceName   string `json:"deviceName"`
		DeviceSecret string `json:"deviceSecret"`
	} `json:"data"`
}

func postRegister(t *testing.T, s *platformtest.Server, ct, body string) regAnswer {
	t.Helper()
	status, h, b, err := post(t, s, http.MethodPost, platformtest.RegisterPath, ct, body)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST %s: %d, %v", platformtest.RegisterPath, status, err)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	var a regAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return a
}

// signFor signs a registration of regPK/dn with random r independently.
func signFor(productSecret, dn, r string) string {
	m := hmac.New(sha256.New, []byte(productSecret))
	m.Write([]byte("deviceName" + dn + "productKey" + regPK + "random" + r))
	return hex.EncodeToString(m.Sum(nil))
}

func TestRegisterSuccess(t *testing.T) {
	for _, tc := range []struct{ method, sign string }{
		{"hmacsha256", regSHA256}, {"hmacsha1", regSHA1}, {"hmacmd5", regMD5}, {"hmacsha256", strings.ToUpper(regSHA256)},
	} {
		t.Run(tc.method+"/"+tc.sign[:4], func(t *testing.T) {
			s := platformtest.New(t)
			s.AddProduct(regPK, regSecret)
			iotID := s.AllowRegistration(regPK, regDN)
			initial, _ := s.DeviceSecret(regPK, regDN)
			form := regForm()
			form.Set("signMethod", tc.method)
			form.Set("sign", tc.sign)
			a := postRegister(t, s, formCT, form.Encode())
			if a.Code != platformtest.CodeSuccess || a.Message != "success" || a.Data == nil {
				t.Fatalf("answer %+v, want success", a)
			}
			if a.Data.ProductKey != regPK || a.Data.DeviceName != regDN || len(a.Data.DeviceSecret) != 32 || a.Data.DeviceSecret == initial {
				t.Errorf("data %+v", *a.Data)
			}
			if got, _ := s.DeviceSecret(regPK, regDN); got != a.Data.DeviceSecret {
				t.Errorf("DeviceSecret() = %q, want the issued %q", got, a.Data.DeviceSecret)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Path != platformtest.RegisterPath || !reqs[0].Accepted() ||
				reqs[0].DeviceSecret != a.Data.DeviceSecret || reqs[0].Form.Encode() != form.Encode() {
				t.Errorf("recorded %+v", reqs)
			}
			if again := s.AllowRegistration(regPK, regDN); again != iotID {
				t.Errorf("AllowRegistration again changed the iotId")
			}
		})
	}
}

// TestRegisterNewestSecretWins checks that each registration supersedes the
// last, for pre-verification too, and that a successful pre-verification
// activates the device, which ends registration.
func TestRegisterNewestSecretWins(t *testing.T) {
	s := platformtest.New(t)
	s.AddProduct(regPK, regSecret)
	s.AllowRegistration(regPK, regDN)
	register := func(r string) regAnswer {
		f := regForm()
		f.Set("random", r)
		f.Set("sign", signFor(regSecret, regDN, r))
		return postRegister(t, s, formCT, f.Encode())
	}
	first, second := register("r1"), register("r2")
	if first.Code != 200 || second.Code != 200 || first.Data.DeviceSecret == second.Data.DeviceSecret {
		t.Fatalf("registrations %+v, %+v", first, second)
	}
	preVerify := func(secret string) int {
		f := url.Values{"productKey": {regPK}, "deviceName": {regDN}, "clientId": {"c1"}, "signmethod": {"hmacsha256"}}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("clientIdc1deviceName" + regDN + "productKey" + regPK))
		f.Set("sign", hex.EncodeToString(m.Sum(nil)))
		return postForm(t, s, f).Code
	}
	if code := preVerify(first.Data.DeviceSecret); code != platformtest.CodeSignatureMismatch {
		t.Errorf("pre-verification with the superseded secret: code %d, want 401", code)
	}
	if code := register("r3").Code; code != 200 {
		t.Errorf("a failed pre-verification must not activate: registration code %d", code)
	}
	newest, _ := s.DeviceSecret(regPK, regDN)
	if code := preVerify(newest); code != platformtest.CodeSuccess {
		t.Fatalf("pre-verification with the newest secret: code %d, want 200", code)
	}
	a := register("r4")
	if a.Code != platformtest.CodeAlreadyActivated || a.Data != nil {
		t.Errorf("registration after activation: %+v, want code 6288 without data", a)
	}
	if got, _ := s.DeviceSecret(regPK, regDN); got != newest {
		t.Error("a refused registration changed the secret")
	}
}

func TestRegisterActivate(t *testing.T) {
	s := platformtest.New(t)
	s.AddProduct(regPK, regSecret)
	s.AddDevice(regPK, regDN, otherSecret)
	if !s.Activate(regPK, regDN) || s.Activate(regPK, "nobody-here") {
		t.Fatal("Activate reports the wrong existence")
	}
	if a := postRegister(t, s, formCT, regForm().Encode()); a.Code != platformtest.CodeAlreadyActivated {
		t.Errorf("code %d, want 6288", a.Code)
	}
}

func TestRegisterRules(t *testing.T) {
	s := platformtest.New(t)
	s.AddProduct(regPK, regSecret)
	s.AllowRegistration(regPK, regDN)
	s.AddProduct("a1NoDevices", regSecret)
	tests := []struct {
		name     string
		edit     func(url.Values)
		ct       string
		query    bool
		wantCode int
	}{
		{name: "JSON content type", edit: func(url.Values) {}, ct: "application/json", wantCode: 460},
		{name: "parameters in the query", edit: func(url.Values) {}, query: true, wantCode: 460},
		{name: "no random", edit: func(f url.Values) { f.Del("random") }, wantCode: 460},
		{name: "empty sign", edit: func(f url.Values) { f.Set("sign", "") }, wantCode: 460},
		{name: "no productKey", edit: func(f url.Values) { f.Del("productKey") }, wantCode: 460},
		{name: "no deviceName", edit: func(f url.Values) { f.Del("deviceName") }, wantCode: 460},
		{name: "signmethod spelt as for pre-verification", edit: func(f url.Values) { f.Set("signmethod", f.Get("signMethod")); f.Del("signMethod") }, wantCode: 460},
		{name: "unknown parameter", edit: func(f url.Values) { f.Set("clientId", "x") }, wantCode: 460},
		{name: "repeated parameter", edit: func(f url.Values) { f.Add("random", "x") }, wantCode: 460},
		{name: "sha512", edit: func(f url.Values) { f.Set("signMethod", "hmacsha512") }, wantCode: 460},
		{name: "upper-case method", edit: func(f url.Values) { f.Set("signMethod", "HmacSHA256") }, wantCode: 460},
		{name: "random with a dash", edit: func(f url.Values) { f.Set("random", "ab-cd") }, wantCode: 460},
		{name: "random too long", edit: func(f url.Values) { f.Set("random", strings.Repeat("a", 65)) }, wantCode: 460},
		{name: "sign not hex", edit: func(f url.Values) { f.Set("sign", "zz"+regSHA256[2:]) }, wantCode: 401},
		{name: "sign of another random", edit: func(f url.Values) { f.Set("random", "other1") }, wantCode: 401},
		{name: "sign with another ProductSecret", edit: func(f url.Values) { f.Set("sign", signFor(otherSecret, regDN, regRandom)) }, wantCode: 401},
		{name: "sign of another method", edit: func(f url.Values) { f.Set("signMethod", "hmacsha1") }, wantCode: 401},
		{name: "unknown product", edit: func(f url.Values) { f.Set("productKey", "a1Unknown") }, wantCode: 5001},
		{name: "unknown device", edit: func(f url.Values) {
			f.Set("deviceName", "device-0002")
			f.Set("sign", signFor(regSecret, "device-0002", regRandom))
		}, wantCode: 5001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := regForm()
			tc.edit(form)
			ct := formCT
			if tc.ct != "" {
				ct = tc.ct
			}
			var a regAnswer
			if tc.query {
				status, _, b, err := post(t, s, http.MethodPost, platformtest.RegisterPath+"?"+form.Encode(), ct, form.Encode())
				if err != nil || status != 200 || json.Unmarshal(b, &a) != nil {
					t.Fatalf("%d %v %s", status, err, b)
				}
			} else {
				a = postRegister(t, s, ct, form.Encode())
			}
			if a.Code != tc.wantCode || a.Data != nil {
				t.Errorf("answer %+v, want code %d without data", a, tc.wantCode)
			}
		})
	}
	// None of them issued a secret.
	for _, r := range s.Requests() {
		if r.DeviceSecret != "" || r.Accepted() {
			t.Errorf("request %+v issued a secret", r)
		}
	}
}

func TestRegisterFaults(t *testing.T) {
	s := platformtest.New(t)
	s.AddProduct(regPK, regSecret)
	s.AllowRegistration(regPK, regDN)
	before, _ := s.DeviceSecret(regPK, regDN)

	s.Inject(platformtest.Fault{Kind: platformtest.FaultMissingFields, Times: 1})
	a := postRegister(t, s, formCT, regForm().Encode())
	if a.Code != 200 || a.Data == nil || a.Data.DeviceSecret != "" || a.Data.DeviceName != regDN {
		t.Errorf("missing-fields answer %+v, want code 200 without data.deviceSecret", a)
	}

	s.Inject(platformtest.Fault{Kind: platformtest.FaultTruncatedJSON, Times: 1})
	status, _, b, err := post(t, s, http.MethodPost, platformtest.RegisterPath, formCT, regForm().Encode())
	if err != nil || status != 200 || json.Valid(b) || !strings.Contains(string(b), `"code":200`) {
		t.Errorf("truncated answer %d %v %s", status, err, b)
	}

	s.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 500, Message: "busy", Times: 1})
	if a := postRegister(t, s, formCT, regForm().Encode()); a.Code != 500 || a.Message != "busy" {
		t.Errorf("code fault answer %+v", a)
	}
	if after, _ := s.DeviceSecret(regPK, regDN); after != before {
		t.Error("a faulted registration changed the device's secret")
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Fault != platformtest.FaultMissingFields || reqs[2].Fault != platformtest.FaultCode || reqs[0].Form.Get("random") != regRandom {
		t.Errorf("recorded %+v", reqs)
	}
}

// TestRegisterDropAnswer: the registration is processed (a new secret is
// issued and recorded) but no answer is sent.
func TestRegisterDropAnswer(t *testing.T) {
	s := platformtest.New(t)
	s.AddProduct(regPK, regSecret)
	s.AllowRegistration(regPK, regDN)
	before, _ := s.DeviceSecret(regPK, regDN)
	s.Inject(platformtest.Fault{Kind: platformtest.FaultDropAnswer, Times: 1})
	if _, _, _, err := post(t, s, http.MethodPost, platformtest.RegisterPath, formCT, regForm().Encode()); err == nil {
		t.Fatal("the client got an answer")
	}
	after, _ := s.DeviceSecret(regPK, regDN)
	reqs := s.Requests()
	if len(reqs) != 1 || !reqs[0].Accepted() || reqs[0].HTTPStatus != 0 || reqs[0].DeviceSecret != after || after == before {
		t.Errorf("recorded %+v; the secret changed: %v", reqs, after != before)
	}
}

// TestConnectionFaults: connection faults apply to new connections in
// order, are counted apart from requests, and leave request faults alone.
func TestConnectionFaults(t *testing.T) {
	s := platformtest.New(t)
	s.AddProduct(regPK, regSecret)
	s.AllowRegistration(regPK, regDN)
	s.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 460, Times: 1})
	s.Inject(platformtest.Fault{Kind: platformtest.FaultHandshakeFailure, Times: 1})
	s.Inject(platformtest.Fault{Kind: platformtest.FaultRefuseConnection, Times: 1})
	c := s.Client()
	do := func() (*http.Response, error) {
		c.CloseIdleConnections() // a fresh connection each time
		return c.Post(s.URL()+platformtest.RegisterPath, formCT, strings.NewReader(regForm().Encode()))
	}
	if _, err := do(); err == nil || !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Errorf("first connection: %v, want a failed TLS handshake", err)
	}
	if _, err := do(); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("second connection: %v, want connection refused", err)
	}
	resp, err := do()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := s.Requests()
	if s.ConnFaults() != 2 || s.Calls() != 1 || len(reqs) != 1 || reqs[0].Code != 460 {
		t.Errorf("%d connection faults, %d calls, %+v; want 2, 1 and the request fault", s.ConnFaults(), s.Calls(), reqs)
	}
}
