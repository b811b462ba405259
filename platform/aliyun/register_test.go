package aliyun_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signing "github.com/signerd/signerd/signing/aliyun"
)

const productSecret = "ProductSecretOfA1FakePK01-00001"

// regEnv is env with dynamic registration enabled for the test product.
func regEnv(t *testing.T, cfg platform.Config) *env {
	t.Helper()
	e := newEnv(t, cfg)
	e.srv.AddProduct(pk, productSecret)
	return e
}

// registerForm signs a registration of the test device with
// signing.SignRegister.
func registerForm(t *testing.T, ps, random string, m signing.Method) url.Values {
	t.Helper()
	f, err := signing.SignRegister(signing.RegisterRequest{ProductKey: pk, DeviceName: dn, Random: random, Method: m}, signing.ProductSecretMAC([]byte(ps)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (e *env) register(t *testing.T, form url.Values) (platform.Registration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	return e.c.RegisterDevice(ctx, region, form)
}

// issuedSecrets returns every DeviceSecret the emulator issued.
func issuedSecrets(srv *platformtest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if r.DeviceSecret != "" {
			out = append(out, r.DeviceSecret)
		}
	}
	return out
}

func TestRegisterDeviceSuccess(t *testing.T) {
	for _, m := range []signing.Method{signing.MethodHMACSHA256, signing.MethodHMACSHA1, signing.MethodHMACMD5} {
		t.Run(m.String(), func(t *testing.T) {
			e := regEnv(t, fastConfig())
			form := registerForm(t, productSecret, "r4nd0m", m)
			reg, err := e.register(t, form)
			if err != nil {
				t.Fatalf("RegisterDevice: %v", err)
			}
			current, _ := e.srv.DeviceSecret(pk, dn)
			if reg.ProductKey != pk || reg.DeviceName != dn || reg.DeviceSecret != current || current == secret {
				t.Errorf("registration %s, want the emulator's newly issued secret", reg)
			}
			reqs := e.srv.Requests()
			if len(reqs) != 1 || reqs[0].Path != platformtest.RegisterPath || reqs[0].Method != http.MethodPost ||
				!strings.HasPrefix(reqs[0].ContentType, "application/x-www-form-urlencoded") || reqs[0].Form.Encode() != form.Encode() {
				t.Errorf("platform saw %+v", reqs)
			}
			noSecrets(t, "logs", e.logs.String(), reg.DeviceSecret, form.Get("sign"), productSecret)
			if !strings.Contains(e.logs.String(), `"msg":"platform register attempt"`) {
				t.Errorf("no attempt log line:\n%s", e.logs)
			}
		})
	}
}

// TestRegistrationRedaction checks that a Registration never shows its
// secret when formatted, logged or encoded.
func TestRegistrationRedaction(t *testing.T) {
	const s = "the-device-secret-0123456789abcd"
	r := platform.Registration{ProductKey: pk, DeviceName: dn, DeviceSecret: s}
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "reg", r)
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s %q %x", r, r, r, r, r, r), r.String(), r.GoString(), logs.String(), string(js)} {
		if strings.Contains(out, s) {
			t.Errorf("%q shows the secret", out)
		}
		if !strings.Contains(out, dn) {
			t.Errorf("%q does not name the device", out)
		}
	}
}

func TestRegisterDeviceErrors(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(e *env)
		form      func(t *testing.T) url.Values
		wantKind  error
		wantCode  int
		wantCalls int
	}{
		{name: "wrong ProductSecret", form: func(t *testing.T) url.Values {
			return registerForm(t, "wrong-product-secret", "r1", signing.MethodHMACSHA256)
		},
			wantKind: platform.ErrSignatureMismatch, wantCode: 401, wantCalls: 1},
		{name: "device not pre-registered", setup: func(e *env) { e.srv.RemoveDevice(pk, dn) },
			wantKind: platform.ErrDeviceNotFound, wantCode: 5001, wantCalls: 1},
		{name: "code 6100", setup: func(e *env) {
			e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 6100, Message: "device not exist"})
		},
			wantKind: platform.ErrDeviceNotFound, wantCode: 6100, wantCalls: 1},
		{name: "already activated", setup: func(e *env) { e.srv.Activate(pk, dn) },
			wantKind: platform.ErrAlreadyActivated, wantCode: 6289, wantCalls: 1},
		{name: "bad parameter", setup: func(e *env) {
			e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 460, Message: "bad"})
		},
			wantKind: platform.ErrBadParameter, wantCode: 460, wantCalls: 1},
		{name: "unknown code", setup: func(e *env) {
			e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 6288, Message: "x"})
		}, wantKind: platform.ErrUnknownCode, wantCode: 6288, wantCalls: 1},
		// The platform may have acted: never retried.
		{name: "code 500 is not retried", setup: func(e *env) {
			e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 500, Message: "busy"})
		},
			wantKind: platform.ErrOutcomeUnknown, wantCode: 500, wantCalls: 1},
		{name: "HTTP 502 is not retried", setup: func(e *env) {
			e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 502})
		},
			wantKind: platform.ErrOutcomeUnknown, wantCalls: 1},
		{name: "no secret in the answer", setup: func(e *env) { e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultMissingFields}) },
			wantKind: platform.ErrOutcomeUnknown, wantCode: 200, wantCalls: 1},
		{name: "answer cut short", setup: func(e *env) { e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultTruncatedJSON}) },
			wantKind: platform.ErrOutcomeUnknown, wantCalls: 1},
		{name: "connection reset after the request", setup: func(e *env) { e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultResetConnection}) },
			wantKind: platform.ErrOutcomeUnknown, wantCalls: 1},
		// Throttled: not processed, so retried.
		{name: "throttled (code 40000) is retried", setup: func(e *env) {
			e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 40000, Message: "request too many"})
		},
			wantKind: platform.ErrThrottled, wantCode: 40000, wantCalls: 3},
		{name: "form without random", form: func(t *testing.T) url.Values {
			f := registerForm(t, productSecret, "r1", signing.MethodHMACSHA256)
			f.Del("random")
			return f
		}, wantKind: platform.ErrBadParameter},
		{name: "pre-verification form", form: func(t *testing.T) url.Values { return signedForm(t, secret, signing.MethodHMACSHA256, "") },
			wantKind: platform.ErrBadParameter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := regEnv(t, fastConfig())
			if tc.setup != nil {
				tc.setup(e)
			}
			form := registerForm(t, productSecret, "r1", signing.MethodHMACSHA256)
			if tc.form != nil {
				form = tc.form(t)
			}
			reg, err := e.register(t, form)
			if !errors.Is(err, tc.wantKind) || reg != (platform.Registration{}) {
				t.Fatalf("RegisterDevice = %s, %v; want %v", reg, err, tc.wantKind)
			}
			var pe *platform.Error
			if !errors.As(err, &pe) || pe.Code != tc.wantCode || e.srv.Calls() != tc.wantCalls {
				t.Errorf("code %d after %d calls (%v); want %d after %d", pe.Code, e.srv.Calls(), err, tc.wantCode, tc.wantCalls)
			}
			if !strings.HasPrefix(err.Error(), "platform register: ") {
				t.Errorf("error %q does not name the operation", err)
			}
			noSecrets(t, "error", err.Error(), form.Get("sign"), productSecret)
			noSecrets(t, "logs", e.logs.String(), form.Get("sign"), productSecret)
			for _, s := range issuedSecrets(e.srv) {
				noSecrets(t, "error and logs", err.Error()+e.logs.String(), s)
			}
		})
	}
}

// TestRegisterDeviceRetryKeepsNewest: a throttled attempt is retried, and
// the secret returned is the one the platform issued last, which is the
// one that is valid.
func TestRegisterDeviceRetryKeepsNewest(t *testing.T) {
	e := regEnv(t, fastConfig())
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultTooManyRequests, Times: 1})
	reg, err := e.register(t, registerForm(t, productSecret, "r1", signing.MethodHMACSHA256))
	if err != nil {
		t.Fatal(err)
	}
	current, _ := e.srv.DeviceSecret(pk, dn)
	if e.srv.Calls() != 2 || reg.DeviceSecret != current {
		t.Errorf("%d calls; the returned secret is the newest: %v", e.srv.Calls(), reg.DeviceSecret == current)
	}
	// A message that echoes the sign is relayed without it.
	form := registerForm(t, productSecret, "r2", signing.MethodHMACSHA256)
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 460, Message: "bad sign " + strings.ToUpper(form.Get("sign")), Times: 1})
	_, err = e.register(t, form)
	var pe *platform.Error
	if !errors.As(err, &pe) || pe.Message != "bad sign [redacted]" {
		t.Errorf("RegisterDevice = %v, want the message with the sign redacted", err)
	}
}

// TestRegisterDeviceOtherDevice: an answer for another device is refused,
// so its secret cannot be stored under the wrong name.
func TestRegisterDeviceOtherDevice(t *testing.T) {
	const leaked = "secret-of-another-device-000001"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"code":200,"message":"success","data":{"productKey":%q,"deviceName":"someone-else","deviceSecret":%q}}`, pk, leaked)
	}))
	t.Cleanup(srv.Close)
	c, err := platform.New(platform.Config{HTTPClient: srv.Client(), RegionBaseURLs: map[string]string{region: srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg, err := c.RegisterDevice(context.Background(), region, registerForm(t, productSecret, "r1", signing.MethodHMACSHA256))
	if !errors.Is(err, platform.ErrOutcomeUnknown) || reg.DeviceSecret != "" || strings.Contains(err.Error(), leaked) {
		t.Errorf("RegisterDevice = %s, %v; want ErrOutcomeUnknown without the secret", reg, err)
	}
}

// TestRegisterDeviceSharesBreaker: registration and pre-verification use
// the same breaker per base URL.
func TestRegisterDeviceSharesBreaker(t *testing.T) {
	e := regEnv(t, breakerConfig(generous))
	tripBreaker(t, e)
	_, err := e.register(t, registerForm(t, productSecret, "r1", signing.MethodHMACSHA256))
	checkOpen(t, err)
	if e.srv.Calls() != 3 {
		t.Errorf("%d calls, want the 3 that tripped the breaker", e.srv.Calls())
	}
}

// TestRegisterDeviceAnswerLost: the platform processed the registration
// (and issued a secret) but its answer was lost. The registration is not
// repeated: the platform saw exactly one, and the caller learns that the
// outcome is unknown.
func TestRegisterDeviceAnswerLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault platformtest.Fault
		cfg   func(*platform.Config)
	}{
		{name: "answer dropped", fault: platformtest.Fault{Kind: platformtest.FaultDropAnswer}},
		{name: "timeout after the request was sent", fault: platformtest.Fault{Kind: platformtest.FaultDelay, Delay: generous},
			cfg: func(c *platform.Config) { c.AttemptTimeout = time.Second }},
		{name: "HTTP 503", fault: platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503}},
		{name: "answer cut short", fault: platformtest.Fault{Kind: platformtest.FaultShortBody}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := regEnv(t, cfg)
			e.srv.Inject(tc.fault)
			form := registerForm(t, productSecret, "r1", signing.MethodHMACSHA256)
			reg, err := e.register(t, form)
			var pe *platform.Error
			if !errors.As(err, &pe) || !errors.Is(err, platform.ErrOutcomeUnknown) || reg != (platform.Registration{}) {
				t.Fatalf("RegisterDevice = %s, %v; want ErrOutcomeUnknown", reg, err)
			}
			waitFor(t, func() bool { return len(e.srv.Requests()) == 1 })
			if e.srv.Calls() != 1 || pe.Attempts != 1 {
				t.Errorf("%d upstream registrations (Attempts %d), want exactly 1", e.srv.Calls(), pe.Attempts)
			}
			if errors.Is(err, platform.ErrUnavailable) || errors.Is(err, platform.ErrUpstream) {
				t.Errorf("%v also claims a plain outage", err)
			}
			if tc.fault.Kind == platformtest.FaultDropAnswer && !e.srv.Requests()[0].Accepted() {
				t.Errorf("the emulator did not process the registration: %+v", e.srv.Requests()[0])
			}
			noSecrets(t, "error and logs", err.Error()+e.logs.String(), append(issuedSecrets(e.srv), form.Get("sign"), productSecret)...)
		})
	}
}

// TestRegisterDeviceRetriedWhenNeverSent: a registration that certainly
// never reached the platform (the connection was refused, or its TLS
// handshake failed) is retried, and succeeds.
func TestRegisterDeviceRetriedWhenNeverSent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   platformtest.FaultKind
		client bool // use the emulator's own HTTP client (for refused dials)
	}{
		{name: "connection refused", kind: platformtest.FaultRefuseConnection, client: true},
		{name: "TLS handshake fails", kind: platformtest.FaultHandshakeFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := platformtest.New(t)
			srv.AddProduct(pk, productSecret)
			srv.AllowRegistration(pk, dn)
			cfg := fastConfig()
			cfg.RegionBaseURLs = map[string]string{region: srv.URL()}
			if tc.client {
				cfg.HTTPClient = srv.Client()
			} else {
				cfg.RootCAs = srv.CertPool()
			}
			logs := &syncBuffer{}
			cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := platform.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			srv.Inject(platformtest.Fault{Kind: tc.kind, Times: 1})
			ctx, cancel := context.WithTimeout(context.Background(), generous)
			defer cancel()
			reg, err := c.RegisterDevice(ctx, region, registerForm(t, productSecret, "r1", signing.MethodHMACSHA256))
			if err != nil {
				t.Fatalf("RegisterDevice: %v", err)
			}
			current, _ := srv.DeviceSecret(pk, dn)
			if reg.DeviceSecret != current || srv.ConnFaults() != 1 || srv.Calls() != 1 {
				t.Errorf("secret is the platform's: %v; %d connection faults, %d registrations; want 1 and 1",
					reg.DeviceSecret == current, srv.ConnFaults(), srv.Calls())
			}
			if !strings.Contains(logs.String(), `"attempt":2`) {
				t.Errorf("no second attempt logged:\n%s", logs)
			}
		})
	}
}
