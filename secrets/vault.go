package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// VaultConfig configures the Vault backend. The Vault client itself (address,
// CA, TLS client certificate, namespace) is configured the standard way, from
// VAULT_* environment variables through vault/api's own loading; the fields
// here override it where set.
type VaultConfig struct {
	// Address overrides VAULT_ADDR.
	Address string
	// Namespace overrides VAULT_NAMESPACE (Vault Enterprise).
	Namespace string
	// Auth logs signerd in. Nil (and NewAuth nil) means token auth: the
	// token comes from TokenFile or, failing that, VAULT_TOKEN.
	Auth vault.AuthMethod
	// NewAuth, if set, builds the auth method anew for every login. Use it
	// for methods that read their credential once when built (Kubernetes
	// reads the service-account token file then), so that a rotated
	// credential is picked up at the next re-login.
	NewAuth func() (vault.AuthMethod, error)
	// TokenFile holds a Vault token (for example a Vault Agent sink). It is
	// re-read when the token can no longer be renewed.
	TokenFile string

	// Mount is the KV v2 mount; default "iot".
	Mount string
	// PathTemplate locates a device's secret in the mount; default
	// "devices/{productKey}/{deviceName}".
	PathTemplate string
	// Field is the secret's key holding the DeviceSecret; default
	// "deviceSecret".
	Field string
	// Locations says where the keys of each other platform's devices are
	// (by device.ID.Platform); Mount, PathTemplate and Field above are
	// Alibaba's. A device of a platform with no location is refused.
	Locations map[string]Location

	// Timeout bounds one Vault request; default 1.5 s, so that an uncached
	// device gets its UNAVAILABLE within 2 s while Vault is down or slow.
	Timeout time.Duration
	// HTTPClient, if set, replaces the client's transport (tests count
	// requests with it).
	HTTPClient *http.Client
	// Logger receives token life-cycle events; default slog.Default().
	Logger *slog.Logger
	// OnRenew, if set, is called after every token renewal or re-login (for
	// metrics).
	OnRenew func(relogin bool)
}

// Defaults of VaultConfig.
const (
	DefaultMount        = "iot"
	DefaultPathTemplate = "devices/{productKey}/{deviceName}"
	DefaultField        = "deviceSecret"
	DefaultVaultTimeout = 1500 * time.Millisecond
)

// Vault is a Store backed by Vault's KV v2 secrets engine: one secret per
// device. It keeps its own token alive (renewal, and re-login when renewal
// is no longer possible) until Close.
type Vault struct {
	cfg    VaultConfig
	client *vault.Client
	kv     *vault.KVv2
	log    *slog.Logger

	stop context.CancelFunc
	done chan struct{}
	// denied is signalled when Vault answers a request 403 (denialWatch).
	denied chan struct{}

	mu        sync.Mutex
	authState error // last login/renewal failure, nil when healthy
	// refused: Vault answered the last login with 403 (token expired or
	// revoked, or credentials rejected), as against not answering at all.
	refused bool
}

// maxReloginBackoff caps the wait between failed logins. It is how long
// uncached devices may stay UNAVAILABLE after Vault returns from an outage
// that outlived signerd's token, so it is short; a login is one request.
const maxReloginBackoff = 5 * time.Second

// NewVault connects to Vault, logs in and checks that the login works, so
// that a misconfiguration fails at start-up with a clear message instead of
// at the first device. The token is then renewed in the background.
func NewVault(ctx context.Context, cfg VaultConfig) (*Vault, error) {
	if cfg.Mount == "" {
		cfg.Mount = DefaultMount
	}
	if cfg.PathTemplate == "" {
		cfg.PathTemplate = DefaultPathTemplate
	}
	if cfg.Field == "" {
		cfg.Field = DefaultField
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultVaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := checkTemplate(cfg.PathTemplate); err != nil {
		return nil, err
	}
	for name, loc := range cfg.Locations {
		if err := loc.Check(); err != nil {
			return nil, fmt.Errorf("vault location of platform %s: %w", name, err)
		}
	}

	vc := vault.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, VAULT_CLIENT_CERT, ...
	if vc.Error != nil {
		return nil, fmt.Errorf("vault client configuration: %w", vc.Error)
	}
	if cfg.Address != "" {
		vc.Address = cfg.Address
	}
	if cfg.HTTPClient != nil {
		vc.HttpClient = cfg.HTTPClient
	}
	// No client-wide timeout: lookups are bounded by their own context
	// (cfg.Timeout), logins by a longer one, as a Kubernetes login waits
	// for Vault's TokenReview round trip.
	// Retries would stretch an outage past the caller's deadline; the cache
	// and the caller's own retry cover transient faults.
	vc.MaxRetries = 0
	denied := make(chan struct{}, 1)
	hc := *vc.HttpClient // the caller's client stays as it was
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = denialWatch{next: next, denied: denied}
	vc.HttpClient = &hc
	client, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	// A token in the environment must not shadow the configured auth method.
	if cfg.Auth != nil || cfg.NewAuth != nil || cfg.TokenFile != "" {
		client.ClearToken()
	}

	v := &Vault{cfg: cfg, client: client, kv: client.KVv2(cfg.Mount), log: cfg.Logger, done: make(chan struct{}), denied: denied}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	first, err := v.login(lctx)
	if err != nil {
		return nil, fmt.Errorf("vault login at %s: %w", vc.Address, err)
	}
	// Prove the token can reach the mount; a missing device is fine here.
	if _, err := client.Sys().HealthWithContext(lctx); err != nil {
		return nil, fmt.Errorf("vault at %s unreachable: %w", vc.Address, classify(err))
	}

	rctx, stop := context.WithCancel(context.Background())
	v.stop = stop
	go v.keepTokenAlive(rctx, first)
	return v, nil
}

// TokenRefused reports whether Vault refused signerd's last login: its
// token expired or was revoked (token auth) or its credentials were
// rejected. It stays true until a login succeeds, and stays false while
// Vault is merely unreachable (a metric exports it).
func (v *Vault) TokenRefused() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.refused
}

// Client returns the underlying Vault client, logged in.
func (v *Vault) Client() *vault.Client { return v.client }

// Close stops token renewal. It does not revoke the token: another replica
// may share it (token auth), and a login token expires by itself.
func (v *Vault) Close() {
	v.stop()
	<-v.done
}

// Lookup implements Store.
func (v *Vault) Lookup(ctx context.Context, id DeviceID) (Secret, error) {
	// The service validates names; this guards direct users of the package
	// against walking the mount with a crafted name.
	if err := checkPathParts(id); err != nil {
		return Secret{}, fmt.Errorf("device %q: %w: %w", id.String(), err, ErrNotFound)
	}
	loc, err := v.location(id)
	if err != nil {
		return Secret{}, fmt.Errorf("device %s: %w", id, err)
	}
	path := loc.path(id)
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	s, err := v.client.KVv2(loc.Mount).Get(ctx, path)
	where := fmt.Sprintf("device %s (vault %s/data/%s)", id, loc.Mount, path)
	if err != nil {
		return Secret{}, wrapRequestError(id.String(), where, err)
	}
	if s == nil || s.Data == nil {
		// Deleted (soft-deleted latest version) counts as absent.
		return Secret{}, fmt.Errorf("%s: %w", where, ErrNotFound)
	}
	raw, ok := s.Data[loc.Field]
	if !ok {
		return Secret{}, fmt.Errorf("%s: field %q missing: %w", where, loc.Field, ErrUnusable)
	}
	str, ok := raw.(string)
	if !ok {
		return Secret{}, fmt.Errorf("%s: field %q is a %T, want a string: %w", where, loc.Field, raw, ErrUnusable)
	}
	if str == "" {
		return Secret{}, fmt.Errorf("%s: field %q is empty: %w", where, loc.Field, ErrUnusable)
	}
	key, err := loc.Encoding.decode(str)
	if err != nil {
		return Secret{}, fmt.Errorf("%s: field %q: %w: %w", where, loc.Field, err, ErrUnusable)
	}
	return NewSecret(key), nil
}

// location returns where id's key is kept.
func (v *Vault) location(id DeviceID) (Location, error) {
	if id.Platform == "" {
		return Location{Mount: v.cfg.Mount, PathTemplate: v.cfg.PathTemplate, Field: v.cfg.Field}, nil
	}
	loc, ok := v.cfg.Locations[id.Platform]
	if !ok {
		return Location{}, fmt.Errorf("no Vault location is configured for platform %q", id.Platform)
	}
	return loc, nil
}

// Ready reports whether Vault answers and is unsealed, and whether signerd's
// own token is good.
func (v *Vault) Ready(ctx context.Context) error {
	h, err := v.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vault: %w", classify(err))
	}
	if !h.Initialized || h.Sealed {
		return fmt.Errorf("vault: sealed or not initialized: %w", ErrUnavailable)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.authState != nil {
		return fmt.Errorf("vault: %w", v.authState)
	}
	return nil
}

func (v *Vault) path(id DeviceID) string {
	loc, _ := v.location(id)
	return loc.path(id)
}

func checkTemplate(t string) error {
	if !strings.Contains(t, "{productKey}") || !strings.Contains(t, "{deviceName}") {
		return fmt.Errorf("vault path template %q: must contain {productKey} and {deviceName}", t)
	}
	if strings.HasPrefix(t, "/") || strings.Contains(t, "..") {
		return fmt.Errorf("vault path template %q: must be relative to the mount, without '..'", t)
	}
	return nil
}

// RequestError is a failed Vault request. Method and Path (relative to
// /v1/, such as "transit/hmac/a1PK.dev/sha2-256") are taken from the request
// vault/api sent, never re-typed by the caller, so a log line names the path
// Vault actually denied. It wraps one of this package's sentinel errors and
// the vault/api error. Its message carries Vault's error strings, which never
// hold secret values, and never the token.
type RequestError struct {
	Method, Path string
	// Status is Vault's HTTP status; 0 when Vault did not answer.
	Status int
	// Kind is ErrPermission, ErrUnavailable or ErrNotFound.
	Kind  error
	cause error
}

func (e *RequestError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("vault %s %s: no answer: %v: %v", e.Method, e.Path, e.cause, e.Kind)
	}
	var re *vault.ResponseError
	detail := ""
	if errors.As(e.cause, &re) && len(re.Errors) > 0 {
		// One line: Vault sends several errors as one multi-line text.
		detail = ": " + strings.Join(strings.Fields(strings.Join(re.Errors, "; ")), " ")
	}
	return fmt.Sprintf("vault %s %s: HTTP %d%s: %v", e.Method, e.Path, e.Status, detail, e.Kind)
}

func (e *RequestError) Unwrap() []error { return []error{e.Kind, e.cause} }

// apiPath turns the URL of a Vault API request into the path the policy
// rules see: "http://vault:8200/v1/iot/data/x?version=1" → "iot/data/x".
func apiPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return strings.TrimPrefix(u.Path, "/v1/")
}

// wrapRequestError classifies err and prefixes it with subject when it
// names its request (then a path typed here could only disagree), and with
// loc when it does not (vault/api's "secret not found" of a KV read).
func wrapRequestError(subject, loc string, err error) error {
	cerr := classify(err)
	var re *RequestError
	if errors.As(cerr, &re) {
		return fmt.Errorf("%s: %w", subject, cerr)
	}
	return fmt.Errorf("%s: %w", loc, cerr)
}

// classify maps a vault/api error to this package's sentinel errors, as a
// *RequestError naming the request when the error carries one (every
// request vault/api sends does). vault/api errors carry status and Vault's
// error strings, never secret values.
func classify(err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		kind := ErrUnavailable
		switch re.StatusCode {
		case http.StatusNotFound:
			kind = ErrNotFound
		case http.StatusForbidden, http.StatusUnauthorized:
			kind = ErrPermission
		}
		return &RequestError{Method: re.HTTPMethod, Path: apiPath(re.URL), Status: re.StatusCode, Kind: kind, cause: err}
	}
	if errors.Is(err, vault.ErrSecretNotFound) {
		return ErrNotFound
	}
	// Connection refused, TLS failure, timeout, cancellation: Vault did not
	// answer.
	var ue *url.Error
	if errors.As(err, &ue) {
		return &RequestError{Method: strings.ToUpper(ue.Op), Path: apiPath(ue.URL), Kind: ErrUnavailable, cause: ue.Err}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// login obtains a token and returns it as a Secret for the lifetime watcher.
func (v *Vault) login(ctx context.Context) (*vault.Secret, error) {
	method := v.cfg.Auth
	if v.cfg.NewAuth != nil {
		m, err := v.cfg.NewAuth()
		if err != nil {
			return nil, fmt.Errorf("auth method: %w", err)
		}
		method = m
	}
	if method != nil {
		s, err := v.client.Auth().Login(ctx, method)
		if err != nil {
			return nil, classify(err)
		}
		if s == nil || s.Auth == nil {
			return nil, errors.New("login returned no token")
		}
		return s, nil
	}
	if v.cfg.TokenFile != "" {
		b, err := os.ReadFile(v.cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		v.client.SetToken(strings.TrimSpace(string(b)))
	}
	if v.client.Token() == "" {
		return nil, errors.New("no Vault token: set VAULT_TOKEN, a token file, or an auth method")
	}
	// Turn the bare token into an Auth secret so the watcher can renew it.
	self, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, classify(err)
	}
	renewable, _ := self.TokenIsRenewable()
	ttl, _ := self.TokenTTL()
	if ttl < time.Second && self.Data["expire_time"] != nil {
		// Vault rounds the TTL down to whole seconds: a token in its last
		// second reads as 0, which watch would take for a token that never
		// expires, and never look at it again. Watch it for that second.
		ttl = time.Second
	}
	return &vault.Secret{Auth: &vault.SecretAuth{
		ClientToken:   v.client.Token(),
		Renewable:     renewable,
		LeaseDuration: int(ttl.Seconds()),
	}}, nil
}

// keepTokenAlive renews the token while Vault allows it and logs in again
// when it no longer does (max TTL reached, token revoked, renewal failed).
func (v *Vault) keepTokenAlive(ctx context.Context, s *vault.Secret) {
	defer close(v.done)
	backoff := time.Second
	for {
		if s != nil {
			v.setAuthState(nil)
			backoff = time.Second
			v.watch(ctx, s)
		}
		if ctx.Err() != nil {
			return
		}
		var err error
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err = v.login(lctx)
		cancel()
		if err != nil {
			if v.setAuthState(err) {
				v.logRefused(err)
			}
			v.log.Error("vault re-login failed; retrying", "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxReloginBackoff)
			continue
		}
		v.log.Info("vault re-login succeeded", "ttl_seconds", s.Auth.LeaseDuration)
		if v.cfg.OnRenew != nil {
			v.cfg.OnRenew(true)
		}
	}
}

// watch renews s until renewal ends, or until Vault denies signerd's token
// (a request answered 403 and a look at the token itself says it is gone:
// revoked, or expired behind the watcher's back), so that the next login
// comes at the first denial rather than when the token's TTL would have
// run out. A token without a TTL (root) needs no renewal, but can be
// revoked all the same.
func (v *Vault) watch(ctx context.Context, s *vault.Secret) {
	var (
		expiry  <-chan time.Time
		done    <-chan error
		renewed <-chan *vault.RenewOutput
	)
	switch {
	case s.Auth.LeaseDuration == 0:
		// No TTL: only a denial ends it.
	case !s.Auth.Renewable:
		// Cannot renew: log in again shortly before it expires.
		wait := time.Duration(s.Auth.LeaseDuration) * time.Second * 4 / 5
		v.log.Warn("vault token is not renewable; will log in again before it expires", "in", wait)
		t := time.NewTimer(wait)
		defer t.Stop()
		expiry = t.C
	default:
		w, err := v.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: s})
		if err != nil {
			v.log.Error("vault token watcher", "error", err)
			return
		}
		go w.Start()
		defer w.Stop()
		done, renewed = w.DoneCh(), w.RenewCh()
	}
	var checked time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-expiry:
			return
		case err := <-done:
			if err != nil {
				v.log.Warn("vault token renewal failed; logging in again", "error", classify(err))
			} else {
				v.log.Info("vault token reached its max TTL; logging in again")
			}
			return
		case r := <-renewed:
			ttl := 0
			if r.Secret != nil && r.Secret.Auth != nil {
				ttl = r.Secret.Auth.LeaseDuration
			}
			v.log.Debug("vault token renewed", "ttl_seconds", ttl)
			if v.cfg.OnRenew != nil {
				v.cfg.OnRenew(false)
			}
		case <-v.denied:
			// A policy that denies a path denies it on every call: one
			// look at the token a second is enough.
			if time.Since(checked) < time.Second {
				continue
			}
			checked = time.Now()
			if err := v.tokenDenied(ctx); err != nil {
				v.log.Warn("vault denies signerd's token; logging in again", "error", err)
				return
			}
		}
	}
}

// tokenDenied looks the token up and returns the error if Vault refuses
// it; nil if the token is good or Vault did not answer (an outage says
// nothing about the token).
func (v *Vault) tokenDenied(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	_, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err = classify(err); errors.Is(err, ErrPermission) {
		return err
	}
	return nil
}

// denialWatch signals denied for every 403 Vault answers, whichever user
// of the client sent the request (KV lookups, Transit, registration), so
// that the token keeper looks at the token.
type denialWatch struct {
	next   http.RoundTripper
	denied chan<- struct{}
}

func (d denialWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusForbidden {
		select {
		case d.denied <- struct{}{}:
		default:
		}
	}
	return resp, err
}

// setAuthState records the outcome of a login and reports whether Vault
// has just begun refusing it. A login Vault did not answer leaves refused
// as it was: an outage says nothing about the token.
func (v *Vault) setAuthState(err error) (newlyRefused bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.authState = err
	was := v.refused
	switch {
	case err == nil:
		v.refused = false
	case errors.Is(err, ErrPermission):
		v.refused = true
	}
	return v.refused && !was
}

// logRefused says once, when it begins, that Vault refuses signerd's login,
// and what brings signerd back: a token auth cannot log in by itself.
func (v *Vault) logRefused(err error) {
	if v.cfg.Auth != nil || v.cfg.NewAuth != nil {
		v.log.Error("vault refuses signerd's login: uncached devices get UNAVAILABLE until it succeeds; check the auth role and credentials",
			"error", err)
		return
	}
	fix := "restart signerd with a new VAULT_TOKEN"
	if v.cfg.TokenFile != "" {
		fix = "write a new token to the token file; signerd re-reads it"
	}
	v.log.Error("vault token is gone (expired or revoked): uncached devices get UNAVAILABLE until signerd has a new token",
		"error", err, "fix", fix)
}
