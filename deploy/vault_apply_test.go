package deploy_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/deploy"
	"github.com/signerd/signerd/internal/vaulttest"
)

// runApply runs vault/apply.sh against srv with the root token and extra
// settings, and returns its output.
func runApply(t *testing.T, srv *vaulttest.Server, settings ...string) (string, error) {
	t.Helper()
	bin, err := vaulttest.Bin()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "vault/apply.sh")
	cmd.Env = append(os.Environ(),
		"VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken, "VAULT_CLI="+bin,
		"HOME="+t.TempDir(), // no ~/.vault-token of the developer's
	)
	for _, k := range []string{"VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_FORMAT"} {
		cmd.Env = append(cmd.Env, k+"=") // a developer's Vault settings must not leak in
	}
	cmd.Env = append(cmd.Env, settings...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestVaultApply applies deploy/vault to a bare real Vault server twice (it
// must be idempotent) and checks what signerd's policy allows.
func TestVaultApply(t *testing.T) {
	srv := vaulttest.StartBareT(t)
	ctx := context.Background()
	caFile := filepath.Join(t.TempDir(), "k8s-ca.crt")
	writeCA(t, caFile)

	settings := []string{"APPROLE=true", "K8S_HOST=https://kubernetes.default.svc:443", "K8S_CA_CERT=" + caFile}
	for run := 1; run <= 2; run++ {
		out, err := runApply(t, srv, settings...)
		if err != nil {
			t.Fatalf("apply.sh run %d: %v\n%s", run, err, out)
		}
		t.Logf("apply.sh run %d:\n%s", run, out)
		if run == 2 && !strings.Contains(out, "KV v2 at iot/ already enabled") {
			t.Errorf("second run did not find the KV mount:\n%s", out)
		}
	}

	t.Run("mounts", func(t *testing.T) {
		mounts, err := srv.Client.Sys().ListMountsWithContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m := mounts["iot/"]; m == nil || m.Type != "kv" || m.Options["version"] != "2" {
			t.Errorf("iot/ is %+v, want KV v2", m)
		}
		auths, err := srv.Client.Sys().ListAuthWithContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for path, typ := range map[string]string{"kubernetes/": "kubernetes", "approle/": "approle"} {
			if a := auths[path]; a == nil || a.Type != typ {
				t.Errorf("auth %s is %+v, want %s", path, a, typ)
			}
		}
	})

	t.Run("policy is policy.hcl", func(t *testing.T) {
		got, err := srv.Client.Sys().GetPolicyWithContext(ctx, "signerd")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) != strings.TrimSpace(deploy.VaultPolicy) || deploy.VaultPolicy != vaulttest.Policy {
			t.Errorf("policy signerd in Vault:\n%s\nwant vault/policy.hcl:\n%s", got, deploy.VaultPolicy)
		}
	})

	t.Run("kubernetes role", func(t *testing.T) {
		r, err := srv.Client.Logical().ReadWithContext(ctx, "auth/kubernetes/role/signerd")
		if err != nil || r == nil {
			t.Fatalf("read role: %v", err)
		}
		for field, want := range map[string][]string{
			"bound_service_account_names":      {"signerd"},
			"bound_service_account_namespaces": {"signerd"},
			"token_policies":                   {"signerd"},
		} {
			if got := strs(r.Data[field]); !slices.Equal(got, want) {
				t.Errorf("%s = %v, want %v", field, got, want)
			}
		}
		if r.Data["audience"] != "vault" {
			t.Errorf("audience = %v, want vault (the projected token's in deploy/k8s)", r.Data["audience"])
		}
		cfg, err := srv.Client.Logical().ReadWithContext(ctx, "auth/kubernetes/config")
		if err != nil || cfg == nil || cfg.Data["kubernetes_host"] != "https://kubernetes.default.svc:443" {
			t.Errorf("kubernetes auth config: %v %v", cfg, err)
		}
	})

	// signerd's token, from the AppRole role apply.sh made: a real login, so
	// the role's policies are what is tested.
	roleID, err := srv.Client.Logical().ReadWithContext(ctx, "auth/approle/role/signerd/role-id")
	if err != nil {
		t.Fatal(err)
	}
	secretID, err := srv.Client.Logical().WriteWithContext(ctx, "auth/approle/role/signerd/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	login, err := srv.Client.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": roleID.Data["role_id"], "secret_id": secretID.Data["secret_id"],
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(login.Auth.Policies, "signerd") {
		t.Fatalf("AppRole login has policies %v, want signerd", login.Auth.Policies)
	}
	signerd, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	signerd.SetToken(login.Auth.ClientToken)

	// Fixtures, written with the root token.
	kv := srv.Client.KVv2("iot")
	for p, v := range map[string]string{"devices/x/y": "device-secret", "other": "not-signerds"} {
		if _, err := kv.Put(ctx, p, map[string]any{"deviceSecret": v}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("read device secret allowed", func(t *testing.T) {
		s, err := signerd.Logical().ReadWithContext(ctx, "iot/data/devices/x/y")
		if err != nil || s == nil {
			t.Fatalf("read iot/data/devices/x/y: %v", err)
		}
		data, _ := s.Data["data"].(map[string]any)
		if data["deviceSecret"] != "device-secret" {
			t.Errorf("read iot/data/devices/x/y: %v", s.Data)
		}
	})

	// The PreVerify tokens the replicas share: created, read and replaced
	// with check-and-set, as secrets.VaultTokens does.
	t.Run("preverify tokens: create, read, replace", func(t *testing.T) {
		kv := signerd.KVv2("iot")
		path := "preverify-tokens/x/y"
		s, err := kv.Put(ctx, path, map[string]any{"tokens": map[string]any{}}, vault.WithCheckAndSet(0))
		if err != nil {
			t.Fatalf("create %s: %v", path, err)
		}
		if _, err := kv.Put(ctx, path, map[string]any{"tokens": map[string]any{}}, vault.WithCheckAndSet(s.VersionMetadata.Version)); err != nil {
			t.Fatalf("replace %s: %v", path, err)
		}
		if got, err := kv.Get(ctx, path); err != nil || got.VersionMetadata.Version != 2 {
			t.Fatalf("read %s: %v %v", path, got, err)
		}
	})

	denied := []struct {
		name string
		do   func() error
	}{
		{"delete a token record", func() error {
			_, err := signerd.Logical().DeleteWithContext(ctx, "iot/data/preverify-tokens/x/y")
			return err
		}},
		{"list token records", func() error {
			_, err := signerd.Logical().ListWithContext(ctx, "iot/metadata/preverify-tokens")
			return err
		}},
		{"read token metadata", func() error {
			_, err := signerd.Logical().ReadWithContext(ctx, "iot/metadata/preverify-tokens/x/y")
			return err
		}},
		{"destroy token versions", func() error {
			_, err := signerd.Logical().WriteWithContext(ctx, "iot/destroy/preverify-tokens/x/y", map[string]any{"versions": []int{1}})
			return err
		}},
		{"write beside the token records", func() error {
			_, err := signerd.Logical().WriteWithContext(ctx, "iot/data/preverify-tokens-x", map[string]any{"data": map[string]any{"a": "b"}})
			return err
		}},
		{"write the device secret", func() error {
			_, err := signerd.Logical().WriteWithContext(ctx, "iot/data/devices/x/y", map[string]any{"data": map[string]any{"deviceSecret": "x"}})
			return err
		}},
		{"create another device", func() error {
			_, err := signerd.Logical().WriteWithContext(ctx, "iot/data/devices/x/new", map[string]any{"data": map[string]any{"deviceSecret": "x"}})
			return err
		}},
		{"delete the device secret", func() error {
			_, err := signerd.Logical().DeleteWithContext(ctx, "iot/data/devices/x/y")
			return err
		}},
		{"read outside devices/", func() error {
			_, err := signerd.Logical().ReadWithContext(ctx, "iot/data/other")
			return err
		}},
		{"list devices", func() error {
			_, err := signerd.Logical().ListWithContext(ctx, "iot/metadata/devices")
			return err
		}},
		{"read metadata", func() error {
			_, err := signerd.Logical().ReadWithContext(ctx, "iot/metadata/devices/x/y")
			return err
		}},
		{"destroy versions", func() error {
			_, err := signerd.Logical().WriteWithContext(ctx, "iot/destroy/devices/x/y", map[string]any{"versions": []int{1}})
			return err
		}},
		{"read another mount", func() error {
			_, err := signerd.Logical().ReadWithContext(ctx, "secret/data/anything")
			return err
		}},
		{"manage policies", func() error {
			return signerd.Sys().PutPolicyWithContext(ctx, "signerd", `path "*" { capabilities = ["sudo","read"] }`)
		}},
		{"list mounts", func() error {
			_, err := signerd.Sys().ListMountsWithContext(ctx)
			return err
		}},
	}
	for _, d := range denied {
		t.Run("denied: "+d.name, func(t *testing.T) {
			err := d.do()
			var re *vault.ResponseError
			if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
				t.Errorf("want 403 permission denied, got %v", err)
			}
		})
	}

	t.Run("own token renewal allowed", func(t *testing.T) {
		// signerd renews its token (default policy); the policy must not
		// take that away.
		if _, err := signerd.Auth().Token().RenewSelfWithContext(ctx, 0); err != nil {
			t.Errorf("renew-self: %v", err)
		}
	})

	t.Run("refuses a KV v1 mount", func(t *testing.T) {
		if err := srv.Client.Sys().MountWithContext(ctx, "kv1", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
			t.Fatal(err)
		}
		out, err := runApply(t, srv, "KV_MOUNT=kv1")
		if err == nil || !strings.Contains(out, "KV version 1") {
			t.Errorf("apply.sh with KV_MOUNT=kv1: %v\n%s", err, out)
		}
	})

	t.Run("other mount name", func(t *testing.T) {
		out, err := runApply(t, srv, "KV_MOUNT=devices2", "POLICY=signerd2", "ROLE=signerd2")
		if err != nil {
			t.Fatalf("apply.sh: %v\n%s", err, out)
		}
		got, err := srv.Client.Sys().GetPolicyWithContext(ctx, "signerd2")
		if err != nil || !strings.Contains(got, `path "devices2/data/devices/*"`) || strings.Contains(got, `"iot/`) {
			t.Errorf("policy signerd2 (%v):\n%s", err, got)
		}
	})

	t.Run("other token prefix", func(t *testing.T) {
		out, err := runApply(t, srv, "TOKEN_PREFIX=pv-tokens", "POLICY=signerd3", "ROLE=signerd3")
		if err != nil {
			t.Fatalf("apply.sh: %v\n%s", err, out)
		}
		got, err := srv.Client.Sys().GetPolicyWithContext(ctx, "signerd3")
		if err != nil || !strings.Contains(got, `path "iot/data/pv-tokens/*"`) || strings.Contains(got, "preverify-tokens/*") {
			t.Errorf("policy signerd3 (%v):\n%s", err, got)
		}
		for _, bad := range []string{"TOKEN_PREFIX=devices", "TOKEN_PREFIX=a/b", "TOKEN_PREFIX=../x"} {
			if out, err := runApply(t, srv, bad, "POLICY=signerd4"); err == nil {
				t.Errorf("apply.sh %s succeeded:\n%s", bad, out)
			}
		}
	})
}

func strs(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			s, _ := e.(string)
			out = append(out, s)
		}
	}
	return out
}

// writeCA writes a throwaway CA certificate, standing in for the API
// server's CA bundle (Vault only stores it: no cluster is contacted).
func writeCA(t *testing.T, file string) {
	t.Helper()
	cert, _ := selfSigned(t, "test kubernetes CA", "")
	if err := os.WriteFile(file, cert, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTokenRecordsOnlyInSignerdPolicy: the shared PreVerify tokens are
// credentials; of the shipped policies only signerd's own may reach them,
// and no rule elsewhere covers them by a wider glob.
func TestTokenRecordsOnlyInSignerdPolicy(t *testing.T) {
	files, err := filepath.Glob("vault/*.hcl")
	if err != nil || len(files) < 2 {
		t.Fatalf("vault/*.hcl: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "path ") {
				continue
			}
			p := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(line, "path "), "{"), ` "`)
			covers := p == "iot/data/preverify-tokens/*" || strings.HasSuffix(p, "*") && strings.HasPrefix("iot/data/preverify-tokens/x", strings.TrimSuffix(p, "*"))
			if covers && filepath.Base(f) != "policy.hcl" {
				t.Errorf("%s: %q reaches the PreVerify token records; only policy.hcl may", f, p)
			}
			if covers && p != "iot/data/preverify-tokens/*" {
				t.Errorf("%s: %q reaches the token records by a wider rule", f, p)
			}
		}
	}
}
