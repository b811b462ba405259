package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures bearer-token authentication of backends.
type JWTConfig struct {
	// JWKSFile or JWKSURL supplies the issuer's public keys (one of them).
	// A URL is refreshed in the background.
	JWKSFile, JWKSURL string
	// Issuer and Audience must match the token's iss and aud.
	Issuer, Audience string
	// Leeway tolerates clock skew on exp/nbf/iat; default 30 s.
	Leeway time.Duration
}

// JWTVerifier validates backend bearer tokens.
type JWTVerifier struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// NewJWTVerifier loads the keys. ctx bounds the background refresh of a
// JWKS URL.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if (cfg.JWKSFile == "") == (cfg.JWKSURL == "") {
		return nil, errors.New("jwt: set exactly one of the JWKS file and the JWKS URL")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwt: issuer and audience are required")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	var kf keyfunc.Keyfunc
	var err error
	if cfg.JWKSFile != "" {
		raw, rerr := os.ReadFile(cfg.JWKSFile)
		if rerr != nil {
			return nil, fmt.Errorf("jwt: JWKS file: %w", rerr)
		}
		kf, err = keyfunc.NewJWKSetJSON(raw)
	} else {
		kf, err = keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKSURL})
	}
	if err != nil {
		return nil, fmt.Errorf("jwt: JWKS: %w", err)
	}
	return &JWTVerifier{
		keys: kf,
		parser: jwt.NewParser(
			// Asymmetric algorithms only: this rejects "none" and the
			// HS256-signed-with-the-public-key confusion.
			jwt.WithValidMethods([]string{"RS256", "ES256"}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
		),
	}, nil
}

// Verify checks a bearer token and returns the backend identity named by its
// subject. Errors never contain the token.
func (v *JWTVerifier) Verify(token string) (Identity, error) {
	var claims jwt.RegisteredClaims
	if _, err := v.parser.ParseWithClaims(token, &claims, v.keys.Keyfunc); err != nil {
		return Identity{}, fmt.Errorf("invalid bearer token: %w", err)
	}
	if claims.Subject == "" {
		return Identity{}, errors.New("invalid bearer token: no subject")
	}
	// The subject is matched byte for byte against the policy: refuse one
	// that decoding may have altered or that could pass for another name.
	if err := ValidateBackendName(claims.Subject); err != nil {
		return Identity{}, fmt.Errorf("invalid bearer token: subject %w", err)
	}
	return Identity{Kind: KindBackend, Name: claims.Subject, Method: "jwt"}, nil
}
