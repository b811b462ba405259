package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/internal/vectors"
	"github.com/signerd/signerd/secrets"
)

// vaultOnce is one real Vault server for the tests that do not stop it,
// started by the first of them: the cache and memory-store tests need no
// Vault and run without SIGNERD_VAULT_BIN.
var vaultOnce vaulttest.Shared

// sharedVault returns the shared Vault server; the test fails if it cannot
// start (run the tests with scripts/test.sh, or set SIGNERD_VAULT_BIN).
func sharedVault(t testing.TB) *vaulttest.Server {
	t.Helper()
	return vaultOnce.Get(t)
}

// forgetKV deletes the KV v2 entries at paths (every version and the
// metadata) from srv when the test ends: a test that creates entries on the
// shared server must leave it as it found it, or a repeated run (-count)
// finds them there already.
func forgetKV(t *testing.T, srv *vaulttest.Server, paths ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, p := range paths {
			if err := srv.Client.KVv2("iot").DeleteMetadata(context.Background(), p); err != nil {
				t.Errorf("clean up iot/%s: %v", p, err)
			}
		}
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	vaultOnce.Close(code != 0)
	os.Exit(code)
}

// countingTransport counts KV reads of device secrets on their way to Vault.
type countingTransport struct {
	reads atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/data/devices/") {
		c.reads.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func rootVault(t *testing.T, srv *vaulttest.Server, mod func(*secrets.VaultConfig)) *secrets.Vault {
	t.Helper()
	t.Setenv("VAULT_TOKEN", srv.RootToken)
	cfg := secrets.VaultConfig{Address: srv.Addr}
	if mod != nil {
		mod(&cfg)
	}
	v, err := secrets.NewVault(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewVault: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestVaultLookupVectors(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	cases := vectors.MustLoad()
	for _, c := range cases {
		if err := shared.PutDevice(ctx, c.Input.ProductKey, c.Input.DeviceName, c.Input.DeviceSecret); err != nil {
			t.Fatal(err)
		}
	}
	v := rootVault(t, shared, nil)
	for _, c := range cases {
		s, err := v.Lookup(ctx, secrets.DeviceID{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName})
		if err != nil {
			t.Fatalf("Lookup(%s/%s): %v", c.Input.ProductKey, c.Input.DeviceName, err)
		}
		if string(s.Bytes()) != c.Input.DeviceSecret {
			t.Errorf("Lookup(%s/%s) returned the wrong secret", c.Input.ProductKey, c.Input.DeviceName)
		}
	}
}

func TestVaultLookupErrors(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	const secretValue = "a-secret-that-must-not-leak-0001"
	kv := shared.Client.KVv2("iot")
	fixtures := map[string]map[string]any{
		"devices/a1Errors/no-field":  {"other": secretValue},
		"devices/a1Errors/empty":     {"deviceSecret": ""},
		"devices/a1Errors/notstring": {"deviceSecret": 12345, "x": secretValue},
		"devices/a1Errors/deleted":   {"deviceSecret": secretValue},
	}
	for p, data := range fixtures {
		if _, err := kv.Put(ctx, p, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(ctx, "devices/a1Errors/deleted"); err != nil {
		t.Fatal(err)
	}
	v := rootVault(t, shared, nil)

	tests := []struct {
		name     string
		store    *secrets.Vault
		device   string
		wantErr  error
		wantText string
	}{
		{"missing", v, "absent", secrets.ErrNotFound, "iot/data/devices/a1Errors/absent"},
		{"soft-deleted", v, "deleted", secrets.ErrNotFound, "a1Errors/deleted"},
		{"field missing", v, "no-field", secrets.ErrUnusable, `iot/data/devices/a1Errors/no-field): field "deviceSecret" missing`},
		{"field empty", v, "empty", secrets.ErrUnusable, `"deviceSecret" is empty`},
		{"field not a string", v, "notstring", secrets.ErrUnusable, `is a json.Number, want a string`},
		{"path with a slash", v, "a/../b", secrets.ErrNotFound, "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.store.Lookup(ctx, secrets.DeviceID{ProductKey: "a1Errors", DeviceName: tt.device})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Lookup error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Errorf("error leaks the secret: %q", err)
			}
		})
	}
}

func TestVaultPolicyDenialIsPermissionError(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	// A token with signerd's policy, which may read iot/data/devices/* only.
	tok, err := shared.Token(ctx, time.Hour, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", tok)
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{Address: shared.Addr, PathTemplate: "private/{productKey}/{deviceName}"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.Lookup(ctx, secrets.DeviceID{ProductKey: "a1Errors", DeviceName: "dev-001"})
	if !errors.Is(err, secrets.ErrPermission) {
		t.Fatalf("Lookup outside the policy = %v, want ErrPermission", err)
	}
}

func TestVaultStartupFailsFast(t *testing.T) {
	shared := sharedVault(t)
	tests := []struct {
		name     string
		addr     string
		token    string
		wantText string
	}{
		{"wrong token", shared.Addr, "not-a-token", "permission denied"},
		{"no token", shared.Addr, "", "no Vault token"},
		{"unreachable", "http://127.0.0.1:1", "x", "vault login at http://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("VAULT_TOKEN", tt.token)
			start := time.Now()
			_, err := secrets.NewVault(context.Background(), secrets.VaultConfig{Address: tt.addr})
			if err == nil {
				t.Fatal("NewVault succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error leaks the token: %q", err)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("NewVault took %s to fail", d)
			}
		})
	}
}

func approleVault(t *testing.T, srv *vaulttest.Server, ttl, maxTTL time.Duration, onRenew func(bool), logs *logBuffer) *secrets.Vault {
	t.Helper()
	ctx := context.Background()
	roleID, secretID, err := srv.AppRole(ctx, "signerd-"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), ttl, maxTTL)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromFile: file})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", srv.RootToken) // must be ignored: the auth method wins
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address: srv.Addr,
		Auth:    auth,
		OnRenew: onRenew,
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("NewVault with AppRole: %v", err)
	}
	t.Cleanup(v.Close)
	if v.Client().Token() == srv.RootToken {
		t.Fatal("AppRole login kept the root token from VAULT_TOKEN")
	}
	return v
}

func TestVaultAppRoleLoginAndRenewal(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	if err := shared.PutDevice(ctx, "a1Renew", "dev-renew", "renew-secret"); err != nil {
		t.Fatal(err)
	}
	var renewals, relogins atomic.Int64
	logs := &logBuffer{}
	// TTL 2 s, max TTL 5 s: within ~12 s the token is renewed several times
	// and must be replaced by a fresh login at least twice.
	v := approleVault(t, shared, 2*time.Second, 5*time.Second, func(relogin bool) {
		if relogin {
			relogins.Add(1)
		} else {
			renewals.Add(1)
		}
	}, logs)
	firstToken := v.Client().Token()

	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		s, err := v.Lookup(ctx, secrets.DeviceID{ProductKey: "a1Renew", DeviceName: "dev-renew"})
		if err != nil {
			t.Fatalf("Lookup at %s after login: %v", time.Until(deadline), err)
		}
		if string(s.Bytes()) != "renew-secret" {
			t.Fatal("wrong secret")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if renewals.Load() < 2 || relogins.Load() < 2 {
		t.Errorf("renewals = %d, re-logins = %d over 12 s of 2 s/5 s tokens; want ≥2 each",
			renewals.Load(), relogins.Load())
	}
	if v.Client().Token() == firstToken {
		t.Error("token never replaced although its max TTL passed")
	}
	for _, secret := range []string{v.Client().Token(), firstToken, "renew-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain a token or secret")
		}
	}
}

func TestVaultTokenAuthRenewal(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	tok, err := shared.Token(ctx, 2*time.Second, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var renewals atomic.Int64
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address: shared.Addr, TokenFile: file,
		OnRenew: func(bool) { renewals.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	time.Sleep(5 * time.Second) // 2.5 TTLs: without renewal the token is dead
	if renewals.Load() < 2 {
		t.Errorf("renewals = %d over 5 s of a 2 s token, want ≥2", renewals.Load())
	}
	if err := v.Ready(ctx); err != nil {
		t.Errorf("Ready after renewals: %v", err)
	}
	_, err = v.Lookup(ctx, secrets.DeviceID{ProductKey: "a1Nobody", DeviceName: "nobody"})
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Lookup with the renewed token = %v, want ErrNotFound (not a permission error)", err)
	}
}

// The tests of the cache over a real Vault are named TestVault…, with the
// other Vault-backed tests, and never say Cache or Memory: -run
// 'Cache|Memory' selects the tests that run without SIGNERD_VAULT_BIN.
func TestVaultOneReadForConcurrentMisses(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	if err := shared.PutDevice(ctx, "a1Flight", "dev-flight", "flight-secret"); err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{}
	v := rootVault(t, shared, func(c *secrets.VaultConfig) { c.HTTPClient = &http.Client{Transport: ct} })
	c, err := secrets.NewCache(v, secrets.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failures atomic.Int64
	start := make(chan struct{})
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s, err := c.Lookup(ctx, secrets.DeviceID{ProductKey: "a1Flight", DeviceName: "dev-flight"})
			if err != nil || string(s.Bytes()) != "flight-secret" {
				failures.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of 100 lookups failed", failures.Load())
	}
	if got := ct.reads.Load(); got != 1 {
		t.Errorf("Vault KV reads for 100 concurrent lookups of one uncached device = %d, want 1", got)
	}
}

func TestVaultRotationPickedUpAfterTTL(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	id := secrets.DeviceID{ProductKey: "a1Rotate", DeviceName: "dev-rotate"}
	if err := shared.PutDevice(ctx, id.ProductKey, id.DeviceName, "before"); err != nil {
		t.Fatal(err)
	}
	v := rootVault(t, shared, nil)
	// A clock of the test's own: under load, real time could pass the TTL
	// between two lookups that must both fall within it.
	var clockMu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		clockMu.Lock()
		defer clockMu.Unlock()
		now = now.Add(d)
	}
	c, err := secrets.NewCache(v, secrets.CacheConfig{TTL: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func() string {
		s, err := c.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return string(s.Bytes())
	}
	if got := lookup(); got != "before" {
		t.Fatalf("first lookup = %q", got)
	}
	if err := shared.PutDevice(ctx, id.ProductKey, id.DeviceName, "after"); err != nil {
		t.Fatal(err)
	}
	advance(59 * time.Second)
	if got := lookup(); got != "before" {
		t.Errorf("lookup within TTL = %q, want the cached %q", got, "before")
	}
	advance(2 * time.Second)
	if got := lookup(); got != "after" {
		t.Errorf("lookup after TTL = %q, want the rotated %q", got, "after")
	}
}

func TestVaultOutageAndRecovery(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.StartT(t) // its own server: this test stops it
	cached := secrets.DeviceID{ProductKey: "a1Outage", DeviceName: "dev-cached"}
	uncached := secrets.DeviceID{ProductKey: "a1Outage", DeviceName: "dev-uncached"}
	load := func() {
		t.Helper()
		for _, id := range []secrets.DeviceID{cached, uncached} {
			if err := srv.PutDevice(ctx, id.ProductKey, id.DeviceName, "secret-"+id.DeviceName); err != nil {
				t.Fatal(err)
			}
		}
	}
	load()
	v := rootVault(t, srv, nil)
	c, err := secrets.NewCache(v, secrets.CacheConfig{TTL: 200 * time.Millisecond, MaxStale: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, cached); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	time.Sleep(300 * time.Millisecond) // past the TTL: only stale serving can answer
	s, err := c.Lookup(ctx, cached)
	if err != nil || string(s.Bytes()) != "secret-dev-cached" {
		t.Fatalf("cached device during the outage: %v", err)
	}
	start := time.Now()
	_, err = c.Lookup(ctx, uncached)
	if !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("uncached device during the outage = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("uncached device failed after %s, want ≤2 s", d)
	}
	if err := v.Ready(ctx); err == nil {
		t.Error("Ready = nil while Vault is down")
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	load()
	s, err = c.Lookup(ctx, uncached)
	if err != nil || string(s.Bytes()) != "secret-dev-uncached" {
		t.Fatalf("uncached device after Vault came back: %v", err)
	}
	if err := v.Ready(ctx); err != nil {
		t.Errorf("Ready after recovery: %v", err)
	}
}

// A static token that dies (here: its max TTL passes) cannot be replaced by
// signerd itself: TokenRefused, Ready and one clear log line say so, and a
// new token in the token file ends it without a restart.
func TestVaultStaticTokenGone(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	tok, err := shared.Token(ctx, 2*time.Second, 2*time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address: shared.Addr, TokenFile: file,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.TokenRefused() {
		t.Fatal("TokenRefused with a fresh token")
	}
	const gone = "vault token is gone (expired or revoked)"
	// Generous bounds: they only end a broken test.
	for deadline := time.Now().Add(30 * time.Second); !v.TokenRefused(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("TokenRefused still false 30 s after a 2 s token; logs:\n%s", logs.String())
		}
	}
	if err := v.Ready(ctx); !errors.Is(err, secrets.ErrPermission) {
		t.Errorf("Ready with the token gone = %v, want ErrPermission", err)
	}
	_, err = v.Lookup(ctx, secrets.DeviceID{ProductKey: "a1Gone", DeviceName: "dev"})
	if !errors.Is(err, secrets.ErrPermission) {
		t.Errorf("Lookup with the token gone = %v, want ErrPermission", err)
	}
	time.Sleep(2 * time.Second) // several failed re-logins: still one line
	if n := strings.Count(logs.String(), gone); n != 1 {
		t.Errorf("%d log lines %q, want 1; logs:\n%s", n, gone, logs.String())
	}
	if !strings.Contains(logs.String(), "write a new token to the token file") {
		t.Errorf("the log does not say how to end it; logs:\n%s", logs.String())
	}

	fresh, err := shared.Token(ctx, time.Hour, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); v.TokenRefused(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("TokenRefused still true 30 s after a new token was written; logs:\n%s", logs.String())
		}
	}
	if err := v.Ready(ctx); err != nil {
		t.Errorf("Ready with the new token: %v", err)
	}
	for _, secret := range []string{tok, fresh} {
		if strings.Contains(logs.String(), secret) {
			t.Error("logs contain a token")
		}
	}
}

// A token revoked behind signerd's back is noticed at the first request
// Vault denies, not when its TTL (here an hour) would have run out: an
// AppRole signerd logs in again and serves, a static-token signerd says the
// token is gone.
func TestVaultRevokedTokenNoticed(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	id := secrets.DeviceID{ProductKey: "a1Revoked", DeviceName: "dev-revoked"}
	if err := shared.PutDevice(ctx, id.ProductKey, id.DeviceName, "revoked-secret"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		open func(t *testing.T, logs *logBuffer) *secrets.Vault
		// healed reports whether the store is back to what the auth method
		// allows: serving (AppRole) or saying the token is gone (token).
		healed func(v *secrets.Vault) bool
	}{
		{"approle", func(t *testing.T, logs *logBuffer) *secrets.Vault {
			return approleVault(t, shared, time.Hour, time.Hour, nil, logs)
		}, func(v *secrets.Vault) bool {
			_, err := v.Lookup(ctx, id)
			return err == nil && !v.TokenRefused()
		}},
		{"static token", func(t *testing.T, logs *logBuffer) *secrets.Vault {
			tok, err := shared.Token(ctx, time.Hour, 0, true)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := secrets.NewVault(ctx, secrets.VaultConfig{Address: shared.Addr, TokenFile: file,
				Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(v.Close)
			return v
		}, func(v *secrets.Vault) bool {
			return v.TokenRefused() && errors.Is(v.Ready(ctx), secrets.ErrPermission)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			v := tt.open(t, logs)
			if _, err := v.Lookup(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := shared.Client.Auth().Token().RevokeOrphanWithContext(ctx, v.Client().Token()); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Lookup(ctx, id); !errors.Is(err, secrets.ErrPermission) {
				t.Fatalf("Lookup with the revoked token = %v, want ErrPermission", err)
			}
			// The bound only ends a broken test; the token had an hour left.
			for deadline := time.Now().Add(30 * time.Second); !tt.healed(v); time.Sleep(200 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("revocation not acted on after 30 s; logs:\n%s", logs.String())
				}
			}
		})
	}
}
