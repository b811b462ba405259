// Package platformtest gives the platform packages' tests a real key home:
// a Vault dev server (internal/vaulttest) holding keys where a platform's
// configured locations say, read through signerd's own least-privilege
// policy, so that a default location the shipped policy does not cover
// fails a test instead of every login in production.
package platformtest

import (
	"context"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/secrets"
)

// Entry is one KV v2 secret to write in the "iot" mount before the test.
type Entry struct {
	Path string
	Data map[string]any
}

// VaultKeys starts a Vault server for t, writes entries with the root
// token, and returns the keys of c's locations as the service reads them:
// a secrets.Vault logged in with a token of signerd's shipped policy,
// behind a Router. The test fails, never skips, without SIGNERD_VAULT_BIN.
func VaultKeys(t testing.TB, c platform.Config, entries ...Entry) platform.Keys {
	t.Helper()
	srv := vaulttest.StartT(t)
	ctx := context.Background()
	for _, e := range entries {
		if _, err := srv.Client.KVv2("iot").Put(ctx, e.Path, e.Data); err != nil {
			t.Fatalf("write iot/%s: %v", e.Path, err)
		}
	}
	token, err := srv.Token(ctx, time.Hour, 2*time.Hour, true)
	if err != nil {
		t.Fatalf("token with signerd's policy: %v", err)
	}
	t.Setenv("VAULT_TOKEN", token)
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{Address: srv.Addr, Locations: c.Locations})
	if err != nil {
		t.Fatalf("NewVault: %v", err)
	}
	t.Cleanup(v.Close)
	return secrets.NewRouter(secrets.NewLocalMACer(v), nil, nil)
}
