package secrets_test

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/internal/vectors"
	"github.com/signerd/signerd/secrets"
)

// TestTransitVectors imports the hmacsha256 vectors' secrets into the real
// Vault's Transit engine (BYOK) and checks that Vault's HMAC of each sign
// content is the platform's password, byte for byte, through HMACHex, the
// Transit MACer and a Router that puts the product in Transit.
func TestTransitVectors(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	v := rootVault(t, shared, nil)
	tr, err := secrets.NewTransit(v.Client(), secrets.TransitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	router := secrets.NewRouter(secrets.NewLocalMACer(secrets.NewMemory()), tr, func(string) bool { return true })
	n := 0
	for _, c := range vectors.MustLoad() {
		if c.Input.SignMethod != "hmacsha256" {
			continue
		}
		n++
		id := secrets.DeviceID{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName}
		if err := tr.Import(ctx, id, []byte(c.Input.DeviceSecret)); err != nil {
			t.Fatalf("Import(%s): %v", id, err)
		}
		forgetTransitKey(t, shared, tr.KeyName(id))
		got, err := tr.HMACHex(ctx, id, c.Expect.SignContent)
		if err != nil {
			t.Fatalf("HMACHex(%s): %v", id, err)
		}
		if got != c.Expect.Password {
			t.Errorf("%s: Transit HMAC = %s, want %s", id, got, c.Expect.Password)
		}
		// The MACer, alone and behind a Router that puts the product in
		// Transit (the store is empty: a local lookup would fail).
		for name, m := range map[string]secrets.MACer{"Transit": tr, "Router": router} {
			raw, err := m.MAC(ctx, id, secrets.HMACSHA256, []byte(c.Expect.SignContent))
			if err != nil || hex.EncodeToString(raw) != c.Expect.Password {
				t.Errorf("%s.MAC(%s) = %x, %v; want %s", name, id, raw, err, c.Expect.Password)
			}
		}
		// A second import must not replace the key.
		if err := tr.Import(ctx, id, []byte("ffffffffffffffffffffffffffffffff")); !errors.Is(err, secrets.ErrExists) {
			t.Errorf("re-import of %s = %v, want ErrExists", id, err)
		}
		if again, _ := tr.HMACHex(ctx, id, c.Expect.SignContent); again != c.Expect.Password {
			t.Errorf("%s: key changed by a refused re-import", id)
		}
	}
	if n < 10 {
		t.Fatalf("only %d hmacsha256 vectors", n)
	}
	_, err = tr.HMACHex(ctx, secrets.DeviceID{ProductKey: "a1Nobody", DeviceName: "nobody-01"}, "x")
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("HMAC with a missing key = %v, want ErrNotFound", err)
	}
	if _, err := router.MAC(ctx, secrets.DeviceID{ProductKey: "a1Nobody", DeviceName: "nobody-01"}, secrets.HMACSHA256, []byte("x")); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Router.MAC with a missing Transit key = %v, want ErrNotFound", err)
	}
}

// forgetTransitKey deletes the Transit key name from srv when the test
// ends, so that a repeated run (-count) can import it again.
func forgetTransitKey(t *testing.T, srv *vaulttest.Server, name string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := context.Background()
		l := srv.Client.Logical()
		if _, err := l.WriteWithContext(ctx, "transit/keys/"+name+"/config", map[string]any{"deletion_allowed": true}); err != nil {
			t.Errorf("clean up transit key %s: %v", name, err)
			return
		}
		if _, err := l.DeleteWithContext(ctx, "transit/keys/"+name); err != nil {
			t.Errorf("clean up transit key %s: %v", name, err)
		}
	})
}
