package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthConfigBuilder(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("a.b.c"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     AuthConfig
		wantNil bool
		wantErr string
	}{
		{name: "token", cfg: AuthConfig{Method: "token"}, wantNil: true},
		{name: "default is token", cfg: AuthConfig{}, wantNil: true},
		{name: "approle", cfg: AuthConfig{Method: "approle", AppRoleRoleID: "r", AppRoleSecretIDFile: "/nonexistent", AppRoleMount: "approle"}},
		{name: "approle without role id", cfg: AuthConfig{Method: "approle", AppRoleSecretIDFile: "/x"}, wantErr: "approle"},
		{name: "kubernetes", cfg: AuthConfig{Method: "kubernetes", KubernetesRole: "signerd", KubernetesTokenFile: tokenFile, KubernetesMount: "kubernetes"}},
		{name: "kubernetes token file missing", cfg: AuthConfig{Method: "kubernetes", KubernetesRole: "signerd", KubernetesTokenFile: "/nonexistent"}, wantErr: "service account token"},
		{name: "kubernetes without role", cfg: AuthConfig{Method: "kubernetes", KubernetesTokenFile: "/x"}, wantErr: "kubernetes"},
		{name: "unknown", cfg: AuthConfig{Method: "userpass"}, wantErr: `"userpass"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.cfg.Builder()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Builder() error = %v, want one mentioning %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (b == nil) != tt.wantNil {
				t.Fatalf("Builder() = %v, want nil: %v", b != nil, tt.wantNil)
			}
			if b != nil {
				if m, err := b(); err != nil || m == nil {
					t.Errorf("builder() = %v, %v", m, err)
				}
			}
		})
	}
}
