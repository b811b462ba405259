package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/secrets"
)

// registrationPolicy is the shipped optional registration policy.
func registrationPolicy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../deploy/vault/policy-registration.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// policyToken returns a token of shared with the given policies; the
// registration policy is loaded as "signerd-registration".
func policyToken(t *testing.T, policies ...string) string {
	shared := sharedVault(t)
	t.Helper()
	ctx := context.Background()
	if err := shared.Client.Sys().PutPolicyWithContext(ctx, "signerd-registration", registrationPolicy(t)); err != nil {
		t.Fatal(err)
	}
	sec, err := shared.Client.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{
		Policies: policies, TTL: "1h", NoParent: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sec.Auth.ClientToken
}

func tokenVault(t *testing.T, token string) *secrets.Vault {
	shared := sharedVault(t)
	t.Helper()
	t.Setenv("VAULT_TOKEN", token)
	v, err := secrets.NewVault(context.Background(), secrets.VaultConfig{Address: shared.Addr})
	if err != nil {
		t.Fatalf("NewVault: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

func newRegistry(t *testing.T, v *secrets.Vault, cfg secrets.RegistryConfig) *secrets.Registry {
	t.Helper()
	r, err := secrets.NewRegistry(v, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// version returns the current version of a device's secret, from the
// metadata (read with the root token).
func version(t *testing.T, path string) int {
	shared := sharedVault(t)
	t.Helper()
	m, err := shared.Client.KVv2("iot").GetMetadata(context.Background(), path)
	if err != nil {
		t.Fatalf("metadata of %s: %v", path, err)
	}
	return m.CurrentVersion
}

func TestRegistryCreate(t *testing.T) {
	shared := sharedVault(t)
	forgetKV(t, shared, "devices/a1RegCreate/dev-0001")
	ctx := context.Background()
	v := rootVault(t, shared, nil)
	r := newRegistry(t, v, secrets.RegistryConfig{})
	id := secrets.DeviceID{ProductKey: "a1RegCreate", DeviceName: "dev-0001"}
	const first, second = "first-secret-0123456789abcdef012", "second-secret-123456789abcdef012"

	if err := r.CheckAbsent(ctx, id); err != nil {
		t.Fatalf("CheckAbsent before: %v", err)
	}
	ver, err := r.Create(ctx, id, secrets.NewSecret([]byte(first)))
	if err != nil || ver != 1 {
		t.Fatalf("Create = %d, %v; want version 1", ver, err)
	}
	s, err := v.Lookup(ctx, id)
	if err != nil || string(s.Bytes()) != first {
		t.Fatalf("Lookup after Create: %v", err)
	}
	err = r.CheckAbsent(ctx, id)
	if !errors.Is(err, secrets.ErrExists) || !strings.Contains(err.Error(), "iot/data/devices/a1RegCreate/dev-0001") {
		t.Errorf("CheckAbsent after = %v, want ErrExists naming the path", err)
	}
	// A second write is refused and leaves the first untouched.
	_, err = r.Create(ctx, id, secrets.NewSecret([]byte(second)))
	if !errors.Is(err, secrets.ErrExists) || strings.Contains(err.Error(), second) {
		t.Errorf("second Create = %v, want ErrExists without the secret", err)
	}
	if s, _ := v.Lookup(ctx, id); string(s.Bytes()) != first || version(t, "devices/a1RegCreate/dev-0001") != 1 {
		t.Error("the second Create changed the stored secret")
	}

	// A deleted secret still blocks: its key exists.
	if err := shared.Client.KVv2("iot").Delete(ctx, "devices/a1RegCreate/dev-0001"); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckAbsent(ctx, id); !errors.Is(err, secrets.ErrExists) || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("CheckAbsent of a deleted secret = %v, want ErrExists saying it is deleted", err)
	}
	if _, err := r.Create(ctx, id, secrets.NewSecret([]byte(second))); !errors.Is(err, secrets.ErrExists) {
		t.Errorf("Create over a deleted secret = %v, want ErrExists", err)
	}
	// Once its metadata is gone, it can be created again.
	if err := shared.Client.KVv2("iot").DeleteMetadata(ctx, "devices/a1RegCreate/dev-0001"); err != nil {
		t.Fatal(err)
	}
	if ver, err := r.Create(ctx, id, secrets.NewSecret([]byte(second))); err != nil || ver != 1 {
		t.Errorf("Create after metadata deletion = %d, %v", ver, err)
	}

	for _, bad := range []secrets.DeviceID{{ProductKey: "a1", DeviceName: "../x"}, {ProductKey: "", DeviceName: "dev"}, {ProductKey: "a1", DeviceName: "a%2f"}} {
		if _, err := r.Create(ctx, bad, secrets.NewSecret([]byte(first))); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
		if err := r.CheckAbsent(ctx, bad); err == nil {
			t.Errorf("CheckAbsent(%q) = nil", bad)
		}
	}
	if _, err := r.Create(ctx, secrets.DeviceID{ProductKey: "a1RegCreate", DeviceName: "dev-empty"}, secrets.Secret{}); !errors.Is(err, secrets.ErrUnusable) {
		t.Errorf("Create of an empty secret = %v, want ErrUnusable", err)
	}
}

// TestRegistryConcurrentCreate races writers of one device: exactly one
// wins, the others get ErrExists, and the winner's secret is stored.
func TestRegistryConcurrentCreate(t *testing.T) {
	shared := sharedVault(t)
	forgetKV(t, shared, "devices/a1RegRace/dev-0001")
	ctx := context.Background()
	r := newRegistry(t, rootVault(t, shared, nil), secrets.RegistryConfig{})
	id := secrets.DeviceID{ProductKey: "a1RegRace", DeviceName: "dev-0001"}
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = r.Create(ctx, id, secrets.NewSecret(fmt.Appendf(nil, "secret-%02d-0123456789abcdef0123", i)))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, secrets.ErrExists):
			t.Errorf("writer %d: %v, want ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer succeeded")
	}
	s, err := shared.Client.KVv2("iot").Get(ctx, "devices/a1RegRace/dev-0001")
	if err != nil || s.Data["deviceSecret"] != fmt.Sprintf("secret-%02d-0123456789abcdef0123", winner) || s.VersionMetadata.Version != 1 {
		t.Errorf("stored %v (%v), want the winner's secret as version 1", s, err)
	}
}

func TestRegistryProductSecret(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	const value = "product-secret-that-must-not-leak"
	kv := shared.Client.KVv2("iot")
	for p, data := range map[string]map[string]any{
		"products/a1Good":     {"productSecret": value},
		"products/a1NoField":  {"other": value},
		"products/a1Empty":    {"productSecret": ""},
		"products/a1Number":   {"productSecret": 42, "x": value},
		"products/a1Deleted":  {"productSecret": value},
		"fleet/a1Custom/prod": {"ps": value},
	} {
		if _, err := kv.Put(ctx, p, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(ctx, "products/a1Deleted"); err != nil {
		t.Fatal(err)
	}
	v := rootVault(t, shared, nil)
	r := newRegistry(t, v, secrets.RegistryConfig{})
	s, err := r.ProductSecret(ctx, "a1Good")
	if err != nil || string(s.Bytes()) != value {
		t.Fatalf("ProductSecret(a1Good): %v", err)
	}
	if got, want := r.ProductLocation("a1Good"), "vault iot/data/products/a1Good field productSecret"; got != want {
		t.Errorf("ProductLocation = %q, want %q", got, want)
	}
	for pk, want := range map[string]error{
		"a1Missing": secrets.ErrNotFound, "a1Deleted": secrets.ErrNotFound,
		"a1NoField": secrets.ErrUnusable, "a1Empty": secrets.ErrUnusable, "a1Number": secrets.ErrUnusable,
		"a1/../x": secrets.ErrNotFound,
	} {
		_, err := r.ProductSecret(ctx, pk)
		if !errors.Is(err, want) {
			t.Errorf("ProductSecret(%s) = %v, want %v", pk, err, want)
			continue
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("ProductSecret(%s) error contains the secret: %v", pk, err)
		}
		if pk != "a1/../x" && !strings.Contains(err.Error(), "iot/data/products/"+pk) {
			t.Errorf("ProductSecret(%s) error %q does not name the path", pk, err)
		}
	}
	custom := newRegistry(t, v, secrets.RegistryConfig{ProductPathTemplate: "fleet/{productKey}/prod", ProductField: "ps"})
	if s, err := custom.ProductSecret(ctx, "a1Custom"); err != nil || string(s.Bytes()) != value {
		t.Errorf("custom location: %v", err)
	}
	for _, tmpl := range []string{"products", "products/{productKey}/{deviceName}", "/products/{productKey}", "../{productKey}"} {
		if _, err := secrets.NewRegistry(v, secrets.RegistryConfig{ProductPathTemplate: tmpl}); err == nil {
			t.Errorf("NewRegistry accepted template %q", tmpl)
		}
	}
}

// TestRegistryPolicies checks the shipped policies against a real Vault:
// signerd's default policy allows no registration at all; with the
// registration policy signerd can read ProductSecrets and create device
// secrets, but not overwrite, delete or list them.
func TestRegistryPolicies(t *testing.T) {
	shared := sharedVault(t)
	forgetKV(t, shared, "products/a1Policy", "devices/a1Policy/existing-01", "devices/a1Policy/new-01")
	ctx := context.Background()
	kv := shared.Client.KVv2("iot")
	if _, err := kv.Put(ctx, "products/a1Policy", map[string]any{"productSecret": "ps-0123456789"}); err != nil {
		t.Fatal(err)
	}
	if err := shared.PutDevice(ctx, "a1Policy", "existing-01", "existing-secret-0123456789abcdef"); err != nil {
		t.Fatal(err)
	}

	t.Run("default policy only", func(t *testing.T) {
		r := newRegistry(t, tokenVault(t, policyToken(t, "signerd")), secrets.RegistryConfig{})
		if _, err := r.ProductSecret(ctx, "a1Policy"); !errors.Is(err, secrets.ErrPermission) {
			t.Errorf("ProductSecret = %v, want ErrPermission", err)
		}
		id := secrets.DeviceID{ProductKey: "a1Policy", DeviceName: "denied-01"}
		if _, err := r.Create(ctx, id, secrets.NewSecret([]byte("x"))); !errors.Is(err, secrets.ErrPermission) || errors.Is(err, secrets.ErrExists) {
			t.Errorf("Create = %v, want ErrPermission", err)
		}
		if err := r.CheckAbsent(ctx, id); err != nil {
			t.Errorf("CheckAbsent = %v; the default policy reads devices", err)
		}
	})

	t.Run("with the registration policy", func(t *testing.T) {
		tok := policyToken(t, "signerd", "signerd-registration")
		v := tokenVault(t, tok)
		r := newRegistry(t, v, secrets.RegistryConfig{})
		if s, err := r.ProductSecret(ctx, "a1Policy"); err != nil || string(s.Bytes()) != "ps-0123456789" {
			t.Errorf("ProductSecret: %v", err)
		}
		id := secrets.DeviceID{ProductKey: "a1Policy", DeviceName: "new-01"}
		if ver, err := r.Create(ctx, id, secrets.NewSecret([]byte("new-secret-0123456789abcdef01234"))); err != nil || ver != 1 {
			t.Fatalf("Create = %d, %v", ver, err)
		}
		// An existing key is an update: denied by Vault, reported as
		// ErrExists, and the secret is untouched.
		for _, dn := range []string{"new-01", "existing-01"} {
			_, err := r.Create(ctx, secrets.DeviceID{ProductKey: "a1Policy", DeviceName: dn}, secrets.NewSecret([]byte("overwrite-attempt-0123456789abc")))
			if !errors.Is(err, secrets.ErrExists) {
				t.Errorf("Create over %s = %v, want ErrExists", dn, err)
			}
		}
		if s, _ := v.Lookup(ctx, secrets.DeviceID{ProductKey: "a1Policy", DeviceName: "existing-01"}); string(s.Bytes()) != "existing-secret-0123456789abcdef" {
			t.Error("the existing secret changed")
		}
		if version(t, "devices/a1Policy/new-01") != 1 || version(t, "devices/a1Policy/existing-01") != 1 {
			t.Error("a denied write made a new version")
		}

		// Direct use of the token: everything beyond create and read is denied.
		c, err := vault.NewClient(&vault.Config{Address: shared.Addr})
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(tok)
		tkv := c.KVv2("iot")
		denied := map[string]func() error{
			"overwrite without cas": func() error {
				_, err := tkv.Put(ctx, "devices/a1Policy/new-01", map[string]any{"deviceSecret": "x"})
				return err
			},
			"delete": func() error { return tkv.Delete(ctx, "devices/a1Policy/new-01") },
			"destroy": func() error {
				return tkv.Destroy(ctx, "devices/a1Policy/new-01", []int{1})
			},
			"metadata": func() error {
				_, err := tkv.GetMetadata(ctx, "devices/a1Policy/new-01")
				return err
			},
			"list devices": func() error {
				_, err := c.Logical().ListWithContext(ctx, "iot/metadata/devices/a1Policy")
				return err
			},
			"write a product secret": func() error {
				_, err := tkv.Put(ctx, "products/a1Other", map[string]any{"productSecret": "x"})
				return err
			},
			"create outside devices": func() error {
				_, err := tkv.Put(ctx, "elsewhere/x", map[string]any{"a": "b"})
				return err
			},
		}
		for name, f := range denied {
			var re *vault.ResponseError
			if err := f(); !errors.As(err, &re) || re.StatusCode != 403 {
				t.Errorf("%s: %v, want 403", name, err)
			}
		}
	})
}

func TestCacheForget(t *testing.T) {
	ctx := context.Background()
	m := secrets.NewMemory()
	c, err := secrets.NewCache(m, secrets.CacheConfig{NegativeTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := secrets.DeviceID{ProductKey: "a1Forget", DeviceName: "dev-0001"}
	if _, err := c.Lookup(ctx, id); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("first lookup: %v", err)
	}
	m.Put(id, []byte("s"))
	if _, err := c.Lookup(ctx, id); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("the negative entry should still answer: %v", err)
	}
	c.Forget(id)
	if s, err := c.Lookup(ctx, id); err != nil || string(s.Bytes()) != "s" {
		t.Errorf("after Forget: %v", err)
	}
	c.Forget(secrets.DeviceID{ProductKey: "a1Forget", DeviceName: "never-seen"}) // no entry: no-op
}
