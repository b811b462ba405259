package aliyun_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// breakerConfig opens after 3 failed attempts, without retries so that
// one call is one attempt.
func breakerConfig(openTimeout time.Duration) platform.Config {
	cfg := fastConfig()
	cfg.Retries = -1
	cfg.Breaker = platform.BreakerConfig{Failures: 3, OpenTimeout: openTimeout}
	return cfg
}

// tripBreaker makes three failing calls.
func tripBreaker(t *testing.T, e *env) {
	t.Helper()
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503})
	for i := range 3 {
		if _, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, "")); !errors.Is(err, platform.ErrUpstream) {
			t.Fatalf("call %d: %v, want ErrUpstream", i+1, err)
		}
	}
}

func checkOpen(t *testing.T, err error) {
	t.Helper()
	var pe *platform.Error
	if !errors.As(err, &pe) || !errors.Is(err, platform.ErrUnavailable) || !errors.Is(err, platform.ErrCircuitOpen) || pe.Attempts != 0 {
		t.Errorf("PreVerify = %v; want ErrUnavailable and ErrCircuitOpen without an attempt", err)
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	e := newEnv(t, breakerConfig(200*time.Millisecond))
	tripBreaker(t, e)
	base, _ := e.c.BaseURL(region, pk)
	if got := e.c.BreakerStates()[base]; got != "open" {
		t.Errorf("breaker state %q, want open", got)
	}

	// An open breaker answers at once, without calling the platform, also
	// for many concurrent callers.
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		})
	}
	wg.Wait()
	for _, err := range errs {
		checkOpen(t, err)
	}
	if e.srv.Calls() != 3 {
		t.Errorf("%d upstream calls, want 3: an open breaker must not call", e.srv.Calls())
	}
	if !strings.Contains(e.logs.String(), `"to":"open"`) {
		t.Errorf("logs lack the state change:\n%s", e.logs)
	}

	// Once the platform is back and the open timeout has passed, a probe
	// succeeds and closes the breaker.
	e.srv.ClearFaults()
	var res platform.Result
	waitFor(t, func() bool {
		var err error
		res, err = e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		if err != nil && !errors.Is(err, platform.ErrCircuitOpen) {
			t.Fatalf("while recovering: %v", err)
		}
		return err == nil
	})
	if _, ok := e.srv.Issued(res.IotID, res.IotToken); !ok {
		t.Error("the recovered call's result was not issued by the emulator")
	}
	if got := e.c.BreakerStates()[base]; got != "closed" {
		t.Errorf("breaker state %q after a successful probe, want closed", got)
	}
	if e.srv.Calls() != 4 {
		t.Errorf("%d upstream calls, want 4: three failures and one probe", e.srv.Calls())
	}
	noSecrets(t, "logs", e.logs.String(), append(issuedTokens(e.srv), secret)...)
}

// TestBreakerFailedProbe checks that a failed probe opens the breaker
// again.
func TestBreakerFailedProbe(t *testing.T) {
	e := newEnv(t, breakerConfig(100*time.Millisecond))
	tripBreaker(t, e)
	// The fault stays: wait for the probe, which fails.
	waitFor(t, func() bool {
		_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		return !errors.Is(err, platform.ErrCircuitOpen)
	})
	if e.srv.Calls() != 4 {
		t.Fatalf("%d calls, want 4", e.srv.Calls())
	}
	_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
	checkOpen(t, err)
	if e.srv.Calls() != 4 {
		t.Errorf("%d calls after the failed probe, want 4", e.srv.Calls())
	}
}

// TestBreakerDefinitiveAnswers checks that answers proving the platform
// alive do not open the breaker.
func TestBreakerDefinitiveAnswers(t *testing.T) {
	e := newEnv(t, breakerConfig(time.Hour))
	for _, code := range []int{401, 460, 5001, 6200} {
		e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: code, Times: 4})
	}
	for i := range 16 {
		_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		if err == nil || errors.Is(err, platform.ErrUnavailable) {
			t.Fatalf("call %d: %v, want a definitive error", i+1, err)
		}
	}
	if e.srv.Calls() != 16 {
		t.Errorf("%d calls, want 16", e.srv.Calls())
	}
	if _, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, "")); err != nil {
		t.Errorf("after definitive answers: %v", err)
	}
}

// TestBreakerIgnoresOneDevicesCodes: one device's platform codes, even
// code 500 answered many times over, are the device's business: they must
// not open the breaker that every other device's calls go through.
func TestBreakerIgnoresOneDevicesCodes(t *testing.T) {
	cfg := breakerConfig(time.Hour)
	cfg.Retries = 2 // code 500 is retried: 3 answers per call
	e := newEnv(t, cfg)
	const other = "dev-002"
	const otherSecret = "fedcba9876543210fedcba9876543210"
	e.srv.AddDevice(pk, other, otherSecret)
	for _, code := range []int{500, 6760, 429, 40000, 400, 401, 6204, 6289, 12345} {
		e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: code, Times: 6})
	}
	for {
		_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		if errors.Is(err, platform.ErrUnavailable) {
			t.Fatalf("device %s: %v: its own codes made the platform unavailable", dn, err)
		}
		if err == nil {
			break // the faults are used up
		}
	}
	if e.srv.Calls() < 9*6 {
		t.Fatalf("%d calls, want every fault used", e.srv.Calls())
	}
	base, _ := e.c.BaseURL(region, pk)
	if got := e.c.BreakerStates()[base]; got != "closed" {
		t.Errorf("breaker %q after one device's codes, want closed", got)
	}
	f, err := signing.SignPreVerify(signing.PreVerifyRequest{
		ProductKey: pk, DeviceName: other, ClientID: pk + "." + other, Method: signing.MethodHMACSHA256,
	}, signing.DeviceSecretMAC([]byte(otherSecret)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.call(t, f); err != nil {
		t.Errorf("another device after one device's codes: %v", err)
	}
}

// TestBreakerCountsEndpointFailures: failures of the endpoint itself (HTTP
// 5xx, broken connections, answers that are not the platform's) open it.
func TestBreakerCountsEndpointFailures(t *testing.T) {
	for _, f := range []platformtest.Fault{
		{Kind: platformtest.FaultHTTPStatus, Status: 500},
		{Kind: platformtest.FaultHTTPStatus, Status: 502},
		{Kind: platformtest.FaultResetConnection},
		{Kind: platformtest.FaultCloseConnection},
		{Kind: platformtest.FaultNonJSON},
	} {
		t.Run(f.Kind.String()+strconv.Itoa(f.Status), func(t *testing.T) {
			e := newEnv(t, breakerConfig(time.Hour))
			e.srv.Inject(f)
			for range 3 {
				if _, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, "")); err == nil {
					t.Fatal("a faulty endpoint answered")
				}
			}
			_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
			checkOpen(t, err)
		})
	}
}

// TestBreakerOpensDuringRetries checks that retries stop when the breaker
// opens, returning the last real error.
func TestBreakerOpensDuringRetries(t *testing.T) {
	cfg := fastConfig()
	cfg.Retries = 5
	cfg.Breaker = platform.BreakerConfig{Failures: 2, OpenTimeout: time.Hour}
	e := newEnv(t, cfg)
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 502})
	_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
	var pe *platform.Error
	if !errors.As(err, &pe) || !errors.Is(err, platform.ErrUpstream) || pe.HTTPStatus != 502 || pe.Attempts != 2 {
		t.Errorf("PreVerify = %v; want the HTTP 502 ErrUpstream after 2 attempts", err)
	}
	if e.srv.Calls() != 2 {
		t.Errorf("%d calls, want 2", e.srv.Calls())
	}
}

// TestBreakerHangingPlatform checks that a platform that accepts
// connections but never answers opens the breaker, after which callers
// are answered at once instead of waiting.
func TestBreakerHangingPlatform(t *testing.T) {
	cfg := breakerConfig(time.Hour)
	// Long enough for a TLS handshake on a loaded machine: a timeout
	// before the request reaches the platform would not be a hanging
	// platform.
	cfg.AttemptTimeout = 500 * time.Millisecond
	e := newEnv(t, cfg)
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: time.Hour})
	for i := range 3 {
		if _, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, "")); !errors.Is(err, platform.ErrUnavailable) || errors.Is(err, platform.ErrCircuitOpen) {
			t.Fatalf("call %d: %v, want a timeout", i+1, err)
		}
	}
	// The breaker is open: not one more call reaches the platform, so at
	// most the three before it opened ever did.
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		})
	}
	wg.Wait()
	for _, err := range errs {
		checkOpen(t, err)
	}
	if n := e.srv.Calls(); n == 0 || n > 3 {
		t.Errorf("%d calls reached the platform, want 1–3 (the ones before the breaker opened)", n)
	}
}

// TestBreakerCallerDeadlines checks that calls whose caller's deadline
// passes while the platform hangs count as failures, and cancellations do
// not.
func TestBreakerCallerDeadlines(t *testing.T) {
	e := newEnv(t, breakerConfig(time.Hour))
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: time.Hour})
	// Cancellations: the breaker stays closed.
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		_, err := e.c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("PreVerify = %v, want context.Canceled", err)
		}
	}
	base, _ := e.c.BaseURL(region, pk)
	if got := e.c.BreakerStates()[base]; got != "closed" {
		t.Fatalf("breaker %q after cancellations, want closed", got)
	}
	// Deadlines: the third opens it.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := e.c.PreVerify(ctx, region, signedForm(t, secret, signing.MethodHMACSHA256, ""))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("PreVerify = %v, want context.DeadlineExceeded", err)
		}
	}
	_, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
	checkOpen(t, err)
}

// TestBreakerPerBaseURL checks that one dead endpoint does not affect
// another.
func TestBreakerPerBaseURL(t *testing.T) {
	dead := platformtest.New(t)
	alive := platformtest.New(t)
	alive.AddDevice(pk, dn, secret)
	dead.Inject(platformtest.Fault{Kind: platformtest.FaultResetConnection})
	cfg := breakerConfig(time.Hour)
	cfg.RootCAs = alive.CertPool()
	cfg.RegionBaseURLs = map[string]string{"cn-dead": dead.URL(), "cn-alive": alive.URL()}
	c, err := platform.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	form := signedForm(t, secret, signing.MethodHMACSHA256, "")
	for range 3 {
		if _, err := c.PreVerify(ctx, "cn-dead", form); !errors.Is(err, platform.ErrUnavailable) {
			t.Fatalf("dead region: %v, want ErrUnavailable", err)
		}
	}
	_, err = c.PreVerify(ctx, "cn-dead", form)
	checkOpen(t, err)
	if _, err := c.PreVerify(ctx, "cn-alive", form); err != nil {
		t.Errorf("alive region: %v", err)
	}
	if dead.Calls() != 3 || alive.Calls() != 1 {
		t.Errorf("calls: dead %d, alive %d; want 3, 1", dead.Calls(), alive.Calls())
	}
}
