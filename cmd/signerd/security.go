package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/tlsreload"
)

// security builds TLS, authentication, authorization, limits and audit into
// cfg. The returned closer closes the audit sink.
func security(ctx context.Context, c config, as *assets, log *slog.Logger, cfg *server.Config) (io.Closer, error) {
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

	policy := as.policy

	a := auth.Authenticator{
		Certs:          auth.CertConfig{DeviceURIScheme: s.deviceURIScheme, DeviceCNSeparator: s.deviceCNSep},
		AllowAnonymous: c.dev,
	}
	if c.dev {
		cfg.Authenticator = auth.NewAuthenticator(a)
		return closer, nil
	}
	if kp := as.keyPair; kp != nil {
		kp.OnError = func(err error) { log.Error("TLS key pair reload failed; keeping the previous one", "error", err) }
		cfg.TLS = tlsreload.ServerConfig(kp)
	} else {
		log.Warn("-insecure: serving plaintext; only safe behind a TLS-terminating proxy you trust")
	}
	if ca := as.clientCAs; ca != nil {
		ca.OnError = func(err error) { log.Error("client CA reload failed; keeping the previous bundle", "error", err) }
		a.ClientCAs = ca.Pool
	}
	a.JWT = as.jwksFile
	if s.jwksURL != "" {
		v, err := auth.NewJWTVerifier(ctx, auth.JWTConfig{JWKSURL: s.jwksURL, Issuer: s.jwtIssuer, Audience: s.jwtAudience})
		if err != nil {
			return nil, fmt.Errorf("-jwks-url: %w", err)
		}
		a.JWT = v
	}
	cfg.Authenticator = auth.NewAuthenticator(a)
	log.Info("caller authentication", "mtls", s.clientCA != "", "jwt", a.JWT != nil,
		"backends_in_policy", len(policy.Backends), "tls", cfg.TLS != nil)
	return closer, nil
}
