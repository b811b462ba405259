package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signerd/signerd/platform"
)

type fakePV struct{ err error }

func (f fakePV) PreVerify(context.Context, string, url.Values) (platform.Result, error) {
	return platform.Result{IotID: "id", IotToken: "secret-token"}, f.err
}

func TestPreVerifierOutcomes(t *testing.T) {
	m := New()
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&platform.Error{Kind: platform.ErrDeviceNotFound}, "device_not_found"},
		{&platform.Error{Kind: platform.ErrSignatureMismatch}, "signature_mismatch"},
		{&platform.Error{Kind: platform.ErrUnavailable}, "unavailable"},
		{&platform.Error{Kind: platform.ErrThrottled}, "throttled"},
		{&platform.Error{Kind: platform.ErrUnknownCode}, "unknown_code"},
		{&platform.Error{Kind: platform.ErrRequestRefused}, "request_refused"},
		{errors.New("other"), "error"},
	}
	for _, tt := range tests {
		_, _ = m.InstrumentPreVerifier(fakePV{tt.err}).PreVerify(context.Background(), "cn-shanghai", nil)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, tt := range tests {
		want := `signerd_platform_preverify_duration_seconds_count{outcome="` + tt.want + `"} 1`
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestCountersAndExposition(t *testing.T) {
	m := New()
	m.CacheObserve("hit")
	m.CacheObserve("hit")
	m.CacheObserve("miss")
	m.CacheEvicted()
	m.TokenRenewed(false)
	m.TokenRenewed(true)
	m.RateLimited("SignMqttConnect", "rate_limit")
	m.CacheSize(func() int { return 42 })
	if got := testutil.ToFloat64(m.cacheLookups.WithLabelValues("hit")); got != 2 {
		t.Errorf("cache hits = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.tokenRenewals.WithLabelValues("relogin")); got != 1 {
		t.Errorf("relogins = %v, want 1", got)
	}

	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer vault.Close()
	c := &http.Client{Transport: m.VaultTransport(nil)}
	resp, err := c.Get(vault.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := testutil.ToFloat64(m.vaultRequests.WithLabelValues("GET", "403")); got != 1 {
		t.Errorf("vault 403s = %v, want 1", got)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`signerd_secret_cache_lookups_total{outcome="hit"} 2`,
		`signerd_secret_cache_entries 42`,
		`signerd_secret_cache_evictions_total 1`,
		`signerd_vault_token_renewals_total{kind="renew"} 1`,
		`signerd_rate_limited_total{reason="rate_limit",rpc="SignMqttConnect"} 1`,
		`signerd_vault_request_duration_seconds_bucket`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "secret-token") {
		t.Error("/metrics contains a token")
	}
}

type fakeRegistrar struct{ err error }

func (f fakeRegistrar) RegisterDevice(context.Context, string, url.Values) (platform.Registration, error) {
	return platform.Registration{}, f.err
}

// TestRegistrarOutcomeUnknown: only registrations whose outcome is unknown
// are counted.
func TestRegistrarOutcomeUnknown(t *testing.T) {
	m := New()
	for _, err := range []error{
		nil,
		&platform.Error{Kind: platform.ErrUnavailable},
		&platform.Error{Kind: platform.ErrAlreadyActivated},
		&platform.Error{Kind: platform.ErrOutcomeUnknown},
		fmt.Errorf("wrapped: %w", &platform.Error{Kind: platform.ErrOutcomeUnknown}),
	} {
		_, _ = m.InstrumentRegistrar(fakeRegistrar{err}).RegisterDevice(context.Background(), "cn-shanghai", nil)
	}
	if got := testutil.ToFloat64(m.regUnknown); got != 2 {
		t.Errorf("outcome unknown = %v, want 2", got)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "signerd_platform_registration_outcome_unknown_total 2") {
		t.Error("/metrics lacks signerd_platform_registration_outcome_unknown_total")
	}
}
