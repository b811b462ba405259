package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPlatformObserver: *Metrics is the platform client's Observer; each
// reported PreVerify lands under its outcome label and each unknown
// registration outcome in its counter.
func TestPlatformObserver(t *testing.T) {
	m := New()
	outcomes := []string{"ok", "device_not_found", "signature_mismatch", "unavailable", "throttled", "unknown_code", "request_refused", "error"}
	for _, o := range outcomes {
		m.PreVerified(o, 250*time.Millisecond)
	}
	m.RegistrationOutcomeUnknown()
	m.RegistrationOutcomeUnknown()
	if got := testutil.ToFloat64(m.regUnknown); got != 2 {
		t.Errorf("outcome unknown = %v, want 2", got)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, o := range outcomes {
		for _, want := range []string{
			`signerd_platform_preverify_duration_seconds_count{outcome="` + o + `"} 1`,
			`signerd_platform_preverify_duration_seconds_sum{outcome="` + o + `"} 0.25`,
			`signerd_platform_preverify_duration_seconds_bucket{outcome="` + o + `",le="0.25"} 1`,
			`signerd_platform_preverify_duration_seconds_bucket{outcome="` + o + `",le="0.1"} 0`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	}
	if !strings.Contains(body, "signerd_platform_registration_outcome_unknown_total 2") {
		t.Error("/metrics lacks signerd_platform_registration_outcome_unknown_total 2")
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
	m.VaultTokenRefused(func() bool { return true })
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
		`signerd_vault_token_refused 1`,
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

// TestBreakerState: each endpoint's gauge follows the states the platform
// client reports, one series per endpoint; an unknown state leaves the
// gauge as it was.
func TestBreakerState(t *testing.T) {
	const a, b = "https://iot-auth.cn-shanghai.aliyuncs.com", "https://auth.example.com/iot"
	tests := []struct {
		endpoint, state string
		wantA, wantB    float64
	}{
		{a, "closed", 0, -1},
		{b, "closed", 0, 0},
		{a, "open", 2, 0},
		{a, "half-open", 1, 0},
		{a, "open", 2, 0},
		{a, "sideways", 2, 0},
		{b, "open", 2, 2},
		{a, "half-open", 1, 2},
		{a, "closed", 0, 2},
	}
	m := New()
	for i, tt := range tests {
		m.BreakerState(tt.endpoint, tt.state)
		for _, c := range []struct {
			endpoint string
			want     float64
		}{{a, tt.wantA}, {b, tt.wantB}} {
			if c.want < 0 {
				if n := testutil.CollectAndCount(m.breakerState); n != 1 {
					t.Errorf("step %d: %d series, want 1", i, n)
				}
				continue
			}
			if got := testutil.ToFloat64(m.breakerState.WithLabelValues(c.endpoint)); got != c.want {
				t.Errorf("step %d (%s %s): %s = %v, want %v", i, tt.endpoint, tt.state, c.endpoint, got, c.want)
			}
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`signerd_platform_breaker_state{endpoint="` + a + `"} 0`,
		`signerd_platform_breaker_state{endpoint="` + b + `"} 2`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
