// Package metrics holds signerd's Prometheus metrics: one registry, the
// collectors every layer reports to, and the decorators that feed them
// without the layers importing Prometheus themselves (secrets and auth
// take plain callbacks, the platform client an Observer that *Metrics
// implements). It knows no layer: the wiring in cmd/signerd hands its
// methods to each.
//
// Names follow Prometheus conventions: a signerd_ prefix, base units
// (seconds), _total for counters.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// latencyBuckets spans a cache hit (~µs) to a slow upstream (seconds).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics is signerd's set of collectors.
type Metrics struct {
	Registry *prometheus.Registry

	grpc           *grpcprom.ServerMetrics
	cacheLookups   *prometheus.CounterVec
	cacheEvictions prometheus.Counter
	vaultDuration  *prometheus.HistogramVec
	vaultRequests  *prometheus.CounterVec
	platformDur    *prometheus.HistogramVec
	rateLimited    *prometheus.CounterVec
	tokenRenewals  *prometheus.CounterVec
	regUnknown     prometheus.Counter
	breakerState   *prometheus.GaugeVec
}

// New registers every collector on a fresh registry (plus the Go runtime
// and process collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		grpc: grpcprom.NewServerMetrics(
			grpcprom.WithServerCounterOptions(grpcprom.WithNamespace("signerd")),
			grpcprom.WithServerHandlingTimeHistogram(
				grpcprom.WithHistogramNamespace("signerd"),
				grpcprom.WithHistogramBuckets(latencyBuckets)),
			grpcprom.WithContextLabels("transport"),
		),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_secret_cache_lookups_total",
			Help: "Secret cache lookups by outcome: hit, miss, stale (served during a Vault outage), negative_hit.",
		}, []string{"outcome"}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signerd_secret_cache_evictions_total",
			Help: "Secrets evicted from the cache to make room.",
		}),
		vaultDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signerd_vault_request_duration_seconds",
			Help:    "Latency of requests to Vault.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
		vaultRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_vault_requests_total",
			Help: "Requests to Vault by HTTP status code (\"error\": no answer).",
		}, []string{"method", "code"}),
		platformDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signerd_platform_preverify_duration_seconds",
			Help:    "Latency of PreVerify calls to the platform's auth endpoint (all attempts), by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_rate_limited_total",
			Help: "Calls refused by a per-caller rate limit or the in-flight cap.",
		}, []string{"rpc", "reason"}),
		tokenRenewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signerd_vault_token_renewals_total",
			Help: "Vault token renewals (kind=renew) and fresh logins (kind=relogin).",
		}, []string{"kind"}),
		regUnknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signerd_platform_registration_outcome_unknown_total",
			Help: "RegisterDevice calls that may have registered the device on the platform without signerd learning the secret " +
				"(REGISTRATION_OUTCOME_UNKNOWN): each such device needs a look, and likely a reset on the platform.",
		}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "signerd_platform_breaker_state",
			Help: "State of the circuit breaker of each platform endpoint (base URL): 0 closed, 1 half-open " +
				"(letting a probe through), 2 open (refusing PreVerify and RegisterDevice calls without a round trip).",
		}, []string{"endpoint"}),
	}
	r.MustRegister(m.grpc, m.cacheLookups, m.cacheEvictions, m.vaultDuration, m.vaultRequests,
		m.platformDur, m.rateLimited, m.tokenRenewals, m.regUnknown, m.breakerState,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry (for the metrics listener).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// UnaryServerInterceptor counts calls by RPC and code and times them by RPC
// and transport, which transport names from the call's context (the server
// passes auth.Transport: "grpc", or "rest" through the gateway).
func (m *Metrics) UnaryServerInterceptor(transport func(context.Context) string) grpc.UnaryServerInterceptor {
	return m.grpc.UnaryServerInterceptor(grpcprom.WithLabelsFromContext(transportLabel(transport)))
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func (m *Metrics) StreamServerInterceptor(transport func(context.Context) string) grpc.StreamServerInterceptor {
	return m.grpc.StreamServerInterceptor(grpcprom.WithLabelsFromContext(transportLabel(transport)))
}

func transportLabel(transport func(context.Context) string) func(context.Context) prometheus.Labels {
	return func(ctx context.Context) prometheus.Labels {
		return prometheus.Labels{"transport": transport(ctx)}
	}
}

// InitializeServer pre-creates the per-RPC series at zero, so dashboards
// and alerts see them before the first call.
func (m *Metrics) InitializeServer(s *grpc.Server) { m.grpc.InitializeMetrics(s) }

// CacheObserve is secrets.CacheConfig.Observe.
func (m *Metrics) CacheObserve(outcome string) { m.cacheLookups.WithLabelValues(outcome).Inc() }

// CacheEvicted is secrets.CacheConfig.OnEvict.
func (m *Metrics) CacheEvicted() { m.cacheEvictions.Inc() }

// CacheSize exports a cache's size as signerd_secret_cache_entries.
func (m *Metrics) CacheSize(size func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signerd_secret_cache_entries",
		Help: "Devices currently in the secret cache (including remembered unknown devices).",
	}, func() float64 { return float64(size()) }))
}

// TokenRenewed is secrets.VaultConfig.OnRenew.
func (m *Metrics) TokenRenewed(relogin bool) {
	kind := "renew"
	if relogin {
		kind = "relogin"
	}
	m.tokenRenewals.WithLabelValues(kind).Inc()
}

// VaultTokenRefused exports refused (secrets.Vault.TokenRefused) as
// signerd_vault_token_refused: 1 while Vault refuses signerd's token or
// login, which with token auth only a new token ends.
func (m *Metrics) VaultTokenRefused(refused func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signerd_vault_token_refused",
		Help: "1 while Vault refuses signerd's token or login (token expired or revoked, credentials rejected); 0 otherwise, also while Vault is unreachable.",
	}, func() float64 {
		if refused() {
			return 1
		}
		return 0
	}))
}

// RateLimited counts one refused call.
func (m *Metrics) RateLimited(rpc, reason string) { m.rateLimited.WithLabelValues(rpc, reason).Inc() }

// VaultTransport instruments an HTTP transport to Vault.
func (m *Metrics) VaultTransport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return promhttp.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(r)
		m.vaultDuration.WithLabelValues(r.Method).Observe(time.Since(start).Seconds())
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.vaultRequests.WithLabelValues(r.Method, code).Inc()
		return resp, err
	})
}

// PreVerified is platform.Config.Observer's: it times one PreVerify call
// (all attempts) under its outcome label. The labels are the platform
// client's; metrics only counts them.
func (m *Metrics) PreVerified(outcome string, d time.Duration) {
	m.platformDur.WithLabelValues(outcome).Observe(d.Seconds())
}

// RegistrationOutcomeUnknown is platform.Config.Observer's: it counts one
// registration whose outcome is unknown.
func (m *Metrics) RegistrationOutcomeUnknown() { m.regUnknown.Inc() }

// breakerStates are the gauge values of the platform client's breaker
// states, in the order a breaker goes from healthy to refusing.
var breakerStates = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

// BreakerState is platform.Config.Observer's: it sets endpoint's breaker
// gauge. The endpoint label is a configured platform base URL, so there are
// as many series as configured regions and product URLs. A state it does
// not know leaves the gauge as it was rather than showing a made-up value.
func (m *Metrics) BreakerState(endpoint, state string) {
	if v, ok := breakerStates[state]; ok {
		m.breakerState.WithLabelValues(endpoint).Set(v)
	}
}
