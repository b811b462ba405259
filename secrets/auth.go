package secrets

import (
	"fmt"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
)

// AuthConfig names a Vault auth method and where its credentials are.
type AuthConfig struct {
	// Method is "token" (or ""), "approle" or "kubernetes".
	Method string
	// AppRole: role id, file holding the secret id, auth mount path.
	AppRoleRoleID, AppRoleSecretIDFile, AppRoleMount string
	// Kubernetes: Vault role, service-account token file, auth mount path.
	KubernetesRole, KubernetesTokenFile, KubernetesMount string
}

// Builder returns the VaultConfig.NewAuth for c: nil for token auth, else a
// function that builds the method anew for every login, so that rotated
// credentials are picked up (the Kubernetes helper reads its token file
// when built; Kubernetes rotates projected tokens). It builds the method
// once now, so a bad setting fails at start-up.
func (c AuthConfig) Builder() (func() (vault.AuthMethod, error), error) {
	var build func() (vault.AuthMethod, error)
	switch c.Method {
	case "", "token":
		return nil, nil
	case "approle":
		build = func() (vault.AuthMethod, error) {
			return approle.NewAppRoleAuth(c.AppRoleRoleID,
				&approle.SecretID{FromFile: c.AppRoleSecretIDFile}, approle.WithMountPath(c.AppRoleMount))
		}
	case "kubernetes":
		build = func() (vault.AuthMethod, error) {
			return kubernetes.NewKubernetesAuth(c.KubernetesRole,
				kubernetes.WithServiceAccountTokenPath(c.KubernetesTokenFile), kubernetes.WithMountPath(c.KubernetesMount))
		}
	default:
		return nil, fmt.Errorf("vault auth method %q: want token, approle or kubernetes", c.Method)
	}
	if _, err := build(); err != nil {
		return nil, fmt.Errorf("vault auth method %s: %w", c.Method, err)
	}
	return build, nil
}
