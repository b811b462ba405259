package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/metrics"
	"github.com/signerd/signerd/secrets"
)

// vaultStore logs in to Vault and puts the cache in front of it. It fails
// fast, naming the setting, when Vault cannot be reached or refuses the
// credentials.
func vaultStore(ctx context.Context, cfg config, newAuth func() (vault.AuthMethod, error), log *slog.Logger, m *metrics.Metrics) (*secrets.Vault, *secrets.Cache, error) {
	f := cfg.vault
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address:      f.Addr,
		Namespace:    f.Namespace,
		NewAuth:      newAuth,
		TokenFile:    f.TokenFile,
		Mount:        f.kvMount,
		PathTemplate: f.kvPath,
		Field:        f.kvField,
		Timeout:      f.timeout,
		Logger:       log,
		HTTPClient:   &http.Client{Transport: m.VaultTransport(vaultTransport())},
		OnRenew:      m.TokenRenewed,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vault (-vault-addr, -vault-auth=%s): %w", f.Auth, err)
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
	log.Info("vault store ready", "mount", f.kvMount, "path", f.kvPath, "auth", f.Auth,
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
