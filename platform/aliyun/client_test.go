package aliyun_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signing "github.com/signerd/signerd/signing/aliyun"
)

const (
	region = "cn-test"
	pk     = "a1FakePK01"
	dn     = "dev-001"
	secret = "0123456789abcdef0123456789abcdef"
)

// generous bounds every call; no test expects to come near it.
const generous = 10 * time.Second

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// env is a client wired to an emulator.
type env struct {
	srv  *platformtest.Server
	c    *platform.Client
	logs *syncBuffer
}

// fastConfig retries quickly and has no breaker, so that counts at the
// emulator reflect the retry policy alone.
func fastConfig() platform.Config {
	return platform.Config{
		BackoffBase: time.Millisecond,
		BackoffMax:  5 * time.Millisecond,
		Breaker:     platform.BreakerConfig{Failures: -1},
	}
}

// newEnv starts an emulator with the test device and a client for it in
// region; cfg's RootCAs, RegionBaseURLs and Logger are filled in.
func newEnv(t *testing.T, cfg platform.Config, opts ...platformtest.Option) *env {
	t.Helper()
	srv := platformtest.New(t, opts...)
	srv.AddDevice(pk, dn, secret)
	logs := &syncBuffer{}
	cfg.RootCAs = srv.CertPool()
	if cfg.RegionBaseURLs == nil {
		cfg.RegionBaseURLs = map[string]string{region: srv.URL()}
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := platform.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return &env{srv: srv, c: c, logs: logs}
}

// signedForm signs the test device's form with signing.SignPreVerify.
func signedForm(t *testing.T, devSecret string, m signing.Method, ts string) url.Values {
	t.Helper()
	f, err := signing.SignPreVerify(signing.PreVerifyRequest{
		ProductKey: pk, DeviceName: dn, ClientID: pk + "." + dn, Timestamp: ts, Method: m,
	}, signing.DeviceSecretMAC([]byte(devSecret)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// call runs PreVerify under the generous deadline.
func (e *env) call(t *testing.T, form url.Values) (platform.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	return e.c.PreVerify(ctx, region, form)
}

// noSecrets fails the test if s contains any of secrets (ASCII
// case-insensitively).
func noSecrets(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(strings.ToLower(s), strings.ToLower(sec)) {
			t.Errorf("%s contains a secret value %q:\n%s", what, sec, s)
		}
	}
}

// issuedTokens returns every token the emulator issued.
func issuedTokens(srv *platformtest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if r.IotToken != "" {
			out = append(out, r.IotToken)
		}
	}
	return out
}

func TestPreVerifySuccess(t *testing.T) {
	e := newEnv(t, fastConfig(), platformtest.WithMQTT("a1FakePK01.iot-as-mqtt.cn-test.example.com", 8883))
	iotID := e.srv.AddDevice(pk, dn, secret) // unchanged secret: returns the iotId
	var secrets []string
	for _, m := range []signing.Method{signing.MethodHMACMD5, signing.MethodHMACSHA1, signing.MethodHMACSHA256} {
		for _, ts := range []string{"", "1700000000000"} {
			t.Run(m.String()+"/timestamp="+ts, func(t *testing.T) {
				before := e.srv.Calls()
				form := signedForm(t, secret, m, ts)
				res, err := e.call(t, form)
				if err != nil {
					t.Fatalf("PreVerify: %v", err)
				}
				if res.IotID != iotID || res.IotToken == "" || res.Host != "a1FakePK01.iot-as-mqtt.cn-test.example.com" || res.Port != 8883 {
					t.Errorf("result %+v (token %q), want iotId %s on the configured MQTT endpoint", res, res.IotToken, iotID)
				}
				if d, ok := e.srv.Issued(res.IotID, res.IotToken); !ok || d.ProductKey != pk || d.DeviceName != dn {
					t.Errorf("the emulator did not issue the returned pair: %v, %v", d, ok)
				}
				if got := e.srv.Calls() - before; got != 1 {
					t.Errorf("%d upstream calls, want 1", got)
				}
				reqs := e.srv.Requests()
				last := reqs[len(reqs)-1]
				if !last.Accepted() || last.Method != http.MethodPost || last.Path != "/auth/devicename" ||
					last.ContentType != "application/x-www-form-urlencoded" || last.Form.Encode() != form.Encode() {
					t.Errorf("the emulator recorded %+v, want the accepted form %s", last, form.Encode())
				}
				if last.Form.Get("signmethod") != m.String() || last.Form.Has("timestamp") != (ts != "") {
					t.Errorf("recorded form %v does not match method %v, timestamp %q", last.Form, m, ts)
				}
				secrets = append(secrets, form.Get("sign"), res.IotToken)
			})
		}
	}
	noSecrets(t, "logs", e.logs.String(), append(secrets, secret)...)
	if !strings.Contains(e.logs.String(), `"attempt":1`) {
		t.Errorf("logs lack the attempt records:\n%s", e.logs)
	}
}

// TestResultRedaction checks that formatting or logging a Result does not
// reveal the token.
func TestResultRedaction(t *testing.T) {
	res := platform.Result{IotID: "id-1", IotToken: "tok-SECRET-123", Host: "h.example.com", Port: 1883}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("result", "res", res)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("result", "res", res)
	for _, s := range []string{
		fmt.Sprint(res), fmt.Sprintf("%v %+v %#v %s %q %x", res, res, res, res, res, res),
		fmt.Sprint(&res), fmt.Sprintf("%+v", []platform.Result{res}), logs.String(),
	} {
		noSecrets(t, "formatted result", s, res.IotToken)
		if !strings.Contains(s, "id-1") && !strings.Contains(s, "[redacted]") {
			t.Errorf("formatted result %q shows neither the iotId nor a redaction", s)
		}
	}
}

// TestPreVerifyErrors injects each fault (on every call) and checks the
// error kind, the number of upstream calls (so whether it was retried) and
// that no secret leaks into the error or the logs.
func TestPreVerifyErrors(t *testing.T) {
	type tc struct {
		name      string
		fault     platformtest.Fault
		form      func(t *testing.T) url.Values // nil: the valid form
		attempt   time.Duration                 // Config.AttemptTimeout
		wantKind  error
		wantCode  int
		wantHTTP  int
		wantCalls int
		check     func(t *testing.T, e *platform.Error)
	}
	valid := func(t *testing.T) url.Values { return signedForm(t, secret, signing.MethodHMACSHA256, "1700000000000") }
	fault := func(k platformtest.FaultKind) platformtest.Fault { return platformtest.Fault{Kind: k} }
	tests := []tc{
		// Definitive answers: never retried.
		{name: "signature mismatch", form: func(t *testing.T) url.Values { return signedForm(t, "not-the-secret", signing.MethodHMACSHA1, "") },
			wantKind: platform.ErrSignatureMismatch, wantCode: 401, wantHTTP: 200, wantCalls: 1},
		{name: "device not found", form: func(t *testing.T) url.Values {
			f := valid(t)
			f.Set("deviceName", "dev-404")
			return f
		}, wantKind: platform.ErrDeviceNotFound, wantCode: 5001, wantHTTP: 200, wantCalls: 1},
		{name: "bad parameter", form: func(t *testing.T) url.Values {
			f := valid(t)
			f.Set("signmethod", "hmacsha512")
			return f
		}, wantKind: platform.ErrBadParameter, wantCode: 460, wantHTTP: 200, wantCalls: 1},
		{name: "auth type mismatch", fault: platformtest.Fault{Kind: platformtest.FaultCode, Code: 6200, Message: "auth type mismatch"},
			wantKind: platform.ErrAuthTypeMismatch, wantCode: 6200, wantHTTP: 200, wantCalls: 1,
			check: func(t *testing.T, e *platform.Error) {
				if e.Message != "auth type mismatch" {
					t.Errorf("Message = %q, want the platform's", e.Message)
				}
			}},
		{name: "injected 401", fault: platformtest.Fault{Kind: platformtest.FaultCode, Code: 401},
			wantKind: platform.ErrSignatureMismatch, wantCode: 401, wantHTTP: 200, wantCalls: 1},
		{name: "injected 460 echoing the sign", fault: platformtest.Fault{Kind: platformtest.FaultCode, Code: 460}, // message set below
			wantKind: platform.ErrBadParameter, wantCode: 460, wantHTTP: 200, wantCalls: 1,
			check: func(t *testing.T, e *platform.Error) {
				if !strings.Contains(e.Message, "[redacted]") || !strings.HasPrefix(e.Message, "bad sign") {
					t.Errorf("Message = %q, want the platform's with the sign redacted", e.Message)
				}
			}},
		{name: "injected 5001", fault: platformtest.Fault{Kind: platformtest.FaultCode, Code: 5001},
			wantKind: platform.ErrDeviceNotFound, wantCode: 5001, wantHTTP: 200, wantCalls: 1},
		{name: "device disabled", fault: platformtest.Fault{Kind: platformtest.FaultCode, Code: 6204, Message: "设备已被禁用\n"},
			wantKind: platform.ErrDeviceDisabled, wantCode: 6204, wantHTTP: 200, wantCalls: 1,
			check: func(t *testing.T, e *platform.Error) {
				if e.Message != "设备已被禁用" {
					t.Errorf("Message = %q, want the platform's, cleaned", e.Message)
				}
			}},
		{name: "unknown code", fault: platformtest.Fault{Kind: platformtest.FaultCode, Code: 6288, Message: "未知\n"},
			wantKind: platform.ErrUnknownCode, wantCode: 6288, wantHTTP: 200, wantCalls: 1,
			check: func(t *testing.T, e *platform.Error) {
				if e.Message != "未知" {
					t.Errorf("Message = %q, want the platform's, cleaned", e.Message)
				}
			}},
		// Malformed answers: not retried.
		{name: "non-JSON", fault: fault(platformtest.FaultNonJSON), wantKind: platform.ErrUpstream, wantHTTP: 200, wantCalls: 1},
		{name: "truncated JSON", fault: fault(platformtest.FaultTruncatedJSON), wantKind: platform.ErrUpstream, wantHTTP: 200, wantCalls: 1},
		{name: "oversized", fault: fault(platformtest.FaultOversized), wantKind: platform.ErrUpstream, wantHTTP: 200, wantCalls: 1},
		{name: "endless body", fault: platformtest.Fault{Kind: platformtest.FaultOversized, Size: 1 << 30},
			wantKind: platform.ErrUpstream, wantHTTP: 200, wantCalls: 1},
		{name: "just over the cap", fault: platformtest.Fault{Kind: platformtest.FaultOversized, Size: platform.DefaultMaxBodyBytes + 1},
			wantKind: platform.ErrUpstream, wantHTTP: 200, wantCalls: 1},
		{name: "missing fields", fault: fault(platformtest.FaultMissingFields), wantKind: platform.ErrUpstream, wantCode: 200, wantHTTP: 200, wantCalls: 1},
		{name: "429 asking for more than the cap", fault: platformtest.Fault{Kind: platformtest.FaultTooManyRequests, RetryAfter: "2"},
			wantKind: platform.ErrThrottled, wantHTTP: 429, wantCalls: 1,
			check: func(t *testing.T, e *platform.Error) {
				if e.RetryAfter != 2*time.Second {
					t.Errorf("RetryAfter = %v, want 2s", e.RetryAfter)
				}
			}},
		{name: "503 asking for more than the cap", fault: platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503, RetryAfter: "2"},
			wantKind: platform.ErrUpstream, wantHTTP: 503, wantCalls: 1},
		// Transient faults: retried (Retries 2, so 3 calls).
		{name: "HTTP 500", fault: platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 500}, wantKind: platform.ErrUpstream, wantHTTP: 500, wantCalls: 3},
		{name: "HTTP 502", fault: platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 502}, wantKind: platform.ErrUpstream, wantHTTP: 502, wantCalls: 3},
		{name: "HTTP 503", fault: platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503}, wantKind: platform.ErrUpstream, wantHTTP: 503, wantCalls: 3},
		{name: "429 without Retry-After", fault: fault(platformtest.FaultTooManyRequests), wantKind: platform.ErrThrottled, wantHTTP: 429, wantCalls: 3},
		{name: "code 500", fault: platformtest.Fault{Kind: platformtest.FaultCode, Code: 500, Message: "unknown error"},
			wantKind: platform.ErrUpstream, wantCode: 500, wantHTTP: 200, wantCalls: 3},
		{name: "connection closed", fault: fault(platformtest.FaultCloseConnection), wantKind: platform.ErrUnavailable, wantCalls: 3},
		{name: "connection reset", fault: fault(platformtest.FaultResetConnection), wantKind: platform.ErrUnavailable, wantCalls: 3},
		{name: "body cut short", fault: fault(platformtest.FaultShortBody), wantKind: platform.ErrUpstream, wantHTTP: 200, wantCalls: 3},
		{name: "attempt timeout", fault: platformtest.Fault{Kind: platformtest.FaultDelay, Delay: time.Hour}, attempt: time.Second,
			wantKind: platform.ErrUnavailable, wantCalls: 3,
			check: func(t *testing.T, e *platform.Error) {
				if errors.Is(e, context.DeadlineExceeded) {
					t.Errorf("errors.Is(%v, context.DeadlineExceeded) = true; the caller's deadline did not pass", e)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig()
			cfg.AttemptTimeout = tc.attempt
			cfg.RetryAfterMax = time.Second
			e := newEnv(t, cfg)
			form := valid(t)
			if tc.form != nil {
				form = tc.form(t)
			}
			f := tc.fault
			if f.Kind == platformtest.FaultCode && f.Code == 460 {
				f.Message = "bad sign " + strings.ToUpper(form.Get("sign"))
			}
			if f.Kind != platformtest.FaultNone {
				e.srv.Inject(f)
			}
			res, err := e.call(t, form)
			if err == nil {
				t.Fatalf("PreVerify = %+v, nil; want %v", res, tc.wantKind)
			}
			if res != (platform.Result{}) {
				t.Errorf("PreVerify returned %+v alongside an error", res)
			}
			var pe *platform.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *platform.Error", err, err)
			}
			for _, k := range []error{platform.ErrDeviceNotFound, platform.ErrSignatureMismatch, platform.ErrBadParameter,
				platform.ErrAuthTypeMismatch, platform.ErrUpstream, platform.ErrUnavailable, platform.ErrInvalidEndpoint,
				platform.ErrDeviceDisabled, platform.ErrUnknownCode, platform.ErrThrottled, platform.ErrOutcomeUnknown,
				platform.ErrRequestRefused, platform.ErrProductNotFound} {
				if got, want := errors.Is(err, k), k == tc.wantKind; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, k, got, want)
				}
			}
			if pe.Code != tc.wantCode || pe.HTTPStatus != tc.wantHTTP {
				t.Errorf("Code, HTTPStatus = %d, %d; want %d, %d (%v)", pe.Code, pe.HTTPStatus, tc.wantCode, tc.wantHTTP, err)
			}
			if got := e.srv.Calls(); got != tc.wantCalls || pe.Attempts != tc.wantCalls {
				t.Errorf("%d upstream calls, Attempts = %d; want %d", got, pe.Attempts, tc.wantCalls)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, platform.ErrCircuitOpen) {
				t.Errorf("error %v claims a cancellation or an open breaker", err)
			}
			if tc.check != nil {
				tc.check(t, pe)
			}
			// The client stops reading at the cap: the emulator could not
			// push much more than that into the connection's buffers.
			waitFor(t, func() bool { return len(e.srv.Requests()) == tc.wantCalls })
			for _, r := range e.srv.Requests() {
				if r.Sent > 16<<20 {
					t.Errorf("the emulator wrote %d bytes of an oversized answer: the client read past the cap", r.Sent)
				}
			}
			secrets := append([]string{form.Get("sign"), secret}, issuedTokens(e.srv)...)
			noSecrets(t, "error", err.Error(), secrets...)
			noSecrets(t, "error message", pe.Message, secrets...)
			noSecrets(t, "logs", e.logs.String(), secrets...)
			t.Logf("error: %v", err)
		})
	}
}

// TestRetryThenSuccess checks that transient faults are retried until the
// platform answers.
func TestRetryThenSuccess(t *testing.T) {
	tests := []struct {
		fault   platformtest.Fault
		attempt time.Duration
	}{
		{platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503}, 0},
		{platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 502}, 0},
		{platformtest.Fault{Kind: platformtest.FaultTooManyRequests}, 0},
		{platformtest.Fault{Kind: platformtest.FaultCode, Code: 500}, 0},
		{platformtest.Fault{Kind: platformtest.FaultCloseConnection}, 0},
		{platformtest.Fault{Kind: platformtest.FaultResetConnection}, 0},
		{platformtest.Fault{Kind: platformtest.FaultShortBody}, 0},
		{platformtest.Fault{Kind: platformtest.FaultDelay, Delay: time.Hour}, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.fault.Kind.String(), func(t *testing.T) {
			cfg := fastConfig()
			cfg.AttemptTimeout = tc.attempt
			e := newEnv(t, cfg)
			f := tc.fault
			f.Times = 2
			e.srv.Inject(f)
			form := signedForm(t, secret, signing.MethodHMACSHA1, "")
			res, err := e.call(t, form)
			if err != nil {
				t.Fatalf("PreVerify: %v", err)
			}
			if _, ok := e.srv.Issued(res.IotID, res.IotToken); !ok {
				t.Errorf("result %+v was not issued by the emulator", res)
			}
			reqs := e.srv.Requests()
			if len(reqs) != 3 || !reqs[2].Accepted() || reqs[0].Fault != f.Kind || reqs[1].Fault != f.Kind {
				t.Errorf("recorded %d requests %+v; want 2 faulted, then 1 accepted", len(reqs), reqs)
			}
			for i, r := range reqs {
				if r.Form.Encode() != form.Encode() {
					t.Errorf("attempt %d sent %v, want the same form %v", i+1, r.Form, form)
				}
			}
			if !strings.Contains(e.logs.String(), `"attempt":3`) {
				t.Errorf("logs lack attempt 3:\n%s", e.logs)
			}
			noSecrets(t, "logs", e.logs.String(), form.Get("sign"), res.IotToken, secret)
		})
	}
}

// TestNoRetryConfig checks that a negative Retries disables retries and
// that more retries mean more attempts.
func TestRetriesConfig(t *testing.T) {
	for _, tc := range []struct{ retries, wantCalls int }{{-1, 1}, {0, 3}, {1, 2}, {4, 5}} {
		t.Run(fmt.Sprint(tc.retries), func(t *testing.T) {
			cfg := fastConfig()
			cfg.Retries = tc.retries
			e := newEnv(t, cfg)
			e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503})
			_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
			if !errors.Is(err, platform.ErrUpstream) || e.srv.Calls() != tc.wantCalls {
				t.Errorf("Retries %d: %v after %d calls; want ErrUpstream after %d", tc.retries, err, e.srv.Calls(), tc.wantCalls)
			}
		})
	}
}

// TestRetryAfter checks that a Retry-After within the cap is waited for.
func TestRetryAfter(t *testing.T) {
	e := newEnv(t, fastConfig())
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultTooManyRequests, RetryAfter: "1", Times: 1})
	start := time.Now()
	if _, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, "")); err != nil {
		t.Fatalf("PreVerify: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, before the platform's Retry-After of 1s", d)
	}
	if e.srv.Calls() != 2 {
		t.Errorf("%d calls, want 2", e.srv.Calls())
	}
}

// TestCallerDeadline checks that the caller's deadline bounds the whole
// call: a hanging platform, and a Retry-After beyond the deadline.
func TestCallerDeadline(t *testing.T) {
	t.Run("hanging platform", func(t *testing.T) {
		e := newEnv(t, fastConfig()) // attempt timeout 10s: the caller's deadline is shorter
		e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := e.c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		if !errors.Is(err, platform.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("PreVerify = %v; want ErrUnavailable and context.DeadlineExceeded", err)
		}
		if e.srv.Calls() != 1 {
			t.Errorf("%d calls, want 1: no retry once the caller's deadline passed", e.srv.Calls())
		}
	})
	t.Run("Retry-After beyond the deadline", func(t *testing.T) {
		e := newEnv(t, fastConfig())
		e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultTooManyRequests, RetryAfter: "2"})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := e.c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		// It gives up at once rather than sleeping into the deadline.
		if !errors.Is(err, platform.ErrThrottled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			t.Errorf("PreVerify = %v (ctx %v); want ErrThrottled before the deadline", err, ctx.Err())
		}
		if e.srv.Calls() != 1 {
			t.Errorf("%d calls, want 1", e.srv.Calls())
		}
	})
	t.Run("cancelled during backoff", func(t *testing.T) {
		cfg := fastConfig()
		cfg.BackoffBase, cfg.BackoffMax = time.Hour, time.Hour
		e := newEnv(t, cfg)
		e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := e.c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
			errc <- err
		}()
		// The attempt's log record is written just before the backoff.
		waitFor(t, func() bool { return strings.Contains(e.logs.String(), `"attempt":1`) })
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, platform.ErrUpstream) || !errors.Is(err, context.Canceled) {
				t.Errorf("PreVerify = %v; want the last ErrUpstream and context.Canceled", err)
			}
		case <-time.After(generous):
			t.Fatal("PreVerify did not return after its context was cancelled")
		}
		if e.srv.Calls() != 1 {
			t.Errorf("%d calls, want 1", e.srv.Calls())
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		e := newEnv(t, fastConfig())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := e.c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		if !errors.Is(err, platform.ErrUnavailable) || !errors.Is(err, context.Canceled) || e.srv.Calls() != 0 {
			t.Errorf("PreVerify = %v after %d calls; want ErrUnavailable, context.Canceled, no call", err, e.srv.Calls())
		}
	})
}

// waitFor polls cond until it holds or the generous deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(generous)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := platformtest.New(nil)
	base := srv.URL()
	pool := srv.CertPool()
	srv.Close()
	cfg := fastConfig()
	cfg.RootCAs = pool
	cfg.RegionBaseURLs = map[string]string{region: base}
	c, err := platform.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	_, err = c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
	var pe *platform.Error
	if !errors.As(err, &pe) || !errors.Is(err, platform.ErrUnavailable) || pe.Attempts != 3 {
		t.Errorf("PreVerify = %v; want ErrUnavailable after 3 attempts", err)
	}
}

// TestTLSVerification checks that an untrusted certificate is refused,
// without retries.
func TestTLSVerification(t *testing.T) {
	srv := platformtest.New(t)
	srv.AddDevice(pk, dn, secret)
	cfg := fastConfig()
	cfg.RegionBaseURLs = map[string]string{region: srv.URL()} // system roots only
	c, err := platform.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	_, err = c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
	var pe *platform.Error
	if !errors.As(err, &pe) || !errors.Is(err, platform.ErrUnavailable) || pe.Attempts != 1 || srv.Calls() != 0 {
		t.Errorf("PreVerify = %v (%d calls); want ErrUnavailable after 1 attempt, no request served", err, srv.Calls())
	}
}

// TestNoRedirect checks that a redirect is not followed, by the default
// client or a given one: it would post the sign somewhere else.
func TestNoRedirect(t *testing.T) {
	srv := platformtest.New(t)
	srv.AddDevice(pk, dn, secret)
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL()+platformtest.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	for _, custom := range []bool{false, true} {
		t.Run(fmt.Sprintf("custom client %v", custom), func(t *testing.T) {
			cfg := fastConfig()
			cfg.RegionBaseURLs = map[string]string{region: redirector.URL}
			if custom {
				// The redirector's own client follows redirects and
				// trusts the emulator (httptest servers share one
				// certificate).
				cfg.HTTPClient = redirector.Client()
			} else {
				cfg.RootCAs = srv.CertPool()
			}
			c, err := platform.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), generous)
			defer cancel()
			_, err = c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
			var pe *platform.Error
			if !errors.As(err, &pe) || !errors.Is(err, platform.ErrUpstream) || pe.HTTPStatus != 307 || srv.Calls() != 0 {
				t.Errorf("PreVerify = %v (%d calls at the target); want ErrUpstream with HTTP 307 and no call", err, srv.Calls())
			}
		})
	}
}

// TestCustomHTTPClient checks that a given client is used and not
// modified.
func TestCustomHTTPClient(t *testing.T) {
	srv := platformtest.New(t)
	srv.AddDevice(pk, dn, secret)
	hc := srv.Client()
	c, err := platform.New(platform.Config{HTTPClient: hc, RegionBaseURLs: map[string]string{region: srv.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if hc.CheckRedirect != nil {
		t.Error("New modified the given client")
	}
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	if _, err := c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACMD5, "")); err != nil {
		t.Errorf("PreVerify: %v", err)
	}
	if srv.Calls() != 1 {
		t.Errorf("%d calls, want 1", srv.Calls())
	}
}

func TestFormPrecheck(t *testing.T) {
	e := newEnv(t, fastConfig())
	for _, k := range []string{"productKey", "deviceName", "clientId", "signmethod", "sign"} {
		for _, edit := range []func(url.Values){
			func(f url.Values) { f.Del(k) },
			func(f url.Values) { f.Set(k, "") },
			func(f url.Values) { f.Add(k, "again") },
		} {
			form := signedForm(t, secret, signing.MethodHMACSHA256, "")
			edit(form)
			_, err := e.call(t, form)
			if !errors.Is(err, platform.ErrBadParameter) || !strings.Contains(err.Error(), k) {
				t.Errorf("form %v: %v; want ErrBadParameter naming %s", form, err, k)
			}
		}
	}
	if _, err := e.call(t, nil); !errors.Is(err, platform.ErrBadParameter) {
		t.Errorf("nil form: %v; want ErrBadParameter", err)
	}
	if e.srv.Calls() != 0 {
		t.Errorf("%d calls for invalid forms, want 0", e.srv.Calls())
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  platform.Config
		want string // substring of the error; "" for valid
	}{
		{"zero", platform.Config{}, ""},
		{"overrides", platform.Config{
			RegionBaseURLs:  map[string]string{"cn-shanghai": "https://auth.internal.example:8443/iot/"},
			ProductBaseURLs: map[string]string{"a1FakePK01": "https://10.0.0.1"},
		}, ""},
		{"http", platform.Config{RegionBaseURLs: map[string]string{"cn-shanghai": "http://auth.example"}}, "https"},
		{"no host", platform.Config{RegionBaseURLs: map[string]string{"cn-shanghai": "https:///path"}}, "host"},
		{"user info", platform.Config{ProductBaseURLs: map[string]string{"a1": "https://u:p@auth.example"}}, "user"},
		{"query", platform.Config{RegionBaseURLs: map[string]string{"cn-shanghai": "https://auth.example?x=1"}}, "query"},
		{"fragment", platform.Config{RegionBaseURLs: map[string]string{"cn-shanghai": "https://auth.example#f"}}, "fragment"},
		{"unparsable", platform.Config{RegionBaseURLs: map[string]string{"cn-shanghai": "https://auth.example/%zz"}}, "parse"},
		{"bad region", platform.Config{RegionBaseURLs: map[string]string{"CN_Shanghai": "https://auth.example"}}, "region"},
		{"bad product key", platform.Config{ProductBaseURLs: map[string]string{"a1-x": "https://auth.example"}}, "product key"},
		{"RootCAs with HTTPClient", platform.Config{HTTPClient: &http.Client{}, RootCAs: platformtest.New(t).CertPool()}, "RootCAs"},
		{"negative body cap", platform.Config{MaxBodyBytes: -1}, "MaxBodyBytes"},
		{"negative attempt timeout", platform.Config{AttemptTimeout: -1}, "AttemptTimeout"},
		{"negative backoff", platform.Config{BackoffMax: -1}, "Backoff"},
		{"negative Retry-After cap", platform.Config{RetryAfterMax: -1}, "RetryAfterMax"},
		{"negative open timeout", platform.Config{Breaker: platform.BreakerConfig{OpenTimeout: -1}}, "OpenTimeout"},
		{"negative probes", platform.Config{Breaker: platform.BreakerConfig{HalfOpenProbes: -1}}, "HalfOpenProbes"},
		{"user agent with newline", platform.Config{UserAgent: "a\r\nX-Evil: 1"}, "UserAgent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			c, newErr := platform.New(tc.cfg)
			if tc.want == "" {
				if err != nil || newErr != nil {
					t.Errorf("Validate() = %v, New: %v; want nil", err, newErr)
				}
				if c != nil {
					c.Close()
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || newErr == nil || c != nil {
				t.Errorf("Validate() = %v, New = %v, %v; want an error about %q", err, c, newErr, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "u:p@") {
				t.Errorf("error %q repeats user information", err)
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	c, err := platform.New(platform.Config{
		RegionBaseURLs:  map[string]string{"cn-test": "https://auth.test.example/prefix/"},
		ProductBaseURLs: map[string]string{"a1Private": "https://private.example:8443"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		region, productKey, want string
	}{
		{"ap-southeast-1", "a1Any", "https://iot-auth.ap-southeast-1.aliyuncs.com"},
		{"", "a1Any", "https://iot-auth.cn-shanghai.aliyuncs.com"},
		{"cn-test", "a1Any", "https://auth.test.example/prefix"},
		{"cn-test", "a1Private", "https://private.example:8443"},
		{"ap-southeast-1", "a1Private", "https://private.example:8443"},
	}
	for _, tc := range tests {
		if got, err := c.BaseURL(tc.region, tc.productKey); err != nil || got != tc.want {
			t.Errorf("BaseURL(%q, %q) = %q, %v; want %q", tc.region, tc.productKey, got, err, tc.want)
		}
	}
	for _, bad := range []string{"evil.com/x", "CN-SHANGHAI", "-cn", "cn_1", "a b", strings.Repeat("a", 64)} {
		if got, err := c.BaseURL(bad, "a1Any"); !errors.Is(err, platform.ErrInvalidEndpoint) {
			t.Errorf("BaseURL(%q) = %q, %v; want ErrInvalidEndpoint", bad, got, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), generous)
		_, err := c.PreVerify(ctx, bad, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		cancel()
		if !errors.Is(err, platform.ErrInvalidEndpoint) {
			t.Errorf("PreVerify(region %q) = %v; want ErrInvalidEndpoint", bad, err)
		}
	}
}

// TestProductBaseURL checks that a product's override routes its calls.
func TestProductBaseURL(t *testing.T) {
	regional := platformtest.New(t)
	private := platformtest.New(t)
	private.AddDevice(pk, dn, secret)
	c, err := platform.New(platform.Config{
		RootCAs:         private.CertPool(),
		RegionBaseURLs:  map[string]string{region: regional.URL()},
		ProductBaseURLs: map[string]string{pk: private.URL() + "/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	if _, err := c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, "")); err != nil {
		t.Fatalf("PreVerify: %v", err)
	}
	if private.Calls() != 1 || regional.Calls() != 0 {
		t.Errorf("calls: private %d, regional %d; want 1, 0", private.Calls(), regional.Calls())
	}
}
