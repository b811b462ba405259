package deploy_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/deploy"
	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/secrets"
)

// appRoleClient logs in with the AppRole role apply.sh wrote and returns a
// client holding that token: a real login, so the role's policies are
// what is tested.
func appRoleClient(t *testing.T, srv *vaulttest.Server, role string) (*vault.Client, []string) {
	t.Helper()
	ctx := context.Background()
	roleID, err := srv.Client.Logical().ReadWithContext(ctx, "auth/approle/role/"+role+"/role-id")
	if err != nil {
		t.Fatal(err)
	}
	secretID, err := srv.Client.Logical().WriteWithContext(ctx, "auth/approle/role/"+role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	login, err := srv.Client.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": roleID.Data["role_id"], "secret_id": secretID.Data["secret_id"],
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(login.Auth.ClientToken)
	return c, login.Auth.Policies
}

// TestVaultApplyTransit: with the policies apply.sh installs, signerd's
// token computes a Transit HMAC when TRANSIT=true and is denied without it,
// and the denial names the hmac path Vault refused.
func TestVaultApplyTransit(t *testing.T) {
	srv := vaulttest.StartBareT(t)
	ctx := context.Background()

	for run := 1; run <= 2; run++ {
		out, err := runApply(t, srv, "APPROLE=true", "TRANSIT=true")
		if err != nil {
			t.Fatalf("apply.sh TRANSIT=true run %d: %v\n%s", run, err, out)
		}
		if run == 2 && !strings.Contains(out, "Transit at transit/ already enabled") {
			t.Errorf("second run did not find the Transit mount:\n%s", out)
		}
	}
	if m, err := srv.Client.Sys().ListMountsWithContext(ctx); err != nil || m["transit/"] == nil || m["transit/"].Type != "transit" {
		t.Fatalf("transit/ after apply.sh: %v %v", m["transit/"], err)
	}
	got, err := srv.Client.Sys().GetPolicyWithContext(ctx, "signerd-transit")
	if err != nil || strings.TrimSpace(got) != strings.TrimSpace(deploy.VaultTransitPolicy) {
		t.Fatalf("policy signerd-transit in Vault (%v):\n%s\nwant vault/policy-transit.hcl:\n%s", err, got, deploy.VaultTransitPolicy)
	}

	// A device key, imported by an operator (root) the way signerctl does.
	id := secrets.DeviceID{ProductKey: "a1Transit", DeviceName: "dev-0001"}
	const deviceSecret, content = "0123456789abcdef0123456789abcdef", "clientIda1Transit.dev-0001deviceNamedev-0001productKeya1Transit"
	admin, err := secrets.NewTransit(srv.Client, secrets.TransitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Import(ctx, id, []byte(deviceSecret)); err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(deviceSecret))
	mac.Write([]byte(content))
	want := hex.EncodeToString(mac.Sum(nil))

	hmacWith := func(t *testing.T) (string, error) {
		t.Helper()
		c, policies := appRoleClient(t, srv, "signerd")
		t.Logf("signerd's token has policies %v", policies)
		tr, err := secrets.NewTransit(c, secrets.TransitConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.HMACHex(ctx, id, content)
	}

	t.Run("allowed with the transit policy", func(t *testing.T) {
		got, err := hmacWith(t)
		if err != nil {
			t.Fatalf("Transit HMAC with signerd's token: %v", err)
		}
		if got != want {
			t.Errorf("Transit HMAC %s, want %s", got, want)
		}
	})

	t.Run("transit policy grants nothing else", func(t *testing.T) {
		c, _ := appRoleClient(t, srv, "signerd")
		for name, do := range map[string]func() error{
			"read the key": func() error {
				_, err := c.Logical().ReadWithContext(ctx, "transit/keys/a1Transit.dev_2d0001")
				return err
			},
			"export the key": func() error {
				_, err := c.Logical().ReadWithContext(ctx, "transit/export/hmac-key/a1Transit.dev_2d0001")
				return err
			},
			"import a key": func() error {
				_, err := c.Logical().WriteWithContext(ctx, "transit/keys/x/import", map[string]any{"ciphertext": "AA=="})
				return err
			},
			"encrypt": func() error {
				_, err := c.Logical().WriteWithContext(ctx, "transit/encrypt/a1Transit.dev_2d0001", map[string]any{"plaintext": "AA=="})
				return err
			},
		} {
			var re *vault.ResponseError
			if err := do(); !errors.As(err, &re) || re.StatusCode != 403 {
				t.Errorf("%s: want 403, got %v", name, err)
			}
		}
	})

	t.Run("denied without it", func(t *testing.T) {
		out, err := runApply(t, srv, "APPROLE=true")
		if err != nil {
			t.Fatalf("apply.sh without TRANSIT: %v\n%s", err, out)
		}
		_, err = hmacWith(t)
		if !errors.Is(err, secrets.ErrPermission) {
			t.Fatalf("Transit HMAC without the transit policy = %v, want ErrPermission", err)
		}
		// What signerd logs must name the path Vault denied.
		var re *secrets.RequestError
		if !errors.As(err, &re) || re.Path != "transit/hmac/a1Transit.dev_2d0001/sha2-256" || strings.Contains(err.Error(), "transit/keys") {
			t.Errorf("denial %q does not name transit/hmac/a1Transit.dev_2d0001/sha2-256 alone", err)
		}
	})

	t.Run("other mount name", func(t *testing.T) {
		out, err := runApply(t, srv, "TRANSIT=true", "TRANSIT_MOUNT=hmac2", "POLICY=signerd2", "ROLE=signerd2", "APPROLE=true")
		if err != nil {
			t.Fatalf("apply.sh: %v\n%s", err, out)
		}
		got, err := srv.Client.Sys().GetPolicyWithContext(ctx, "signerd2-transit")
		if err != nil || !strings.Contains(got, `path "hmac2/hmac/*"`) || strings.Contains(got, `"transit/`) {
			t.Errorf("policy signerd2-transit (%v):\n%s", err, got)
		}
		if _, policies := appRoleClient(t, srv, "signerd2"); !slices.Contains(policies, "signerd2-transit") {
			t.Errorf("role signerd2's token has policies %v, want signerd2-transit among them", policies)
		}
	})

	t.Run("refuses a mount of another engine", func(t *testing.T) {
		out, err := runApply(t, srv, "TRANSIT=true", "TRANSIT_MOUNT=iot")
		if err == nil || !strings.Contains(out, "iot/ is mounted as kv, not transit") {
			t.Errorf("apply.sh with TRANSIT_MOUNT=iot: %v\n%s", err, out)
		}
	})
}
