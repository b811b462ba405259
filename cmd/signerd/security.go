package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/tlsreload"
)

// security builds TLS, authentication, authorization, limits and audit into
// cfg. The returned closer closes the audit sink.
func security(ctx context.Context, c config, log *slog.Logger, cfg *server.Config) (io.Closer, error) {
	s := c.sec
	sink, closer, err := audit.Open(s.auditLog)
	if err != nil {
		return nil, fmt.Errorf("-audit-log: %w", err)
	}
	cfg.Audit = sink
	cfg.RateLimit = limits.NewPerCaller(s.rate, s.burst, 0)
	cfg.BackendRateLimit = limits.NewPerCaller(s.backendRate, s.backendBurst, 0)
	cfg.PreVerifyLimit = limits.NewPerCaller(s.preVerifyRate, s.preVerifyBurst, 0)
	cfg.InFlight = limits.NewInFlight(s.maxInFlight)

	policy, err := auth.NewPolicy()
	if err != nil {
		return nil, err
	}
	if s.policyFile != "" {
		data, err := os.ReadFile(s.policyFile)
		if err != nil {
			return nil, fmt.Errorf("-policy-file: %w", err)
		}
		if policy, err = auth.ParsePolicy(data); err != nil {
			return nil, fmt.Errorf("-policy-file %s: %w", s.policyFile, err)
		}
	}
	cfg.Policy = policy

	a := auth.Authenticator{
		Certs:          auth.CertConfig{DeviceURIScheme: s.deviceURIScheme, DeviceCNSeparator: s.deviceCNSep},
		AllowAnonymous: c.dev,
	}
	if c.dev {
		cfg.Authenticator = auth.NewAuthenticator(a)
		return closer, nil
	}
	if s.tlsCert != "" {
		kp, err := tlsreload.NewKeyPair(s.tlsCert, s.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert-file/-tls-key-file: %w", err)
		}
		kp.OnError = func(err error) { log.Error("TLS key pair reload failed; keeping the previous one", "error", err) }
		cfg.TLS = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: kp.GetCertificate,
			// Requested, not verified here: the authenticator verifies the
			// chain per call against the current CA bundle, so a bad
			// certificate gets UNAUTHENTICATED, not a broken handshake.
			ClientAuth: tls.RequestClientCert,
		}
	} else {
		log.Warn("-insecure: serving plaintext; only safe behind a TLS-terminating proxy you trust")
	}
	if s.clientCA != "" {
		ca, err := tlsreload.NewCAPool(s.clientCA)
		if err != nil {
			return nil, fmt.Errorf("-client-ca-file: %w", err)
		}
		ca.OnError = func(err error) { log.Error("client CA reload failed; keeping the previous bundle", "error", err) }
		a.ClientCAs = ca.Pool
	}
	if s.jwksFile != "" || s.jwksURL != "" {
		v, err := auth.NewJWTVerifier(ctx, auth.JWTConfig{
			JWKSFile: s.jwksFile, JWKSURL: s.jwksURL, Issuer: s.jwtIssuer, Audience: s.jwtAudience,
		})
		if err != nil {
			return nil, fmt.Errorf("-jwks-file/-jwks-url: %w", err)
		}
		a.JWT = v
	}
	cfg.Authenticator = auth.NewAuthenticator(a)
	log.Info("caller authentication", "mtls", s.clientCA != "", "jwt", a.JWT != nil,
		"backends_in_policy", len(policy.Backends), "tls", cfg.TLS != nil)
	return closer, nil
}
