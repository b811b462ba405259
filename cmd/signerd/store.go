package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/signerd/signerd/metrics"
	"github.com/signerd/signerd/secrets"
)

// vaultStore logs in to Vault and puts the cache in front of it. It fails
// fast, naming the setting, when Vault cannot be reached or refuses the
// credentials.
func vaultStore(ctx context.Context, cfg config, log *slog.Logger, m *metrics.Metrics) (*secrets.Vault, *secrets.Cache, error) {
	f := cfg.vault
	var newAuth func() (vault.AuthMethod, error)
	switch f.auth {
	case "approle":
		// AppRole reads the secret id file at every login.
		newAuth = func() (vault.AuthMethod, error) {
			return approle.NewAppRoleAuth(f.approleRoleID,
				&approle.SecretID{FromFile: f.approleSecretIDFile}, approle.WithMountPath(f.approleMount))
		}
	case "kubernetes":
		// Built anew per login: the helper reads the token file when built,
		// and Kubernetes rotates projected service-account tokens.
		newAuth = func() (vault.AuthMethod, error) {
			return kubernetes.NewKubernetesAuth(f.k8sRole,
				kubernetes.WithServiceAccountTokenPath(f.k8sTokenFile), kubernetes.WithMountPath(f.k8sMount))
		}
	}
	if newAuth != nil {
		if _, err := newAuth(); err != nil {
			return nil, nil, fmt.Errorf("-vault-auth=%s: %w", f.auth, err)
		}
	}
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address:      f.addr,
		Namespace:    f.namespace,
		NewAuth:      newAuth,
		TokenFile:    f.tokenFile,
		Mount:        f.kvMount,
		PathTemplate: f.kvPath,
		Field:        f.kvField,
		Timeout:      f.timeout,
		Logger:       log,
		HTTPClient:   &http.Client{Transport: m.VaultTransport(vaultTransport())},
		OnRenew:      m.TokenRenewed,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vault (-vault-addr, -vault-auth=%s): %w", f.auth, err)
	}
	c, err := secrets.NewCache(v, secrets.CacheConfig{
		Size:         cfg.cache.size,
		TTL:          cfg.cache.ttl,
		NegativeTTL:  cfg.cache.negativeTTL,
		MaxStale:     cfg.cache.maxStale,
		FetchTimeout: f.timeout,
		Observe:      m.CacheObserve,
		OnEvict:      m.CacheEvicted,
	})
	if err != nil {
		v.Close()
		return nil, nil, err
	}
	m.CacheSize(c.Len)
	log.Info("vault store ready", "mount", f.kvMount, "path", f.kvPath, "auth", f.auth,
		"cache_size", cfg.cache.size, "cache_ttl", cfg.cache.ttl.String())
	return v, c, nil
}

// vaultTransport is vault/api's default transport (it reads VAULT_CACERT,
// VAULT_CLIENT_CERT, VAULT_SKIP_VERIFY… into it), so that instrumenting it
// keeps the standard TLS configuration. vault/api keeps few idle
// connections; concurrent cache misses would then each open a new one.
func vaultTransport() http.RoundTripper {
	vc := vault.DefaultConfig()
	if t, ok := vc.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConns = 128
		t.MaxIdleConnsPerHost = 64
	}
	return vc.HttpClient.Transport
}
