package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Metadata keys that carry a REST caller's TLS identity from the HTTP server
// to the gRPC chain through the in-process channel. Callers can never
// set them: the gateway drops incoming headers with this prefix, and the
// values are honoured only from the in-process peer together with a
// per-process key.
const (
	internalPrefix = "x-signerd-"
	mdInternalKey  = internalPrefix + "internal-key"
	mdPeerCert     = internalPrefix + "peer-cert"
)

// Authenticator establishes the caller's identity for every call.
type Authenticator struct {
	// Certs reads identities from client certificates.
	Certs CertConfig
	// ClientCAs returns the CA bundle client certificates must chain to;
	// nil disables certificate authentication.
	ClientCAs func() *x509.CertPool
	// JWT verifies bearer tokens; nil disables bearer authentication.
	JWT *JWTVerifier
	// AllowAnonymous admits callers with no credentials (-dev only).
	AllowAnonymous bool
	// Now is the clock for certificate validity; default time.Now.
	Now func() time.Time

	key      string
	verified *lru.Cache[[sha256.Size]byte, verifiedChain]
}

// NewAuthenticator returns an Authenticator with a fresh in-process key.
func NewAuthenticator(a Authenticator) *Authenticator {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	a.key = hex.EncodeToString(b)
	a.verified, _ = lru.New[[sha256.Size]byte, verifiedChain](10_000)
	if a.Now == nil {
		a.Now = time.Now
	}
	return &a
}

// GatewayNetwork is the network of the peer address of every call the REST
// gateway makes through its in-process channel (set by the server, never by
// a caller: the gRPC listener's peers are "tcp").
const GatewayNetwork = "signerd-gateway"

// Transport names how a call arrived: "rest" through the in-process
// gateway channel, "grpc" otherwise.
func Transport(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil && p.Addr.Network() == GatewayNetwork {
		return "rest"
	}
	return "grpc"
}

// Error is an authentication failure. The caller sees one generic
// UNAUTHENTICATED status whatever the cause; the cause is for the server's
// log and audit record only (it never holds a token).
type Error struct{ Cause error }

func (e *Error) Error() string { return "unauthenticated: " + e.Cause.Error() }
func (e *Error) Unwrap() error { return e.Cause }

// GRPCStatus is what the caller sees.
func (e *Error) GRPCStatus() *status.Status {
	return status.New(codes.Unauthenticated, "authentication required: a valid client certificate or bearer token")
}

// Authenticate is a go-grpc-middleware auth.AuthFunc: it returns ctx with
// the caller's Identity, or an *Error (UNAUTHENTICATED).
func (a *Authenticator) Authenticate(ctx context.Context) (context.Context, error) {
	id, err := a.identify(ctx)
	if err != nil {
		return ctx, &Error{Cause: err}
	}
	return WithIdentity(ctx, id), nil
}

func (a *Authenticator) identify(ctx context.Context) (Identity, error) {
	// ValueFromIncomingContext, not FromIncomingContext: the latter copies
	// all of the call's metadata, on every call.
	md := func(key string) []string { return metadata.ValueFromIncomingContext(ctx, key) }
	// The presented chain: parsed certificates (gRPC: the TLS handshake
	// parsed them) or, forwarded by the gateway, their DER, parsed only
	// when the chain is not among the verified ones.
	var chain []*x509.Certificate
	var ders [][]byte
	if Transport(ctx) == "rest" {
		keys := md(mdInternalKey)
		if len(keys) != 1 || subtle.ConstantTimeCompare([]byte(keys[0]), []byte(a.key)) != 1 {
			return Identity{}, errors.New("in-process call without the gateway's key")
		}
		for _, v := range md(mdPeerCert) {
			der, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(der) == 0 {
				return Identity{}, errors.New("malformed forwarded certificate")
			}
			ders = append(ders, der)
		}
	} else if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			chain = ti.State.PeerCertificates
			for _, c := range chain {
				ders = append(ders, c.Raw)
			}
		}
	}

	var bearer string
	if vals := md("authorization"); len(vals) > 0 {
		if len(vals) > 1 {
			return Identity{}, errors.New("more than one authorization header")
		}
		scheme, tok, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
			return Identity{}, errors.New("authorization header is not a bearer token")
		}
		bearer = tok
	}

	var certID *Identity
	if len(ders) > 0 {
		id, err := a.verifyChain(ders, chain)
		if err != nil {
			return Identity{}, err
		}
		certID = &id
	}
	if bearer != "" {
		if a.JWT == nil {
			return Identity{}, errors.New("bearer tokens are not accepted: no JWKS configured")
		}
		id, err := a.JWT.Verify(bearer)
		if err != nil {
			return Identity{}, err
		}
		// A device certificate plus a backend token would be two callers
		// in one: refuse rather than pick one.
		if certID != nil && certID.Kind == KindDevice {
			return Identity{}, errors.New("a device certificate cannot carry a bearer token")
		}
		return id, nil
	}
	if certID != nil {
		return *certID, nil
	}
	if a.AllowAnonymous {
		return Identity{Kind: KindAnonymous, Method: "none"}, nil
	}
	return Identity{}, errors.New("no client certificate or bearer token")
}

// verifyChain verifies the chain whose certificates' DER is ders; chain is
// them parsed, or nil to parse them here if the chain is not remembered.
func (a *Authenticator) verifyChain(ders [][]byte, chain []*x509.Certificate) (Identity, error) {
	if a.ClientCAs == nil {
		return Identity{}, errors.New("client certificates are not accepted: no client CA configured")
	}
	roots := a.ClientCAs()
	now := a.Now()
	key := chainKey(ders)
	// Chain verification is half of a warm call's CPU; its result holds for
	// the same chain against the same CA bundle while every certificate in
	// the verified chain is within its validity. A CA reload yields a new
	// pool, so revocation by removal takes effect at once.
	if a.verified == nil { // built without NewAuthenticator: no cache
		a.verified, _ = lru.New[[sha256.Size]byte, verifiedChain](1)
	}
	if v, ok := a.verified.Get(key); ok && v.roots == roots && !now.Before(v.notBefore) && now.Before(v.notAfter) {
		return v.id, nil
	}
	if chain == nil {
		for _, der := range ders {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return Identity{}, errors.New("malformed forwarded certificate")
			}
			chain = append(chain, c)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Identity{}, err
	}
	id, err := a.Certs.IdentityFromCert(chain[0])
	if err != nil {
		return Identity{}, err
	}
	v := verifiedChain{roots: roots, id: id, notAfter: chain[0].NotAfter, notBefore: chain[0].NotBefore}
	for _, c := range chains[0] {
		if c.NotBefore.After(v.notBefore) {
			v.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(v.notAfter) {
			v.notAfter = c.NotAfter
		}
	}
	a.verified.Add(key, v)
	return id, nil
}

// verifiedChain is a successful verification and the window it holds in.
type verifiedChain struct {
	roots               *x509.CertPool
	id                  Identity
	notBefore, notAfter time.Time
}

// chainKey identifies a presented chain by its exact bytes.
func chainKey(ders [][]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, der := range ders {
		binary.BigEndian.PutUint64(n[:], uint64(len(der)))
		h.Write(n[:])
		h.Write(der)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// GatewayMetadata is for runtime.WithMetadata: it forwards a REST caller's
// TLS client certificate chain (not yet verified: the gRPC side verifies
// it, with the same code as for gRPC callers) and the in-process key.
func (a *Authenticator) GatewayMetadata(_ context.Context, r *http.Request) metadata.MD {
	md := metadata.Pairs(mdInternalKey, a.key)
	if r.TLS != nil {
		for _, c := range r.TLS.PeerCertificates {
			md.Append(mdPeerCert, base64.StdEncoding.EncodeToString(c.Raw))
		}
	}
	return md
}

// IsInternalHeader reports whether an incoming HTTP header must be dropped
// by the gateway because it could impersonate the internal metadata.
func IsInternalHeader(key string) bool {
	k := strings.ToLower(key)
	return strings.HasPrefix(k, internalPrefix) || strings.HasPrefix(k, "grpc-metadata-"+internalPrefix)
}
