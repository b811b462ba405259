package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
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
	// CacheSize bounds the number of verified tokens remembered; 0 means
	// DefaultJWTCacheSize, a negative value disables the cache.
	CacheSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultJWTCacheSize is the number of verified bearer tokens a verifier
// remembers: a backend reuses one token for its lifetime, so this is far
// more distinct callers than a deployment has.
const DefaultJWTCacheSize = 10_000

// JWTVerifier validates backend bearer tokens.
type JWTVerifier struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
	now    func() time.Time
	// verified remembers tokens that passed, by SHA-256 of the token (the
	// token itself, a credential, is never kept).
	verified *lru.Cache[[sha256.Size]byte, verifiedToken]
}

// verifiedToken is a successful verification: who, until when, and the key
// it was verified with, re-read from the JWKS on every use.
type verifiedToken struct {
	id       Identity
	exp      time.Time
	kid, alg string
	key      crypto.PublicKey
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
	if cfg.Now == nil {
		cfg.Now = time.Now
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
	v := &JWTVerifier{
		keys: kf,
		now:  cfg.Now,
		parser: jwt.NewParser(
			// Asymmetric algorithms only: this rejects "none" and the
			// HS256-signed-with-the-public-key confusion.
			jwt.WithValidMethods([]string{"RS256", "ES256"}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
		),
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultJWTCacheSize
	}
	if cfg.CacheSize > 0 {
		if v.verified, err = lru.New[[sha256.Size]byte, verifiedToken](cfg.CacheSize); err != nil {
			return nil, fmt.Errorf("jwt: cache: %w", err)
		}
	}
	return v, nil
}

// Verify checks a bearer token and returns the backend identity named by its
// subject. Errors never contain the token.
//
// An RSA verification is most of a warm REST call's CPU, and a backend
// sends the same token for its whole lifetime, so a successful verification
// is remembered until the token's exp (without the leeway: past exp the
// token is verified afresh, leeway and all). Each reuse first asks the JWKS,
// as it is now, for the token's key: a key removed from the JWKS, or
// replaced under the same kid, ends every remembered token it verified at
// once.
func (v *JWTVerifier) Verify(token string) (Identity, error) {
	var key [sha256.Size]byte
	if v.verified != nil {
		key = sha256.Sum256([]byte(token))
		if c, ok := v.verified.Get(key); ok {
			if v.now().Before(c.exp) && v.stillCurrent(c) {
				return c.id, nil
			}
			v.verified.Remove(key)
		}
	}
	var claims jwt.RegisteredClaims
	var used crypto.PublicKey
	tok, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		k, err := v.keys.Keyfunc(t)
		if pk, ok := k.(crypto.PublicKey); ok && err == nil {
			used = pk
		}
		return k, err
	})
	if err != nil {
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
	id := Identity{Kind: KindBackend, Name: claims.Subject, Method: "jwt"}
	kid, _ := tok.Header["kid"].(string)
	alg, _ := tok.Header["alg"].(string)
	// Only a token verified with one key named by its kid is remembered: a
	// token without a kid is checked against every key of the set, and
	// which one matched is not known here.
	if _, comparable := used.(interface{ Equal(crypto.PublicKey) bool }); v.verified != nil && kid != "" && comparable && claims.ExpiresAt != nil {
		v.verified.Add(key, verifiedToken{id: id, exp: claims.ExpiresAt.Time, kid: kid, alg: alg, key: used})
	}
	return id, nil
}

// stillCurrent reports whether the JWKS still gives, for the token's kid and
// alg, the key the token was verified with.
func (v *JWTVerifier) stillCurrent(c verifiedToken) bool {
	// The JWKS unchanged holds the very key object the token was verified
	// with (a JWK is never changed in place: a refresh or an edit stores
	// new ones). Anything else is asked again, alg and use included.
	if jwk, err := v.keys.Storage().KeyRead(context.Background(), c.kid); err == nil && sameKeyObject(jwk.Key(), c.key) {
		return true
	}
	k, err := v.keys.Keyfunc(&jwt.Token{Header: map[string]any{"kid": c.kid, "alg": c.alg}})
	if err != nil {
		return false
	}
	cached, ok := c.key.(interface{ Equal(crypto.PublicKey) bool })
	return ok && cached.Equal(k)
}

// sameKeyObject reports whether a and b are the same RSA or EC public key
// object (pointer identity; the only key types RS256 and ES256 verify with).
func sameKeyObject(a, b crypto.PublicKey) bool {
	switch a := a.(type) {
	case *rsa.PublicKey:
		b, ok := b.(*rsa.PublicKey)
		return ok && a == b
	case *ecdsa.PublicKey:
		b, ok := b.(*ecdsa.PublicKey)
		return ok && a == b
	}
	return false
}
