package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/pkitest"
)

// inprocAddr is the address of a peer on the gateway's in-process
// channel.
type inprocAddr struct{}

func (inprocAddr) Network() string { return auth.GatewayNetwork }
func (inprocAddr) String() string  { return "127.0.0.1:40001" }

var tcpPeer = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// grpcCtx is a call over gRPC's TCP listener presenting chain (if any) and
// metadata kv.
func grpcCtx(chain []*x509.Certificate, kv ...string) context.Context {
	p := &peer.Peer{Addr: tcpPeer}
	if chain != nil {
		p.AuthInfo = credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: chain}}
	}
	ctx := peer.NewContext(context.Background(), p)
	return metadata.NewIncomingContext(ctx, metadata.Pairs(kv...))
}

// restCtx is a call from the gateway's in-process channel with md.
func restCtx(md metadata.MD) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: inprocAddr{}})
	return metadata.NewIncomingContext(ctx, md)
}

// gatewayMD is what the gateway forwards for an HTTP request with TLS state
// (nil: plaintext) and extra request headers turned metadata.
func gatewayMD(a *auth.Authenticator, state *tls.ConnectionState, kv ...string) metadata.MD {
	r := &http.Request{TLS: state, Header: http.Header{}}
	return metadata.Join(metadata.Pairs(kv...), a.GatewayMetadata(context.Background(), r))
}

func leafChain(c tls.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		out = append(out, x)
	}
	return out
}

func TestAuthenticator(t *testing.T) {
	ca := pkitest.NewCA(t, "client CA")
	otherCA := pkitest.NewCA(t, "other CA")
	keys := newJWTKeys(t)
	a := auth.NewAuthenticator(auth.Authenticator{
		ClientCAs: func() *x509.CertPool { return ca.Pool() },
		JWT:       keys.verifier(t),
	})
	// A second authenticator of another process: its gateway key differs.
	otherProcess := auth.NewAuthenticator(auth.Authenticator{ClientCAs: func() *x509.CertPool { return ca.Pool() }})

	device := leafChain(ca.Device(t, "a1ProdA", "dev:0001@x"))
	victim := leafChain(ca.Device(t, "a1ProdA", "victim-0001"))
	backend := leafChain(ca.Backend(t, "spiffe://td/prov"))
	now := time.Now()
	expired := leafChain(ca.Issue(t, pkitest.Options{URIs: []string{"aliyun-iot://a1ProdA/dev-0001"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}))
	notYet := leafChain(ca.Issue(t, pkitest.Options{URIs: []string{"aliyun-iot://a1ProdA/dev-0001"}, NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)}))
	wrongCA := leafChain(otherCA.Device(t, "a1ProdA", "dev-0001"))
	selfSigned := leafChain(ca.Issue(t, pkitest.Options{URIs: []string{"aliyun-iot://a1ProdA/dev-0001"}, SelfSigned: true}))
	serverCert := leafChain(ca.Issue(t, pkitest.Options{URIs: []string{"aliyun-iot://a1ProdA/dev-0001"}, Server: true}))
	noName := leafChain(ca.Issue(t, pkitest.Options{CommonName: "a1ProdA.dev-0001"}))
	// A self-signed certificate claiming the CA as its issuer in the chain.
	chainToCA := append(leafChain(otherCA.Device(t, "a1ProdA", "dev-0001")), ca.Cert)

	bearer := "Bearer " + keys.rs256(t, claims("spiffe://td/jwt-backend"))
	badBearer := "Bearer " + keys.rs256(t, with(claims("spiffe://td/jwt-backend"), "iss", "https://evil.test"))

	dev := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1ProdA", DeviceName: "dev:0001@x", Method: "mtls"}
	be := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://td/prov", Method: "mtls"}
	jwtBE := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://td/jwt-backend", Method: "jwt"}

	tests := []struct {
		name string
		a    *auth.Authenticator
		ctx  context.Context
		want *auth.Identity // nil: UNAUTHENTICATED
	}{
		{name: "gRPC device cert", ctx: grpcCtx(device), want: &dev},
		{name: "gRPC backend cert", ctx: grpcCtx(backend), want: &be},
		{name: "gRPC bearer", ctx: grpcCtx(nil, "authorization", bearer), want: &jwtBE},
		{name: "gRPC bearer, lower-case scheme", ctx: grpcCtx(nil, "authorization", "bearer "+strings.TrimPrefix(bearer, "Bearer ")), want: &jwtBE},
		{name: "gRPC backend cert and bearer: the token names the caller", ctx: grpcCtx(backend, "authorization", bearer), want: &jwtBE},
		{name: "REST device cert", ctx: restCtx(gatewayMD(a, &tls.ConnectionState{PeerCertificates: device})), want: &dev},
		{name: "REST bearer", ctx: restCtx(gatewayMD(a, &tls.ConnectionState{}, "authorization", bearer)), want: &jwtBE},

		{name: "gRPC no credentials", ctx: grpcCtx(nil)},
		{name: "gRPC no peer at all", ctx: context.Background()},
		{name: "REST no credentials", ctx: restCtx(gatewayMD(a, nil))},
		{name: "REST TLS without a client cert", ctx: restCtx(gatewayMD(a, &tls.ConnectionState{}))},
		{name: "gRPC device cert and bearer", ctx: grpcCtx(device, "authorization", bearer)},
		{name: "REST device cert and bearer", ctx: restCtx(gatewayMD(a, &tls.ConnectionState{PeerCertificates: device}, "authorization", bearer))},
		{name: "gRPC bad bearer", ctx: grpcCtx(nil, "authorization", badBearer)},
		{name: "gRPC backend cert with a bad bearer", ctx: grpcCtx(backend, "authorization", badBearer)},
		{name: "gRPC basic auth", ctx: grpcCtx(nil, "authorization", "Basic YWRtaW46YWRtaW4=")},
		{name: "gRPC empty bearer", ctx: grpcCtx(nil, "authorization", "Bearer ")},
		{name: "gRPC bare token", ctx: grpcCtx(nil, "authorization", strings.TrimPrefix(bearer, "Bearer "))},
		{name: "gRPC two authorization values", ctx: grpcCtx(nil, "authorization", bearer, "authorization", bearer)},
		{name: "gRPC expired cert", ctx: grpcCtx(expired)},
		{name: "gRPC not-yet-valid cert", ctx: grpcCtx(notYet)},
		{name: "gRPC wrong-CA cert", ctx: grpcCtx(wrongCA)},
		{name: "gRPC self-signed cert", ctx: grpcCtx(selfSigned)},
		{name: "gRPC server cert as client cert", ctx: grpcCtx(serverCert)},
		{name: "gRPC cert naming nobody", ctx: grpcCtx(noName)},
		{name: "gRPC wrong-CA cert with the CA in the chain", ctx: grpcCtx(chainToCA)},
		{name: "gRPC wrong-CA cert with a valid bearer", ctx: grpcCtx(wrongCA, "authorization", bearer)},
		{name: "REST wrong-CA cert", ctx: restCtx(gatewayMD(a, &tls.ConnectionState{PeerCertificates: wrongCA}))},
		{name: "REST expired cert", ctx: restCtx(gatewayMD(a, &tls.ConnectionState{PeerCertificates: expired}))},

		// The forwarded-certificate metadata is honoured only from the
		// in-process channel with this process's key.
		{name: "gRPC forging forwarded-cert metadata", ctx: grpcCtx(nil, "x-signerd-peer-cert", b64(device[0]))},
		{name: "gRPC forging forwarded-cert metadata with another's key", ctx: grpcCtx(nil,
			"x-signerd-internal-key", keyOf(t, otherProcess), "x-signerd-peer-cert", b64(device[0]))},
		{name: "gRPC device forging another device's forwarded cert", ctx: grpcCtx(device,
			"x-signerd-internal-key", "whatever", "x-signerd-peer-cert", b64(victim[0])), want: &dev},
		{name: "REST without the key", ctx: restCtx(metadata.Pairs("x-signerd-peer-cert", b64(device[0])))},
		{name: "REST with a wrong key", ctx: restCtx(metadata.Pairs("x-signerd-internal-key", "00", "x-signerd-peer-cert", b64(device[0])))},
		{name: "REST with another process's key", ctx: restCtx(gatewayMD(otherProcess, &tls.ConnectionState{PeerCertificates: device}))},
		{name: "REST with the key twice", ctx: restCtx(metadata.Pairs("x-signerd-internal-key", keyOf(t, a), "x-signerd-internal-key", keyOf(t, a),
			"x-signerd-peer-cert", b64(device[0])))},
		{name: "REST with the key and a wrong one", ctx: restCtx(metadata.Pairs("x-signerd-internal-key", keyOf(t, a), "x-signerd-internal-key", "00",
			"x-signerd-peer-cert", b64(device[0])))},
		{name: "REST with an empty key", ctx: restCtx(metadata.Pairs("x-signerd-internal-key", "", "x-signerd-peer-cert", b64(device[0])))},
		{name: "REST with a malformed forwarded cert", ctx: restCtx(metadata.Pairs("x-signerd-internal-key", keyOf(t, a), "x-signerd-peer-cert", "%%%"))},
		{name: "REST with forwarded garbage DER", ctx: restCtx(metadata.Pairs("x-signerd-internal-key", keyOf(t, a),
			"x-signerd-peer-cert", base64.StdEncoding.EncodeToString([]byte("not DER"))))},

		{name: "anonymous allowed", a: auth.NewAuthenticator(auth.Authenticator{AllowAnonymous: true}), ctx: grpcCtx(nil),
			want: &auth.Identity{Kind: auth.KindAnonymous, Method: "none"}},
		{name: "anonymous allowed over REST", a: auth.NewAuthenticator(auth.Authenticator{AllowAnonymous: true}), ctx: restCtx(metadata.MD{}),
			want: nil}, // no gateway key: not the gateway
		{name: "anonymous allowed, bad bearer still refused", a: auth.NewAuthenticator(auth.Authenticator{AllowAnonymous: true}),
			ctx: grpcCtx(nil, "authorization", bearer)},
		{name: "anonymous allowed, bad cert still refused", a: auth.NewAuthenticator(auth.Authenticator{AllowAnonymous: true}),
			ctx: grpcCtx(device)},
		{name: "no CA configured", a: auth.NewAuthenticator(auth.Authenticator{JWT: keys.verifier(t)}), ctx: grpcCtx(device)},
		{name: "no JWKS configured", a: auth.NewAuthenticator(auth.Authenticator{ClientCAs: func() *x509.CertPool { return ca.Pool() }}),
			ctx: grpcCtx(nil, "authorization", bearer)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			au := tc.a
			if au == nil {
				au = a
			}
			ctx, err := au.Authenticate(tc.ctx)
			if tc.want == nil {
				if err == nil {
					id, _ := auth.FromContext(ctx)
					t.Fatalf("Authenticate admitted %+v, want UNAUTHENTICATED", id)
				}
				if c := status.Code(err); c != codes.Unauthenticated {
					t.Errorf("Authenticate error %v has code %v, want Unauthenticated", err, c)
				}
				var ae *auth.Error
				if !errors.As(err, &ae) || ae.Cause == nil {
					t.Errorf("Authenticate error %T %v is not an *auth.Error with a cause", err, err)
				}
				if _, ok := auth.FromContext(ctx); ok {
					t.Error("a refused call's context carries an identity")
				}
				tok := strings.TrimPrefix(bearer, "Bearer ")
				if strings.Contains(err.Error(), tok) || strings.Contains(status.Convert(err).Message(), tok) {
					t.Errorf("error contains the bearer token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v, want %+v", err, *tc.want)
			}
			id, ok := auth.FromContext(ctx)
			if !ok || id != *tc.want {
				t.Errorf("Authenticate: identity %+v (%v), want %+v", id, ok, *tc.want)
			}
		})
	}
}

// TestAuthenticatorClockAndCAReload: certificate validity is judged by Now, and the CA
// bundle is asked for at every call (so a reload applies at once), over
// both transports, whatever the verified-chain cache remembers.
func TestAuthenticatorClockAndCAReload(t *testing.T) {
	ca := pkitest.NewCA(t, "client CA")
	device := leafChain(ca.Device(t, "a1ProdA", "dev-0001"))
	for _, transport := range []string{"grpc", "rest"} {
		t.Run(transport, func(t *testing.T) {
			now := time.Now()
			pool := ca.Pool()
			a := auth.NewAuthenticator(auth.Authenticator{
				ClientCAs: func() *x509.CertPool { return pool },
				Now:       func() time.Time { return now },
			})
			ctx := grpcCtx(device)
			if transport == "rest" {
				ctx = restCtx(gatewayMD(a, &tls.ConnectionState{PeerCertificates: device}))
			}
			for _, step := range []struct {
				what   string
				change func()
				ok     bool
			}{
				{"valid device", func() {}, true},
				{"valid device again (remembered)", func() {}, true},
				{"past the certificate's NotAfter", func() { now = now.Add(30 * 24 * time.Hour) }, false},
				{"back within validity", func() { now = time.Now() }, true},
				{"before the certificate's NotBefore", func() { now = now.Add(-30 * 24 * time.Hour) }, false},
				{"its CA removed from the bundle", func() { now = time.Now(); pool = x509.NewCertPool() }, false},
				{"its CA back in the bundle", func() { pool = ca.Pool() }, true},
			} {
				step.change()
				_, err := a.Authenticate(ctx)
				if step.ok && err != nil || !step.ok && status.Code(err) != codes.Unauthenticated {
					t.Errorf("%s: %v, want ok=%v (else Unauthenticated)", step.what, err, step.ok)
				}
			}
		})
	}
}

func TestTransport(t *testing.T) {
	if got := auth.Transport(grpcCtx(nil)); got != "grpc" {
		t.Errorf("TCP peer: %q, want grpc", got)
	}
	if got := auth.Transport(restCtx(nil)); got != "rest" {
		t.Errorf("in-process peer: %q, want rest", got)
	}
	if got := auth.Transport(context.Background()); got != "grpc" {
		t.Errorf("no peer: %q, want grpc", got)
	}
}

func TestIsInternalHeader(t *testing.T) {
	for _, h := range []string{"X-Signerd-Internal-Key", "x-signerd-peer-cert", "Grpc-Metadata-X-Signerd-Peer-Cert",
		"GRPC-METADATA-X-SIGNERD-INTERNAL-KEY", "X-Signerd-Anything", "Grpc-Metadata-X-Signerd-Peer-Cert-Bin"} {
		if !auth.IsInternalHeader(h) {
			t.Errorf("IsInternalHeader(%q) = false, want true", h)
		}
	}
	for _, h := range []string{"Authorization", "X-Request-Id", "X-Signer", "Grpc-Metadata-X-Request-Id"} {
		if auth.IsInternalHeader(h) {
			t.Errorf("IsInternalHeader(%q) = true, want false", h)
		}
	}
}

func b64(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }

// keyOf reads an Authenticator's gateway key from the metadata it forwards.
func keyOf(t *testing.T, a *auth.Authenticator) string {
	t.Helper()
	v := a.GatewayMetadata(context.Background(), &http.Request{}).Get("x-signerd-internal-key")
	if len(v) != 1 || len(v[0]) < 32 {
		t.Fatalf("gateway metadata key = %q, want one value of ≥32 characters", v)
	}
	return v[0]
}
