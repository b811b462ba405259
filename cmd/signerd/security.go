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
	n := max(s.rateLimitReplicas, 1)
	cfg.RateLimit = limits.NewPerCaller(perReplica(s.rate, s.burst, n))
	cfg.BackendRateLimit = limits.NewPerCaller(perReplica(s.backendRate, s.backendBurst, n))
	cfg.PreVerifyLimit = limits.NewPerCaller(perReplica(s.preVerifyRate, s.preVerifyBurst, n))
	if n > 1 {
		log.Info("per-caller limits divided among the replicas", "replicas", n)
	}
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

// perReplica is the share of one of n replicas in a fleet-wide per-caller
// limit of rate per second with burst: each replica counts only the calls
// it sees, so with a load balancer spreading a caller's calls evenly, n
// shares add up to the configured limit. The burst is rounded up (at least
// 1 is needed to allow anything), so a fleet can allow up to n-1 calls more
// than the burst at once; the rate is exact. A caller whose calls all land
// on one replica (a long-lived gRPC connection) gets 1/n of the limit:
// balance per call (as an L7 balancer or client-side round robin does) for
// the whole limit. The third value is the caller bound of
// limits.NewPerCaller: its default.
func perReplica(rate float64, burst, n int) (float64, int, int) {
	if n <= 1 || rate == 0 {
		return rate, burst, 0
	}
	return rate / float64(n), (burst + n - 1) / n, 0
}
