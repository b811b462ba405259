package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/secrets"
)

// deniedRecorder records every request Vault answers 401 or 403, as
// "METHOD path" with the path relative to /v1/: what Vault denied.
type deniedRecorder struct {
	mu     sync.Mutex
	denied []string
}

func (d *deniedRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized) {
		d.mu.Lock()
		d.denied = append(d.denied, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/v1/"))
		d.mu.Unlock()
	}
	return resp, err
}

func (d *deniedRecorder) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.denied
	d.denied = nil
	return out
}

// vaultPathRef finds what reads as a Vault API path in a message.
var vaultPathRef = regexp.MustCompile(`\b(?:iot|transit|auth|sys)/[\w./-]*[\w]`)

// checkNamesDeniedPath: a denial's message names the request Vault denied
// (method and path, as sent) and no other Vault path, and the error carries
// that request as a *secrets.RequestError.
func checkNamesDeniedPath(t *testing.T, err error, want string, denied []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want Vault's denial of %s", want)
	}
	if !slices.Contains(denied, want) {
		t.Fatalf("Vault denied %v, not %s: the test's expectation is off", denied, want)
	}
	msg := err.Error()
	if !strings.Contains(msg, want) {
		t.Errorf("message does not name the denied request %q:\n%s", want, msg)
	}
	wantPath := want[strings.IndexByte(want, ' ')+1:]
	for _, p := range vaultPathRef.FindAllString(msg, -1) {
		if p != wantPath {
			t.Errorf("message names %s, but Vault denied %s:\n%s", p, wantPath, msg)
		}
	}
	var re *secrets.RequestError
	if !errors.As(err, &re) || re.Method+" "+re.Path != want {
		t.Errorf("error carries request %+v, want %s", re, want)
	}
	if !errors.Is(err, secrets.ErrPermission) {
		t.Errorf("error %v does not wrap ErrPermission", err)
	}
}

// TestVaultDenialNamesRequestPath makes Vault refuse each request the
// secrets package sends and checks that the error (which signerd logs)
// names the path of the request Vault denied: not another path re-typed
// next to the call (a Transit HMAC was reported as transit/keys/…).
func TestVaultDenialNamesRequestPath(t *testing.T) {
	ctx := context.Background()
	shared := sharedVault(t)
	rec := &deniedRecorder{}
	client := &http.Client{Transport: rec}
	vaultWith := func(t *testing.T, token string) *secrets.Vault {
		t.Helper()
		t.Setenv("VAULT_TOKEN", token)
		v, err := secrets.NewVault(ctx, secrets.VaultConfig{Address: shared.Addr, HTTPClient: client})
		if err != nil {
			t.Fatalf("NewVault: %v", err)
		}
		t.Cleanup(v.Close)
		return v
	}
	id := secrets.DeviceID{ProductKey: "a1Denied", DeviceName: "dev-1"}

	tests := []struct {
		name     string
		policies []string // of signerd's token
		call     func(v *secrets.Vault) error
		want     string
	}{
		{"kv read: Lookup", []string{"default"}, func(v *secrets.Vault) error {
			_, err := v.Lookup(ctx, id)
			return err
		}, "GET iot/data/devices/a1Denied/dev-1"},
		{"kv read: ProductSecret", []string{"signerd"}, func(v *secrets.Vault) error {
			r, err := secrets.NewRegistry(v, secrets.RegistryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.ProductSecret(ctx, "a1Denied")
			return err
		}, "GET iot/data/products/a1Denied"},
		{"kv read: CheckAbsent", []string{"default"}, func(v *secrets.Vault) error {
			r, err := secrets.NewRegistry(v, secrets.RegistryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return r.CheckAbsent(ctx, id)
		}, "GET iot/data/devices/a1Denied/dev-1"},
		{"kv write with check-and-set: Create", []string{"signerd"}, func(v *secrets.Vault) error {
			r, err := secrets.NewRegistry(v, secrets.RegistryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Create(ctx, id, secrets.NewSecret([]byte("s3cr3t-not-logged")))
			return err
		}, "PUT iot/data/devices/a1Denied/dev-1"},
		{"transit hmac", []string{"signerd"}, func(v *secrets.Vault) error {
			tr, err := secrets.NewTransit(v.Client(), secrets.TransitConfig{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.HMACHex(ctx, id, "content")
			return err
		}, "PUT transit/hmac/a1Denied.dev_2d1/sha2-256"},
		{"transit import", []string{"signerd"}, func(v *secrets.Vault) error {
			tr, err := secrets.NewTransit(v.Client(), secrets.TransitConfig{})
			if err != nil {
				t.Fatal(err)
			}
			// The key's existence check is denied first and ignored; the
			// wrapping key's read is what fails the import.
			return tr.Import(ctx, id, []byte("s3cr3t-not-logged"))
		}, "GET transit/wrapping_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := vaultWith(t, policyToken(t, tt.policies...))
			rec.take()
			err := tt.call(v)
			checkNamesDeniedPath(t, err, tt.want, rec.take())
			if err != nil && strings.Contains(err.Error(), "s3cr3t-not-logged") {
				t.Errorf("error contains the secret: %v", err)
			}
		})
	}

	t.Run("token lookup at login", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte("hvs.not-a-token"), 0o600); err != nil {
			t.Fatal(err)
		}
		rec.take()
		_, err := secrets.NewVault(ctx, secrets.VaultConfig{Address: shared.Addr, TokenFile: file, HTTPClient: client})
		checkNamesDeniedPath(t, err, "GET auth/token/lookup-self", rec.take())
		if err != nil && strings.Contains(err.Error(), "not-a-token") {
			t.Errorf("error contains the token: %v", err)
		}
	})

	t.Run("re-login after the token is revoked", func(t *testing.T) {
		// A renewable 3 s token, revoked behind signerd's back. vault/api's
		// watcher takes the denied renewal for a token that cannot be
		// renewed and waits for its expiry without an error to log; the
		// re-login with the same (dead) token file is then denied, and its
		// log line names that request.
		tok, err := shared.Token(ctx, 3*time.Second, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		logs := &logBuffer{}
		rec.take()
		v, err := secrets.NewVault(ctx, secrets.VaultConfig{
			Address: shared.Addr, TokenFile: file, HTTPClient: client,
			Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if err := shared.Client.Auth().Token().RevokeOrphanWithContext(ctx, tok); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"vault re-login failed; retrying": "GET auth/token/lookup-self"}
		got := map[string]string{}
		// The re-login comes when the token's TTL is over; the bound only
		// ends a broken test.
		for deadline := time.Now().Add(30 * time.Second); len(got) < len(want) && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			for line := range strings.Lines(logs.String()) {
				var entry struct{ Msg, Error string }
				if json.Unmarshal([]byte(line), &entry) == nil && want[entry.Msg] != "" {
					got[entry.Msg] = entry.Error
				}
			}
		}
		denied := rec.take()
		for msg, req := range want {
			line, ok := got[msg]
			if !ok {
				t.Errorf("no log line %q; logs:\n%s", msg, logs.String())
				continue
			}
			if !slices.Contains(denied, req) {
				t.Errorf("Vault denied %v, not %s", denied, req)
			}
			path := req[strings.IndexByte(req, ' ')+1:]
			if !strings.Contains(line, req) {
				t.Errorf("%q: error %q does not name the denied request %s", msg, line, req)
			}
			for _, p := range vaultPathRef.FindAllString(line, -1) {
				if p != path {
					t.Errorf("%q names %s, but Vault denied %s: %q", msg, p, path, line)
				}
			}
			if strings.Contains(line, tok) {
				t.Errorf("%q logs the token", msg)
			}
		}
	})
}
