package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/service"
	"github.com/signerd/signerd/tlsreload"
)

// checkFiles loads every file the configuration names (products, policy,
// TLS material, JWKS) the way start-up would, and reports every problem at
// once. It does not contact Vault or the platform.
func checkFiles(cfg config) error {
	var errs []error
	if cfg.products != "" {
		data, err := os.ReadFile(cfg.products)
		if err == nil {
			_, err = service.ParseProducts(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("-products %s: %w", cfg.products, err))
		}
	}
	s := cfg.sec
	if s.policyFile != "" {
		data, err := os.ReadFile(s.policyFile)
		if err == nil {
			_, err = auth.ParsePolicy(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("-policy-file %s: %w", s.policyFile, err))
		}
	}
	if !cfg.dev && s.tlsCert != "" {
		if _, err := tlsreload.NewKeyPair(s.tlsCert, s.tlsKey); err != nil {
			errs = append(errs, fmt.Errorf("-tls-cert-file/-tls-key-file: %w", err))
		}
	}
	if !cfg.dev && s.clientCA != "" {
		if _, err := tlsreload.NewCAPool(s.clientCA); err != nil {
			errs = append(errs, fmt.Errorf("-client-ca-file: %w", err))
		}
	}
	if !cfg.dev && s.jwksFile != "" {
		if _, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{
			JWKSFile: s.jwksFile, Issuer: s.jwtIssuer, Audience: s.jwtAudience,
		}); err != nil {
			errs = append(errs, fmt.Errorf("-jwks-file: %w", err))
		}
	}
	if cfg.devSecrets != "" {
		if _, err := devStore(cfg.devSecrets, nopLogger()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
