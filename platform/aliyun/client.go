package aliyun

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// AuthPath is the path of the pre-verification endpoint below a base URL.
const AuthPath = "/auth/devicename"

// Defaults of [Config].
const (
	DefaultRegion             = "cn-shanghai"
	DefaultMaxBodyBytes       = 64 << 10
	DefaultAttemptTimeout     = 10 * time.Second
	DefaultRetries            = 2
	DefaultBackoffBase        = 100 * time.Millisecond
	DefaultBackoffMax         = 2 * time.Second
	DefaultRetryAfterMax      = 5 * time.Second
	DefaultBreakerFailures    = 5
	DefaultBreakerOpenTimeout = 30 * time.Second
	DefaultUserAgent          = "signerd"
)

// Timeouts of the default HTTP transport. Each attempt is also bounded by
// Config.AttemptTimeout and the caller's context.
const (
	dialTimeout           = 5 * time.Second
	tlsHandshakeTimeout   = 5 * time.Second
	responseHeaderTimeout = 10 * time.Second
	idleConnTimeout       = 90 * time.Second
)

// Config configures a [Client]. The zero value is valid and talks to the
// public endpoints with the defaults.
type Config struct {
	// HTTPClient sends the requests. nil selects a client with TLS
	// verification (TLS 1.2 or later, system roots or RootCAs) and dial,
	// TLS handshake and response header timeouts. A given client is
	// copied, and the copy refuses redirects.
	HTTPClient *http.Client
	// RootCAs, if set, replaces the system roots of the default client; it
	// must be nil when HTTPClient is set.
	RootCAs *x509.CertPool

	// RegionBaseURLs maps a region ID to the base URL of its auth endpoint,
	// overriding https://iot-auth.{regionId}.aliyuncs.com.
	RegionBaseURLs map[string]string
	// ProductBaseURLs maps a ProductKey to the base URL of its auth
	// endpoint, overriding the region. Base URLs are https:// URLs without
	// user information, query or fragment; they may have a path prefix.
	ProductBaseURLs map[string]string

	// MaxBodyBytes caps the size of an answer; a larger one fails with
	// ErrUpstream. 0 selects DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// AttemptTimeout bounds each attempt (within the caller's deadline).
	// 0 selects DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Retries is how many times a failed attempt may be retried where that
	// is safe. 0 selects DefaultRetries; a negative value disables retries.
	Retries int
	// BackoffBase and BackoffMax bound the exponential backoff between
	// attempts: the n-th retry waits a random duration between half and
	// all of min(BackoffMax, BackoffBase·2ⁿ⁻¹). 0 selects the defaults.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RetryAfterMax is the longest Retry-After that is waited for; an
	// answer asking for more is not retried. 0 selects
	// DefaultRetryAfterMax.
	RetryAfterMax time.Duration
	// Breaker configures the per-base-URL circuit breakers.
	Breaker BreakerConfig

	// UserAgent is sent with each request; "" selects DefaultUserAgent.
	UserAgent string
	// Logger receives one record per attempt and breaker state change;
	// nil discards them.
	Logger *slog.Logger
	// Observer receives each call's outcome and duration (for metrics);
	// nil discards them.
	Observer Observer
}

// BreakerConfig configures the circuit breaker of each base URL.
type BreakerConfig struct {
	// Failures is the number of consecutive failed attempts that opens the
	// breaker. 0 selects DefaultBreakerFailures; a negative value disables
	// the breakers.
	Failures int
	// OpenTimeout is how long an open breaker refuses calls before it
	// lets probes through. 0 selects DefaultBreakerOpenTimeout.
	OpenTimeout time.Duration
	// HalfOpenProbes is how many calls a half-open breaker lets through,
	// and how many must succeed to close it. 0 means 1.
	HalfOpenProbes int
}

// Validate reports the first invalid setting of c.
func (c Config) Validate() error {
	if c.HTTPClient != nil && c.RootCAs != nil {
		return errors.New("platform: RootCAs must be nil when HTTPClient is set")
	}
	for region, base := range c.RegionBaseURLs {
		if !isRegion(region) {
			return fmt.Errorf("platform: RegionBaseURLs: region %q must be a DNS label of [a-z0-9-]", region)
		}
		if _, err := normalizeBaseURL(base); err != nil {
			return fmt.Errorf("platform: RegionBaseURLs[%q]: %w", region, err)
		}
	}
	for pk, base := range c.ProductBaseURLs {
		if !isProductKey(pk) {
			return fmt.Errorf("platform: ProductBaseURLs: product key %q must be 1–32 characters of [A-Za-z0-9]", pk)
		}
		if _, err := normalizeBaseURL(base); err != nil {
			return fmt.Errorf("platform: ProductBaseURLs[%q]: %w", pk, err)
		}
	}
	switch {
	case c.MaxBodyBytes < 0:
		return errors.New("platform: MaxBodyBytes must not be negative")
	case c.AttemptTimeout < 0:
		return errors.New("platform: AttemptTimeout must not be negative")
	case c.BackoffBase < 0, c.BackoffMax < 0:
		return errors.New("platform: BackoffBase and BackoffMax must not be negative")
	case c.RetryAfterMax < 0:
		return errors.New("platform: RetryAfterMax must not be negative")
	case c.Breaker.OpenTimeout < 0:
		return errors.New("platform: Breaker.OpenTimeout must not be negative")
	case c.Breaker.HalfOpenProbes < 0:
		return errors.New("platform: Breaker.HalfOpenProbes must not be negative")
	case strings.ContainsAny(c.UserAgent, "\r\n"):
		return errors.New("platform: UserAgent must be a single line")
	}
	return nil
}

// Client calls the platform's auth endpoint. It is safe for concurrent use.
type Client struct {
	http        *http.Client
	ownsIdle    bool
	log         *slog.Logger
	obs         Observer
	regionBase  map[string]string
	productBase map[string]string

	maxBody        int64
	attemptTimeout time.Duration
	retries        int
	backoffBase    time.Duration
	backoffMax     time.Duration
	retryAfterMax  time.Duration
	userAgent      string
	breakerCfg     BreakerConfig

	mu       sync.Mutex
	breakers map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		log:            cfg.Logger,
		obs:            cfg.Observer,
		regionBase:     make(map[string]string, len(cfg.RegionBaseURLs)),
		productBase:    make(map[string]string, len(cfg.ProductBaseURLs)),
		maxBody:        orDefault(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		attemptTimeout: orDefault(cfg.AttemptTimeout, DefaultAttemptTimeout),
		retries:        orDefault(cfg.Retries, DefaultRetries),
		backoffBase:    orDefault(cfg.BackoffBase, DefaultBackoffBase),
		backoffMax:     orDefault(cfg.BackoffMax, DefaultBackoffMax),
		retryAfterMax:  orDefault(cfg.RetryAfterMax, DefaultRetryAfterMax),
		userAgent:      orDefault(cfg.UserAgent, DefaultUserAgent),
		breakerCfg:     cfg.Breaker,
		breakers:       make(map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]),
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.retries < 0 {
		c.retries = 0
	}
	c.backoffMax = max(c.backoffMax, c.backoffBase)
	c.breakerCfg.Failures = orDefault(c.breakerCfg.Failures, DefaultBreakerFailures)
	c.breakerCfg.OpenTimeout = orDefault(c.breakerCfg.OpenTimeout, DefaultBreakerOpenTimeout)
	c.breakerCfg.HalfOpenProbes = orDefault(c.breakerCfg.HalfOpenProbes, 1)
	for region, base := range cfg.RegionBaseURLs {
		c.regionBase[region], _ = normalizeBaseURL(base)
	}
	for pk, base := range cfg.ProductBaseURLs {
		c.productBase[pk], _ = normalizeBaseURL(base)
	}
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		hc.CheckRedirect = refuseRedirect
		c.http = &hc
	} else {
		c.http = defaultHTTPClient(cfg.RootCAs)
		c.ownsIdle = true
	}
	return c, nil
}

// defaultHTTPClient returns a client with TLS verification and timeouts
// that refuses redirects.
func defaultHTTPClient(roots *x509.CertPool) *http.Client {
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    roots,
		},
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: t, CheckRedirect: refuseRedirect}
}

// refuseRedirect makes the client return a redirect as the answer: a
// redirected POST would send the sign somewhere else.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Close releases the idle connections of the client's HTTP transport. The
// client remains usable.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// BaseURL returns the base URL of the auth endpoint for a product in a
// region: ProductBaseURLs[productKey] if configured, else
// RegionBaseURLs[region], else https://iot-auth.{region}.aliyuncs.com. An
// empty region means DefaultRegion. Regions come from configuration; a
// region that is not a DNS label of [a-z0-9-] yields an *Error of kind
// ErrInvalidEndpoint.
func (c *Client) BaseURL(region, productKey string) (string, error) {
	if base, ok := c.productBase[productKey]; ok {
		return base, nil
	}
	if region == "" {
		region = DefaultRegion
	}
	if base, ok := c.regionBase[region]; ok {
		return base, nil
	}
	if !isRegion(region) {
		return "", &Error{Kind: ErrInvalidEndpoint, detail: "region must be a DNS label of [a-z0-9-]"}
	}
	return "https://iot-auth." + region + ".aliyuncs.com", nil
}

// Result is the platform's answer to a successful pre-verification. Its
// String, GoString, Format and LogValue methods redact the token.
type Result struct {
	// IotID is the device's platform ID: the MQTT username.
	IotID string
	// IotToken is the MQTT password, valid for 7 days.
	IotToken string
	// Host and Port are the MQTT endpoint (TLS).
	Host string
	Port int
}

// String returns the result with the token redacted.
func (r Result) String() string {
	return fmt.Sprintf("platform.Result{IotID: %q, IotToken: %s, Host: %q, Port: %d}", r.IotID, redacted, r.Host, r.Port)
}

// GoString returns the result with the token redacted.
func (r Result) GoString() string { return r.String() }

// Format redacts the token for every fmt verb.
func (r Result) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LogValue keeps the token out of slog records.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("iot_id", r.IotID),
		slog.String("iot_token", redacted),
		slog.String("host", r.Host),
		slog.Int("port", r.Port),
	)
}

// endpoint is one of the auth endpoint's operations, whose result is a T.
type endpoint[T any] struct {
	// op names the operation in errors and logs ("pre-verify").
	op string
	// path is appended to the base URL.
	path string
	// replayable reports whether the operation may be repeated after the
	// platform may have acted on it. A pre-verification may (it only
	// issues another token); a registration may not (a repeat loses the
	// secret the first issued, or is refused because the device counts
	// as activated).
	replayable bool
	// required are the form fields that must each have exactly one
	// non-empty value; the form is not sent otherwise.
	required []string
	// interpret maps an answer to an outcome; sign is the form's sign, to
	// be kept out of relayed messages.
	interpret func(status int, h http.Header, data []byte, sign string) outcome[T]
}

// preVerifyEndpoint is POST /auth/devicename.
var preVerifyEndpoint = endpoint[Result]{
	op:         "pre-verify",
	path:       AuthPath,
	replayable: true,
	required:   []string{"productKey", "deviceName", "clientId", "signmethod", "sign"},
	interpret:  interpret,
}

// PreVerify posts form, a signed pre-verification form (see
// signing.SignPreVerify), to the auth endpoint of the form's product in
// region (see [Client.BaseURL]) and returns the platform's answer.
//
// It retries where that is safe, within ctx, and fails fast while the
// base URL's circuit breaker is open. Errors are [*Error] values; see the
// package documentation for their kinds.
func (c *Client) PreVerify(ctx context.Context, region string, form url.Values) (Result, error) {
	start := time.Now()
	res, err := call(ctx, c, preVerifyEndpoint, region, form)
	c.obs.PreVerified(Outcome(err), time.Since(start))
	return res, err
}

// call posts form to e at the auth endpoint of the form's product in
// region, retrying where that is safe within ctx and failing fast while
// the base URL's circuit breaker is open. A non-nil error is an *Error.
func call[T any](ctx context.Context, c *Client, e endpoint[T], region string, form url.Values) (T, error) {
	res, err := retryLoop(ctx, c, e, region, form)
	if err != nil {
		err.op = e.op
		return res, err
	}
	return res, nil
}

// retryLoop is call's work: the form check, then attempts until one
// succeeds, fails for good, or the retries, the breaker or ctx end them.
func retryLoop[T any](ctx context.Context, c *Client, e endpoint[T], region string, form url.Values) (T, *Error) {
	var zero T
	for _, k := range e.required {
		if v := form[k]; len(v) != 1 || v[0] == "" {
			return zero, &Error{Kind: ErrBadParameter, detail: "the form needs exactly one non-empty " + k + " field"}
		}
	}
	base, berr := c.BaseURL(region, form.Get("productKey"))
	if berr != nil {
		var pe *Error
		if !errors.As(berr, &pe) {
			pe = &Error{Kind: ErrInvalidEndpoint, detail: berr.Error()}
		}
		return zero, pe
	}
	body := form.Encode()
	sign := form.Get("sign")
	br := c.breaker(base)

	var last *Error
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = &Error{Kind: ErrUnavailable, detail: "the caller's context ended"}
			}
			last.extra = append(last.extra, err)
			return zero, last
		}
		var done func(error)
		if br != nil {
			d, err := br.Allow()
			if err != nil {
				if last != nil {
					return zero, last
				}
				// Debug: an open breaker refuses every call; its opening
				// was logged once, at Warn.
				c.log.LogAttrs(ctx, slog.LevelDebug, "platform "+e.op+" refused: circuit breaker open",
					slog.String("base_url", base))
				return zero, &Error{Kind: ErrUnavailable, extra: []error{ErrCircuitOpen},
					detail: "the circuit breaker of " + base + " is open"}
			}
			done = d
		}
		start := time.Now()
		out := attempt(ctx, c, e, base, body, sign)
		if done != nil {
			done(out.verdict)
		}
		if out.err != nil && out.ambiguous && !e.replayable {
			out.err, out.retry = outcomeUnknown(out.err), false
		}
		c.logAttempt(ctx, e.op, base, n, time.Since(start), out.err, out.status, out.retry)
		if out.err == nil {
			return out.res, nil
		}
		out.err.Attempts = n
		last = out.err
		if !out.retry || n > c.retries {
			return zero, last
		}
		delay := c.backoff(n)
		if out.err.RetryAfter > 0 {
			if out.err.RetryAfter > c.retryAfterMax {
				return zero, last
			}
			delay = max(delay, out.err.RetryAfter)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= delay {
			return zero, last
		}
		if !sleep(ctx, delay) {
			last.extra = append(last.extra, ctx.Err())
			return zero, last
		}
	}
}

// outcomeUnknown turns the error of an attempt that may have reached the
// platform into ErrOutcomeUnknown, keeping what the answer said.
func outcomeUnknown(err *Error) *Error {
	u := *err
	u.Kind = ErrOutcomeUnknown
	u.detail = "the platform may have acted on the request: " + err.Kind.Error()
	if err.detail != "" {
		u.detail += ": " + err.detail
	}
	return &u
}

// logAttempt records one attempt: never the form, sign, token or secret.
func (c *Client) logAttempt(ctx context.Context, op, base string, attempt int, d time.Duration, err *Error, okStatus int, retry bool) {
	level, result := slog.LevelDebug, "ok"
	var status, code int
	if err != nil {
		level, result = slog.LevelWarn, err.Kind.Error()
		status, code = err.HTTPStatus, err.Code
	} else {
		status, code = okStatus, CodeSuccess
	}
	c.log.LogAttrs(ctx, level, "platform "+op+" attempt",
		slog.String("base_url", base),
		slog.Int("attempt", attempt),
		slog.Int("status", status),
		slog.Int("code", code),
		slog.Duration("duration", d),
		slog.String("result", result),
		slog.Bool("retryable", retry),
	)
}

// backoff returns the jittered delay before retry n (1-based): a random
// duration in [d/2, d] for d = min(backoffMax, backoffBase·2ⁿ⁻¹).
func (c *Client) backoff(n int) time.Duration {
	d := c.backoffMax
	if n-1 < 62 {
		if e := c.backoffBase << (n - 1); e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Breaker verdicts passed to gobreaker: nil counts as a success.
var (
	errBreakerFailure  = errors.New("failure")
	errBreakerExcluded = errors.New("excluded")
)

// breaker returns the circuit breaker of base, or nil if breakers are
// disabled.
func (c *Client) breaker(base string) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	if c.breakerCfg.Failures < 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.breakers[base]; ok {
		return b
	}
	failures := uint32(c.breakerCfg.Failures)
	var b *gobreaker.TwoStepCircuitBreaker[struct{}]
	b = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        base,
		MaxRequests: uint32(c.breakerCfg.HalfOpenProbes),
		Timeout:     c.breakerCfg.OpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= failures },
		IsExcluded:  func(err error) bool { return err == errBreakerExcluded },
		OnStateChange: func(name string, from, to gobreaker.State) {
			c.log.LogAttrs(context.Background(), slog.LevelWarn, "platform circuit breaker state changed",
				slog.String("base_url", name), slog.String("from", from.String()), slog.String("to", to.String()))
			c.obs.BreakerState(name, to.String())
			if to == gobreaker.StateOpen {
				// gobreaker moves an open breaker to half-open only when
				// asked; asking once the timeout has passed reports the
				// change even if no call comes, so that the observer never
				// shows a breaker open that would let a probe through.
				time.AfterFunc(c.breakerCfg.OpenTimeout, func() { b.State() })
			}
		},
	})
	c.breakers[base] = b
	// A new breaker starts closed: report it, so that each endpoint has a
	// state from its first call on, not only after its first failure.
	c.obs.BreakerState(base, gobreaker.StateClosed.String())
	return b
}

// BreakerStates returns the state ("closed", "half-open" or "open") of the
// circuit breaker of each base URL called so far, for health reporting.
func (c *Client) BreakerStates() map[string]string {
	c.mu.Lock()
	bs := maps.Clone(c.breakers)
	c.mu.Unlock()
	out := make(map[string]string, len(bs))
	for base, b := range bs {
		out[base] = b.State().String()
	}
	return out
}

// normalizeBaseURL checks that s is an https URL with a host and without
// user information, query or fragment, and returns it without a trailing
// slash.
func normalizeBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("base URL does not parse")
	}
	switch {
	case u.Scheme != "https":
		return "", errors.New("base URL must use https")
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("base URL must have a host")
	case u.User != nil:
		return "", errors.New("base URL must not contain user information")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "":
		return "", errors.New("base URL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// isRegion reports whether s is a lower-case DNS label.
func isRegion(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isProductKey reports whether s is 1–32 characters of [A-Za-z0-9].
func isProductKey(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
