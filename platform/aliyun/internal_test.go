package aliyun

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	c := &Client{backoffBase: 100 * time.Millisecond, backoffMax: time.Second}
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second}, // capped
		{40, 500 * time.Millisecond, time.Second},
		{100, 500 * time.Millisecond, time.Second}, // no shift overflow
	}
	for _, tc := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := c.backoff(tc.n)
			if d < tc.min || d > tc.max {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tc.n, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) returned one value 200 times: no jitter", tc.n)
		}
	}
}

func TestRetryAfterParse(t *testing.T) {
	future := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		in       string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"0", 0, 0},
		{"-5", 0, 0},
		{"abc", 0, 0},
		{"1.5", 0, 0},
		{"3", 3 * time.Second, 3 * time.Second},
		{" 7 ", 7 * time.Second, 7 * time.Second},
		{"99999999999999999", maxRetryAfter, maxRetryAfter},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, 0}, // past
		{future, 28 * time.Second, 30 * time.Second},
	}
	for _, tc := range tests {
		if got := retryAfter(tc.in); got < tc.min || got > tc.max {
			t.Errorf("retryAfter(%q) = %v, want in [%v, %v]", tc.in, got, tc.min, tc.max)
		}
	}
}

func TestCleanMessage(t *testing.T) {
	tests := []struct {
		msg     string
		secrets []string
		want    string
	}{
		{"success", nil, "success"},
		{"  device\tnot\nfound \r\n", nil, "device not found"},
		{"bell\x07 and \x1b[31mcolour\u200b", nil, "bell and [31mcolour"},
		{"bad \xff\xfe utf8", nil, "bad  utf8"},
		{"设备不存在", nil, "设备不存在"},
		{"sign ABCDEF01 wrong, abcdef01 again", []string{"abcdef01"}, "sign [redacted] wrong, [redacted] again"},
		{"token tok123 leaked", []string{"", "tok123"}, "token [redacted] leaked"},
		{strings.Repeat("é", 300), nil, strings.Repeat("é", 256) + "…"},
	}
	for _, tc := range tests {
		if got := cleanMessage(tc.msg, tc.secrets...); got != tc.want {
			t.Errorf("cleanMessage(%q, %q) = %q, want %q", tc.msg, tc.secrets, got, tc.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	ctxErr := errors.New("ctx")
	e := &Error{Kind: ErrUpstream, Code: 500, HTTPStatus: 503, RetryAfter: 2 * time.Second, Attempts: 3,
		Message: `busy "now"`, detail: "server error", extra: []error{ErrCircuitOpen, ctxErr}}
	want := `platform pre-verify: upstream error (code 500, HTTP 503, retry after 2s, 3 attempts): "busy \"now\"": server error`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q\nwant      %q", got, want)
	}
	for _, target := range []error{ErrUpstream, ErrCircuitOpen, ctxErr} {
		if !errors.Is(e, target) {
			t.Errorf("errors.Is(e, %v) = false", target)
		}
	}
	if errors.Is(e, ErrUnavailable) {
		t.Error("errors.Is(e, ErrUnavailable) = true")
	}
}

func TestIsHost(t *testing.T) {
	for _, good := range []string{"127.0.0.1", "::1", "a1.iot-as-mqtt.cn-shanghai.aliyuncs.com", "iot-06z00.mqtt.iothub.aliyuncs.com", "localhost"} {
		if !isHost(good) {
			t.Errorf("isHost(%q) = false", good)
		}
	}
	for _, bad := range []string{"", "a..b", "-a.b", "a b", "a/b", "host:1883", strings.Repeat("a", 64) + ".com", "évil.com"} {
		if isHost(bad) {
			t.Errorf("isHost(%q) = true", bad)
		}
	}
}

// wantVerdict is the breaker verdict of some of TestInterpret's answers.
var wantVerdict = map[string]error{
	"460 on HTTP 400":          nil,
	"code 500":                 nil,
	"sign echoed":              nil,
	"token echoed in an error": nil,
	"JSON 503":                 errBreakerFailure,
	"HTML 404":                 errBreakerFailure,
	"empty":                    errBreakerFailure,
	"429":                      errBreakerExcluded,
}

func TestInterpret(t *testing.T) {
	const okData = `"data":{"iotId":"id1","iotToken":"tok1","resources":{"mqtt":{"host":"h.example.com","port":%s}}}`
	success := func(port string) string {
		return `{"code":200,"message":"success",` + strings.Replace(okData, "%s", port, 1) + `}`
	}
	tests := []struct {
		name      string
		status    int
		body      string
		wantKind  error // nil: success
		wantRetry bool
		wantCode  int
		wantRes   Result
		wantMsg   string
	}{
		{name: "success", status: 200, body: success("1883"), wantRes: Result{"id1", "tok1", "h.example.com", 1883}},
		{name: "port as string", status: 200, body: success(`"8883"`), wantRes: Result{"id1", "tok1", "h.example.com", 8883}},
		{name: "port zero", status: 200, body: success("0"), wantKind: ErrUpstream, wantCode: 200, wantMsg: "success"},
		{name: "port too big", status: 200, body: success("65536"), wantKind: ErrUpstream, wantCode: 200, wantMsg: "success"},
		{name: "port not a number", status: 200, body: success(`"x"`), wantKind: ErrUpstream},
		{name: "bad host", status: 200, body: strings.Replace(success("1"), "h.example.com", "h example", 1), wantKind: ErrUpstream, wantCode: 200, wantMsg: "success"},
		{name: "token with space", status: 200, body: strings.Replace(success("1"), "tok1", "tok 1", 1), wantKind: ErrUpstream, wantCode: 200, wantMsg: "success"},
		{name: "no resources", status: 200, body: `{"code":200,"message":"success","data":{"iotId":"id1","iotToken":"tok1"}}`, wantKind: ErrUpstream, wantCode: 200, wantMsg: "success"},
		{name: "no data", status: 200, body: `{"code":200,"message":"success"}`, wantKind: ErrUpstream, wantCode: 200, wantMsg: "success"},
		{name: "no code", status: 200, body: `{"message":"success"}`, wantKind: ErrUpstream, wantMsg: "success"},
		{name: "code as string", status: 200, body: `{"code":"200"}`, wantKind: ErrUpstream},
		{name: "JSON array", status: 200, body: `[1,2]`, wantKind: ErrUpstream},
		{name: "empty", status: 200, body: ``, wantKind: ErrUpstream},
		{name: "code 200 on HTTP 400", status: 400, body: success("1883"), wantKind: ErrUpstream, wantCode: 200, wantMsg: "success"},
		{name: "460 on HTTP 400", status: 400, body: `{"code":460,"message":"bad"}`, wantKind: ErrBadParameter, wantCode: 460, wantMsg: "bad"},
		{name: "HTML 404", status: 404, body: `<html>not found</html>`, wantKind: ErrUpstream},
		{name: "redirect", status: 307, body: ``, wantKind: ErrUpstream},
		{name: "JSON 503", status: 503, body: `{"code":503,"message":"busy"}`, wantKind: ErrUpstream, wantRetry: true, wantCode: 503, wantMsg: "busy"},
		{name: "429", status: 429, body: `x`, wantKind: ErrThrottled, wantRetry: true},
		{name: "code 500", status: 200, body: `{"code":500,"message":"x"}`, wantKind: ErrUpstream, wantRetry: true, wantCode: 500, wantMsg: "x"},
		{name: "token echoed in an error", status: 200, body: `{"code":460,"message":"tok1 bad","data":{"iotToken":"tok1"}}`, wantKind: ErrBadParameter, wantCode: 460, wantMsg: "[redacted] bad"},
		{name: "sign echoed", status: 200, body: `{"code":401,"message":"sign=SIGNVALUE"}`, wantKind: ErrSignatureMismatch, wantCode: 401, wantMsg: "sign=[redacted]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := interpret(tc.status, http.Header{"Content-Type": {"application/json"}}, []byte(tc.body), "signvalue")
			if tc.wantKind == nil {
				if out.err != nil || out.res != tc.wantRes || out.verdict != nil {
					t.Errorf("interpret = %+v, %v, verdict %v; want %+v", out.res, out.err, out.verdict, tc.wantRes)
				}
				return
			}
			if out.err == nil || !errors.Is(out.err, tc.wantKind) {
				t.Fatalf("interpret error = %v, want %v", out.err, tc.wantKind)
			}
			if out.retry != tc.wantRetry || out.err.Code != tc.wantCode || out.err.Message != tc.wantMsg || out.err.HTTPStatus != tc.status {
				t.Errorf("retry %v, code %d, message %q, status %d; want %v, %d, %q, %d",
					out.retry, out.err.Code, out.err.Message, out.err.HTTPStatus, tc.wantRetry, tc.wantCode, tc.wantMsg, tc.status)
			}
			if out.res != (Result{}) {
				t.Errorf("result %+v alongside an error", out.res)
			}
			// The breaker hears of the endpoint's failures, never of a
			// device's platform code.
			if want, ok := wantVerdict[tc.name]; ok && out.verdict != want {
				t.Errorf("breaker verdict %v, want %v", out.verdict, want)
			}
			if strings.Contains(strings.ToLower(out.err.Error()), "signvalue") || strings.Contains(out.err.Error(), "tok1") {
				t.Errorf("error %q contains the sign or token", out.err)
			}
		})
	}
}
