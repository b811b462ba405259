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

// vaultIdleConns is how many connections to Vault stay open: concurrent
// cache misses each need one.
const vaultIdleConns = 64

// vaultStore logs in to Vault and puts the cache in front of it. It fails
// fast, naming the setting, when Vault cannot be reached or refuses the
// credentials.
func vaultStore(ctx context.Context, cfg config, newAuth func() (vault.AuthMethod, error), locations map[string]secrets.Location, log *slog.Logger, m *metrics.Metrics) (*secrets.Vault, *secrets.Cache, error) {
	f := cfg.vault
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address:      f.Addr,
		Namespace:    f.Namespace,
		NewAuth:      newAuth,
		TokenFile:    f.TokenFile,
		Mount:        f.KVMount,
		PathTemplate: f.KVPath,
		Field:        f.KVField,
		Locations:    locations,
		Timeout:      f.timeout,
		Logger:       log,
		HTTPClient:   &http.Client{Transport: m.VaultTransport(secrets.VaultTransport(vaultIdleConns))},
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
	m.VaultTokenRefused(v.TokenRefused)
	log.Info("vault store ready", "mount", f.KVMount, "path", f.KVPath, "auth", f.Auth,
		"cache_size", cfg.cache.size, "cache_ttl", cfg.cache.ttl.String())
	return v, c, nil
}
