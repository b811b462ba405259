package aliyun_test

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// TestOutcome: every error kind has its metrics label; anything that is not
// a kind the labels name is "error", so no label can carry error text.
func TestOutcome(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&platform.Error{Kind: platform.ErrDeviceNotFound}, "device_not_found"},
		{&platform.Error{Kind: platform.ErrSignatureMismatch}, "signature_mismatch"},
		{&platform.Error{Kind: platform.ErrBadParameter}, "bad_parameter"},
		{&platform.Error{Kind: platform.ErrAuthTypeMismatch}, "auth_type_mismatch"},
		{&platform.Error{Kind: platform.ErrUnavailable}, "unavailable"},
		{&platform.Error{Kind: platform.ErrUpstream}, "upstream_error"},
		{&platform.Error{Kind: platform.ErrRequestRefused}, "request_refused"},
		{&platform.Error{Kind: platform.ErrProductNotFound}, "product_not_found"},
		{&platform.Error{Kind: platform.ErrDeviceDisabled}, "device_disabled"},
		{&platform.Error{Kind: platform.ErrThrottled}, "throttled"},
		{&platform.Error{Kind: platform.ErrUnknownCode}, "unknown_code"},
		{fmt.Errorf("wrapped: %w", &platform.Error{Kind: platform.ErrThrottled}), "throttled"},
		{&platform.Error{Kind: platform.ErrOutcomeUnknown}, "error"},
		{&platform.Error{}, "error"},
		{errors.New("other"), "error"},
	}
	for _, tt := range tests {
		if got := platform.Outcome(tt.err); got != tt.want {
			t.Errorf("Outcome(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

type observed struct {
	mu       sync.Mutex
	outcomes []string
	unknown  int
	breakers []string // "endpoint state" per BreakerState call
}

func (o *observed) BreakerState(endpoint, state string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.breakers = append(o.breakers, endpoint+" "+state)
}

func (o *observed) breakerStates() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.breakers)
}

func (o *observed) PreVerified(outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		outcome = "non-positive duration"
	}
	o.outcomes = append(o.outcomes, outcome)
}

func (o *observed) RegistrationOutcomeUnknown() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unknown++
}

// TestObserver: the client reports each PreVerify call once, with its
// outcome, and each registration whose outcome is unknown, and nothing
// else.
func TestObserver(t *testing.T) {
	obs := &observed{}
	cfg := fastConfig()
	cfg.Observer = obs
	e := regEnv(t, cfg)

	// A registration that succeeds and, once the device is active, one the
	// platform refuses: neither is an unknown outcome.
	if _, err := e.register(t, registerForm(t, productSecret, "r1", signing.MethodHMACSHA256)); err != nil {
		t.Fatalf("RegisterDevice: %v", err)
	}
	current, _ := e.srv.DeviceSecret(pk, dn)
	if _, err := e.call(t, signedForm(t, current, signing.MethodHMACSHA256, "")); err != nil {
		t.Fatalf("PreVerify: %v", err)
	}
	if _, err := e.register(t, registerForm(t, productSecret, "r2", signing.MethodHMACSHA256)); !errors.Is(err, platform.ErrAlreadyActivated) {
		t.Fatalf("second RegisterDevice = %v, want ErrAlreadyActivated", err)
	}
	if _, err := e.call(t, signedForm(t, "not-the-secret", signing.MethodHMACSHA256, "")); err == nil {
		t.Fatal("PreVerify with the wrong secret succeeded")
	}
	if _, err := e.call(t, url.Values{}); err == nil {
		t.Fatal("PreVerify of an empty form succeeded")
	}

	// Another client reporting to the same observer, on a fresh device.
	e2 := regEnv(t, cfg)
	e2.srv.Inject(platformtest.Fault{Kind: platformtest.FaultDropAnswer})
	if _, err := e2.register(t, registerForm(t, productSecret, "r3", signing.MethodHMACSHA256)); !errors.Is(err, platform.ErrOutcomeUnknown) {
		t.Fatalf("RegisterDevice with the answer dropped = %v, want ErrOutcomeUnknown", err)
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"ok", "signature_mismatch", "bad_parameter"}
	if fmt.Sprint(obs.outcomes) != fmt.Sprint(want) {
		t.Errorf("PreVerified outcomes = %v, want %v", obs.outcomes, want)
	}
	if len(obs.breakers) != 0 {
		t.Errorf("BreakerState called %v with breakers disabled", obs.breakers)
	}
	if obs.unknown != 1 {
		t.Errorf("RegistrationOutcomeUnknown called %d times, want 1", obs.unknown)
	}
}

// TestObserverBreakerStates: the observer learns each breaker state of an
// endpoint as it happens: closed at its first call, open once the platform
// fails, half-open when the open timeout has passed even though no call
// came, and closed again after a successful probe.
func TestObserverBreakerStates(t *testing.T) {
	obs := &observed{}
	cfg := breakerConfig(100 * time.Millisecond)
	cfg.Observer = obs
	e := newEnv(t, cfg)
	base, _ := e.c.BaseURL(region, pk)
	tripBreaker(t, e)
	want := []string{base + " closed", base + " open"}
	if got := obs.breakerStates(); !slices.Equal(got, want) {
		t.Fatalf("after the breaker opened: %q, want %q", got, want)
	}

	// No call: the timeout alone makes the breaker half-open.
	want = append(want, base+" half-open")
	waitFor(t, func() bool { return len(obs.breakerStates()) >= len(want) })
	if got := obs.breakerStates(); !slices.Equal(got, want) {
		t.Fatalf("after the open timeout: %q, want %q", got, want)
	}
	if e.srv.Calls() != 3 {
		t.Errorf("%d upstream calls, want 3: half-open without a probe", e.srv.Calls())
	}

	e.srv.ClearFaults()
	if _, err := e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, "")); err != nil {
		t.Fatalf("probe: %v", err)
	}
	want = append(want, base+" closed")
	if got := obs.breakerStates(); !slices.Equal(got, want) {
		t.Errorf("after a successful probe: %q, want %q", got, want)
	}
}
