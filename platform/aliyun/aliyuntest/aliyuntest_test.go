package aliyuntest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/vectors"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
)

// The hand-checked case of shared/vectors/README.md: for these inputs the
// sign is d4a300da6b324e3b82d6868e6435c22bbcbba73b.
const (
	pk     = "a1FakePK01"
	dn     = "dev-001"
	secret = "0123456789abcdef0123456789abcdef"
	sign   = "d4a300da6b324e3b82d6868e6435c22bbcbba73b"
)

// validForm returns the hand-checked form.
func validForm() url.Values {
	return url.Values{
		"productKey": {pk}, "deviceName": {dn}, "clientId": {dn}, "timestamp": {"1700000000000"},
		"signmethod": {"hmacsha1"}, "sign": {sign}, "resources": {"mqtt"}, "version": {"default"},
	}
}

// answer is the platform's JSON answer.
type answer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    *struct {
		IotID     string `json:"iotId"`
		IotToken  string `json:"iotToken"`
		Resources *struct {
			MQTT *struct {
				Host string `json:"host"`
				Port int    `json:"port"`
			} `json:"mqtt"`
		} `json:"resources"`
	} `json:"data"`
}

// post sends a raw request and returns the status, the raw body and the
// error of the exchange.
func post(t *testing.T, s *platformtest.Server, method, path, ctype, body string) (int, http.Header, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// postForm posts form as the platform expects and decodes the answer.
func postForm(t *testing.T, s *platformtest.Server, form url.Values) answer {
	t.Helper()
	status, _, body, err := post(t, s, http.MethodPost, platformtest.Path, "application/x-www-form-urlencoded", form.Encode())
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST: status %d, %v", status, err)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return a
}

func hmacSHA1Hex(key, msg string) string {
	h := hmac.New(sha1.New, []byte(key))
	h.Write([]byte(msg))
	return hex.EncodeToString(h.Sum(nil))
}

// TestVectors checks that the emulator accepts the independent vectors'
// passwords as signs, in either case.
func TestVectors(t *testing.T) {
	s := platformtest.New(t, platformtest.WithMQTT("mqtt.example.test", 8883))
	for i, v := range vectors.MustLoad() {
		in := v.Input
		iotID := s.AddDevice(in.ProductKey, in.DeviceName, in.DeviceSecret)
		sg := v.Expect.Password
		if i%2 == 1 {
			sg = strings.ToUpper(sg)
		}
		form := url.Values{
			"productKey": {in.ProductKey}, "deviceName": {in.DeviceName}, "clientId": {in.ClientID},
			"signmethod": {in.SignMethod}, "sign": {sg}, "resources": {"mqtt"},
		}
		if in.Timestamp != "" {
			form.Set("timestamp", in.Timestamp)
		}
		a := postForm(t, s, form)
		if a.Code != 200 || a.Data == nil || a.Data.IotID != iotID || a.Data.IotToken == "" ||
			a.Data.Resources == nil || a.Data.Resources.MQTT == nil ||
			a.Data.Resources.MQTT.Host != "mqtt.example.test" || a.Data.Resources.MQTT.Port != 8883 {
			t.Errorf("case %d: answer %+v, want success for iotId %s on mqtt.example.test:8883", i, a, iotID)
			continue
		}
		if d, ok := s.Issued(iotID, a.Data.IotToken); !ok || d != (platformtest.Device{ProductKey: in.ProductKey, DeviceName: in.DeviceName}) {
			t.Errorf("case %d: Issued = %v, %v", i, d, ok)
		}
		// A wrong sign of the right shape is rejected.
		form.Set("sign", strings.Repeat("0", len(v.Expect.Password)))
		if a := postForm(t, s, form); a.Code != 401 || a.Data != nil {
			t.Errorf("case %d: wrong sign: answer %+v, want code 401", i, a)
		}
	}
	if _, ok := s.Issued("nobody", "nothing"); ok {
		t.Error("Issued(unknown pair) = true")
	}
}

// TestStrictness checks the rules the emulator enforces.
func TestStrictness(t *testing.T) {
	s := platformtest.New(t)
	s.AddDevice(pk, dn, secret)
	s.AddDevice(pk, "dev-002", "another-secret")

	const noTS = "clientIddev-001deviceNamedev-001productKeya1FakePK01"
	tests := []struct {
		name     string
		edit     func(url.Values)
		wantCode int
	}{
		{"valid", func(url.Values) {}, 200},
		{"upper-case sign", func(f url.Values) { f.Set("sign", strings.ToUpper(sign)) }, 200},
		{"without resources and version", func(f url.Values) { f.Del("resources"); f.Del("version") }, 200},
		{"without timestamp, signed without", func(f url.Values) { f.Del("timestamp"); f.Set("sign", hmacSHA1Hex(secret, noTS)) }, 200},
		{"extra parameter, signed", func(f url.Values) {
			f.Set("extra", "x")
			f.Set("sign", hmacSHA1Hex(secret, "clientIddev-001deviceNamedev-001extraxproductKeya1FakePK01timestamp1700000000000"))
		}, 200},
		{"extra parameter, not signed", func(f url.Values) { f.Set("extra", "x") }, 401},
		{"timestamp sent but not signed", func(f url.Values) { f.Set("sign", hmacSHA1Hex(secret, noTS)) }, 401},
		{"signmethod signed too", func(f url.Values) {
			f.Set("sign", hmacSHA1Hex(secret, "clientIddev-001deviceNamedev-001productKeya1FakePK01signmethodhmacsha1timestamp1700000000000"))
		}, 401},
		{"sign of another device's secret", func(f url.Values) { f.Set("deviceName", "dev-002") }, 401},
		{"sign not hex", func(f url.Values) { f.Set("sign", "zz"+sign[2:]) }, 401},
		{"sign truncated", func(f url.Values) { f.Set("sign", sign[:38]) }, 401},
		{"wrong method for the sign", func(f url.Values) { f.Set("signmethod", "hmacmd5") }, 401},
		{"unknown device", func(f url.Values) { f.Set("deviceName", "dev-404") }, 5001},
		{"unknown product", func(f url.Values) { f.Set("productKey", "a1Other") }, 5001},
		{"no productKey", func(f url.Values) { f.Del("productKey") }, 460},
		{"no deviceName", func(f url.Values) { f.Del("deviceName") }, 460},
		{"no clientId", func(f url.Values) { f.Del("clientId") }, 460},
		{"no signmethod", func(f url.Values) { f.Del("signmethod") }, 460},
		{"no sign", func(f url.Values) { f.Del("sign") }, 460},
		{"empty sign", func(f url.Values) { f.Set("sign", "") }, 460},
		{"repeated sign", func(f url.Values) { f.Add("sign", sign) }, 460},
		{"clientId of 65", func(f url.Values) { f.Set("clientId", strings.Repeat("c", 65)) }, 460},
		{"signmethod upper case", func(f url.Values) { f.Set("signmethod", "HMACSHA1") }, 460},
		{"signmethod hmacsha512", func(f url.Values) { f.Set("signmethod", "hmacsha512") }, 460},
		{"timestamp not digits", func(f url.Values) { f.Set("timestamp", "17e11") }, 460},
		{"unknown resource", func(f url.Values) { f.Set("resources", "codec") }, 460},
		{"unknown version", func(f url.Values) { f.Set("version", "v2") }, 460},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := validForm()
			tc.edit(form)
			a := postForm(t, s, form)
			if a.Code != tc.wantCode {
				t.Fatalf("code %d (%q), want %d", a.Code, a.Message, tc.wantCode)
			}
			if (a.Data != nil) != (tc.wantCode == 200) {
				t.Errorf("data = %+v for code %d", a.Data, a.Code)
			}
			if a.Code == 200 {
				hasMQTT := a.Data.Resources != nil && a.Data.Resources.MQTT != nil
				if want := form.Has("resources"); hasMQTT != want {
					t.Errorf("resources.mqtt present = %v, want %v", hasMQTT, want)
				}
			}
			reqs := s.Requests()
			last := reqs[len(reqs)-1]
			if last.Code != tc.wantCode || last.Accepted() != (tc.wantCode == 200) || last.Form.Encode() != form.Encode() {
				t.Errorf("recorded %+v", last)
			}
		})
	}
}

// TestTransportRules checks method, path, content type and query.
func TestTransportRules(t *testing.T) {
	s := platformtest.New(t)
	s.AddDevice(pk, dn, secret)
	body := validForm().Encode()
	tests := []struct {
		name             string
		method, path, ct string
		wantStatus       int
		wantCode         int
	}{
		{"valid", http.MethodPost, platformtest.Path, "application/x-www-form-urlencoded", 200, 200},
		{"content type with charset", http.MethodPost, platformtest.Path, "application/x-www-form-urlencoded; charset=utf-8", 200, 200},
		{"GET", http.MethodGet, platformtest.Path, "application/x-www-form-urlencoded", 405, 0},
		{"PUT", http.MethodPut, platformtest.Path, "application/x-www-form-urlencoded", 405, 0},
		{"other path", http.MethodPost, "/auth/other", "application/x-www-form-urlencoded", 404, 0},
		{"registration path, pre-verification form", http.MethodPost, platformtest.RegisterPath, "application/x-www-form-urlencoded", 200, 460},
		{"trailing slash", http.MethodPost, platformtest.Path + "/", "application/x-www-form-urlencoded", 404, 0},
		{"JSON content type", http.MethodPost, platformtest.Path, "application/json", 200, 460},
		{"no content type", http.MethodPost, platformtest.Path, "", 200, 460},
		{"parameters in the query", http.MethodPost, platformtest.Path + "?" + body, "application/x-www-form-urlencoded", 200, 460},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, b, err := post(t, s, tc.method, tc.path, tc.ct, body)
			if err != nil || status != tc.wantStatus {
				t.Fatalf("status %d, %v; want %d", status, err, tc.wantStatus)
			}
			if tc.wantCode != 0 {
				var a answer
				if err := json.Unmarshal(b, &a); err != nil || a.Code != tc.wantCode {
					t.Errorf("answer %s (%v), want code %d", b, err, tc.wantCode)
				}
			}
		})
	}
}

// TestFaults checks what each fault puts on the wire, and how long it
// lasts.
func TestFaults(t *testing.T) {
	s := platformtest.New(t)
	s.AddDevice(pk, dn, secret)
	body := validForm().Encode()
	const ct = "application/x-www-form-urlencoded"

	tests := []struct {
		fault platformtest.Fault
		check func(t *testing.T, status int, h http.Header, b []byte, err error)
	}{
		{platformtest.Fault{Kind: platformtest.FaultCloseConnection}, func(t *testing.T, status int, _ http.Header, _ []byte, err error) {
			if err == nil {
				t.Errorf("got an answer (status %d), want a transport error", status)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultResetConnection}, func(t *testing.T, status int, _ http.Header, _ []byte, err error) {
			if err == nil {
				t.Errorf("got an answer (status %d), want a transport error", status)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 502}, func(t *testing.T, status int, _ http.Header, b []byte, err error) {
			if err != nil || status != 502 || json.Valid(b) {
				t.Errorf("status %d, body %q, %v; want 502 with a non-JSON body", status, b, err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultHTTPStatus, RetryAfter: "3"}, func(t *testing.T, status int, h http.Header, _ []byte, err error) {
			if err != nil || status != 503 || h.Get("Retry-After") != "3" {
				t.Errorf("status %d, Retry-After %q, %v; want 503, 3", status, h.Get("Retry-After"), err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultTooManyRequests, RetryAfter: "7"}, func(t *testing.T, status int, h http.Header, _ []byte, err error) {
			if err != nil || status != 429 || h.Get("Retry-After") != "7" {
				t.Errorf("status %d, Retry-After %q, %v; want 429, 7", status, h.Get("Retry-After"), err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultNonJSON}, func(t *testing.T, status int, _ http.Header, b []byte, err error) {
			if err != nil || status != 200 || json.Valid(b) || len(b) == 0 {
				t.Errorf("status %d, body %q, %v; want 200 with a non-JSON body", status, b, err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultTruncatedJSON}, func(t *testing.T, status int, _ http.Header, b []byte, err error) {
			if err != nil || status != 200 || json.Valid(b) || !strings.HasPrefix(string(b), `{"code":200`) {
				t.Errorf("status %d, body %q, %v; want 200 with a cut JSON success", status, b, err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultShortBody}, func(t *testing.T, status int, _ http.Header, _ []byte, err error) {
			if status != 200 || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("status %d, %v; want 200 and an unexpected EOF in the body", status, err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultCode, Code: 6200, Message: "auth type mismatch"}, func(t *testing.T, status int, _ http.Header, b []byte, err error) {
			var a answer
			if err != nil || status != 200 || json.Unmarshal(b, &a) != nil || a.Code != 6200 || a.Message != "auth type mismatch" {
				t.Errorf("status %d, body %q, %v; want code 6200", status, b, err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultOversized, Size: 100 << 10}, func(t *testing.T, status int, _ http.Header, b []byte, err error) {
			if err != nil || status != 200 || len(b) != 100<<10 || !json.Valid(b) {
				t.Errorf("status %d, %d bytes (valid JSON %v), %v; want 200 with 100 KiB of JSON", status, len(b), json.Valid(b), err)
			}
		}},
		{platformtest.Fault{Kind: platformtest.FaultMissingFields}, func(t *testing.T, status int, _ http.Header, b []byte, err error) {
			var a answer
			if err != nil || json.Unmarshal(b, &a) != nil || a.Code != 200 || a.Data == nil || a.Data.IotToken != "" {
				t.Errorf("status %d, body %q, %v; want code 200 without iotToken", status, b, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fault.Kind.String(), func(t *testing.T) {
			s.Reset()
			f := tc.fault
			f.Times = 2
			s.Inject(f)
			for i := range 2 {
				status, h, b, err := post(t, s, http.MethodPost, platformtest.Path, ct, body)
				t.Logf("call %d", i+1)
				tc.check(t, status, h, b, err)
			}
			// The fault is used up: the next call succeeds.
			if a := postForm(t, s, validForm()); a.Code != 200 {
				t.Errorf("after the fault: code %d, want 200", a.Code)
			}
			reqs := s.Requests()
			if s.Calls() != 3 || len(reqs) != 3 {
				t.Fatalf("Calls() = %d, %d recorded; want 3", s.Calls(), len(reqs))
			}
			for i, r := range reqs {
				want := tc.fault.Kind
				if i == 2 {
					want = platformtest.FaultNone
				}
				if r.Fault != want || r.Form.Get("sign") != sign {
					t.Errorf("request %d: fault %v, sign %q; want %v, the form's sign", i, r.Fault, r.Form.Get("sign"), want)
				}
			}
		})
	}
}

func TestFaultAlwaysAndDelay(t *testing.T) {
	s := platformtest.New(t)
	s.AddDevice(pk, dn, secret)
	s.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 500, Message: "busy"})
	for range 3 {
		if a := postForm(t, s, validForm()); a.Code != 500 {
			t.Fatalf("code %d, want 500 while the fault lasts", a.Code)
		}
	}
	s.ClearFaults()
	if a := postForm(t, s, validForm()); a.Code != 200 {
		t.Fatalf("code %d after ClearFaults, want 200", a.Code)
	}

	// A delayed request is answered normally after the delay.
	s.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: 50 * time.Millisecond, Times: 1})
	start := time.Now()
	if a := postForm(t, s, validForm()); a.Code != 200 {
		t.Fatalf("delayed: code %d, want 200", a.Code)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("delayed answer came after %v, want at least 50ms", d)
	}

	// A client that gives up does not keep the handler waiting: Close,
	// run by Cleanup, waits for handlers, and the test would hang.
	s.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: time.Hour, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+platformtest.Path, strings.NewReader(validForm().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := s.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request under an hour's delay answered within 50ms")
	}
}

func TestRemoveDeviceAndRequestsCopy(t *testing.T) {
	s := platformtest.New(t)
	id1 := s.AddDevice(pk, dn, "old-secret")
	if id2 := s.AddDevice(pk, dn, secret); id2 != id1 {
		t.Errorf("re-adding a device changed its iotId from %s to %s", id1, id2)
	}
	a := postForm(t, s, validForm())
	if a.Code != 200 {
		t.Fatalf("code %d, want 200 with the replaced secret", a.Code)
	}
	s.RemoveDevice(pk, dn)
	if a := postForm(t, s, validForm()); a.Code != 5001 {
		t.Errorf("removed device: code %d, want 5001", a.Code)
	}
	if _, ok := s.Issued(id1, a.Data.IotToken); !ok {
		t.Error("token issued before removal no longer valid")
	}
	reqs := s.Requests()
	reqs[0].Form.Set("sign", "changed")
	if got := s.Requests()[0].Form.Get("sign"); got != sign {
		t.Errorf("modifying Requests() changed the record: sign %q", got)
	}
}
