package server

// Benchmarks of one SignMqttConnect through the whole server, in process:
// signerd's interceptor chain (request id, metrics, log, audit,
// authentication, rate limit, shedding, authorization), the service, the
// secret cache (warm, over an in-memory store) and the signing code.
//
//	gRPC over bufconn: no network, real HTTP/2 framing and (for mtls) TLS.
//	gRPC over loopback TCP: what a backend on the same host sees.
//	REST through the handler: the gateway, JSON and the in-process
//	  channel, without a network (mtls: the client certificate as net/http
//	  would hand it over; jwt: an RS256 bearer token).
//	REST over loopback TCP with TLS: what a device on the same host sees.
//
// The -parallel variants run 16 callers (GOMAXPROCS × 8) for throughput;
// the others one caller, for the cost of one call. cpu-ns/op is the CPU
// time (user + system, all threads: client, server and GC) per call, which
// other work on a shared machine disturbs less than ns/op; GOMAXPROCS
// seconds divided by it is the most calls per second this process could
// make, client included.
//
//	go test -run '^$' -bench . -benchmem ./server

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/metrics"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
)

const (
	benchProduct = "a1BenchProd"
	benchDevices = 1000
	benchBackend = "spiffe://signerd.bench/loadgen"
	// benchCallers is the concurrency of the -parallel variants, the
	// concurrency of scripts/bench.sh.
	benchCallers = 16
)

func benchDevice(i int) string { return fmt.Sprintf("dev-%07d", i) }

// benchEnv is a running Server wired as cmd/signerd wires it.
type benchEnv struct {
	srv       *Server
	tls       bool
	clientTLS *tls.Config // backend certificate (mtls) or none (jwt); trusts the server
	leaf      *x509.Certificate
	bearer    string // jwt: the backend's RS256 token
}

// benchAuth is how the benchmark's backend authenticates.
type benchAuth int

const (
	anonymous benchAuth = iota // plaintext, anonymous callers, as -dev
	mtls                       // TLS, a backend client certificate
	bearerJWT                  // TLS, no client certificate, an RS256 bearer token
)

// newBenchEnv starts a server. With mtls it serves TLS and admits the
// backend certificate (granted every product in the policy); with bearerJWT
// it serves TLS and admits the backend's RS256 bearer token; with anonymous
// it admits anonymous callers as -dev does.
func newBenchEnv(b *testing.B, how benchAuth) *benchEnv {
	b.Helper()
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := metrics.New()
	mem := secrets.NewMemory()
	for i := range benchDevices {
		mem.Put(secrets.DeviceID{ProductKey: benchProduct, DeviceName: benchDevice(i)}, []byte("0123456789abcdef0123456789abcdef"))
	}
	cache, err := secrets.NewCache(mem, secrets.CacheConfig{Observe: m.CacheObserve, OnEvict: m.CacheEvicted})
	if err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{tls: how != anonymous}
	cfg := Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", MetricsAddr: "off",
		Metrics: m, Logger: log, Audit: audit.New(io.Discard),
		// As signerd's defaults, with -backend-rate-limit 0.
		RateLimit:        limits.NewPerCaller(1, 10, 0),
		BackendRateLimit: limits.NewPerCaller(0, 0, 0),
		PreVerifyLimit:   limits.NewPerCaller(1, 5, 0),
		InFlight:         limits.NewInFlight(1000),
	}
	var policy *auth.Policy
	if how != anonymous {
		ca := pkitest.NewCA(b, "bench CA")
		serverCert := ca.Issue(b, pkitest.Options{CommonName: "signerd", Server: true})
		pool := ca.Pool()
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequestClientCert}
		a := auth.Authenticator{
			Certs:     auth.CertConfig{DeviceURIScheme: "aliyun-iot"},
			ClientCAs: func() *x509.CertPool { return pool },
		}
		identity := benchBackend
		if how == mtls {
			client := ca.Backend(b, benchBackend)
			env.leaf = client.Leaf
			env.clientTLS = pkitest.ClientTLS(ca.Pool(), &client)
		} else {
			identity = benchJWTSubject
			a.JWT, env.bearer = benchJWT(b)
			env.clientTLS = pkitest.ClientTLS(ca.Pool(), nil)
		}
		env.clientTLS.ServerName = "localhost"
		cfg.Authenticator = auth.NewAuthenticator(a)
		policy, err = auth.NewPolicy(auth.Grant{Identity: identity, Products: []string{"*"}, RPCs: []string{"*"}})
	} else {
		// As -dev: anonymous callers, no limits.
		cfg.RateLimit, cfg.PreVerifyLimit, cfg.InFlight = limits.NewPerCaller(0, 0, 0), limits.NewPerCaller(0, 0, 0), limits.NewInFlight(0)
		cfg.Authenticator = auth.NewAuthenticator(auth.Authenticator{AllowAnonymous: true})
		policy, err = auth.NewPolicy()
	}
	if err != nil {
		b.Fatal(err)
	}
	cfg.Service = service.New(cache, service.WithLogger(log), service.WithAuthorizer(auth.NewAuthorizer(policy)))
	if env.srv, err = New(cfg); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.srv.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	return env
}

const (
	benchJWTSubject  = "loadgen"
	benchJWTIssuer   = "https://issuer.signerd.bench"
	benchJWTAudience = "signerd"
)

// benchJWT returns a verifier of an RSA JWKS and an RS256 token of it, valid
// for an hour, as an identity provider would issue a backend.
func benchJWT(b *testing.B) (*auth.JWTVerifier, string) {
	b.Helper()
	k, err := rsa.GenerateKey(crand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	b64u := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
		"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}}})
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwks, 0o600); err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{JWKSFile: file, Issuer: benchJWTIssuer, Audience: benchJWTAudience})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": benchJWTIssuer, "aud": benchJWTAudience, "sub": benchJWTSubject,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = "rsa-1"
	s, err := tok.SignedString(k)
	if err != nil {
		b.Fatal(err)
	}
	return v, s
}

// pipeListener is a bufconn listener whose connections say "pipe": gRPC
// callers without a network.
type pipeListener struct{ *bufconn.Listener }

func (l pipeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return pipeConn{c}, nil
}

type pipeConn struct{ net.Conn }

func (pipeConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (pipeConn) RemoteAddr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "bench" }

// grpcClient connects to the server's external gRPC server, over bufconn
// or over loopback TCP.
func (e *benchEnv) grpcClient(b *testing.B, overBufconn bool) signerv1.SignerServiceClient {
	b.Helper()
	creds := insecure.NewCredentials()
	if e.tls {
		creds = credentials.NewTLS(e.clientTLS)
	}
	target := "passthrough:///" + e.srv.GRPCAddr().String()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if e.bearer != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds(e.bearer)))
	}
	if overBufconn {
		lis := bufconn.Listen(1 << 20)
		go func() { _ = e.srv.grpc.Serve(pipeListener{lis}) }()
		target = "passthrough:///bench"
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := signerv1.NewSignerServiceClient(conn)
	// Fill the cache: the benchmark is the warm path.
	for i := range benchDevices {
		if _, err := c.SignMqttConnect(context.Background(), grpcRequest(i)); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// bearerCreds sends a bearer token with every call.
type bearerCreds string

func (c bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(c)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return true }

func grpcRequest(i int) *signerv1.SignMqttConnectRequest {
	return &signerv1.SignMqttConnectRequest{
		ProductKey: benchProduct, DeviceName: benchDevice(i),
		SignMethod: signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256, Transport: signerv1.Transport_TRANSPORT_TLS,
	}
}

func BenchmarkGRPC(b *testing.B) {
	for _, tc := range []struct {
		name     string
		bufconn  bool
		auth     benchAuth
		parallel bool
	}{
		{"bufconn/plaintext-anonymous", true, anonymous, false},
		{"bufconn/mtls-backend", true, mtls, false},
		{"loopback/mtls-backend", false, mtls, false},
		{"loopback/jwt-backend", false, bearerJWT, false},
		{"bufconn/plaintext-anonymous-parallel", true, anonymous, true},
		{"bufconn/mtls-backend-parallel", true, mtls, true},
		{"loopback/mtls-backend-parallel", false, mtls, true},
		{"loopback/jwt-backend-parallel", false, bearerJWT, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := newBenchEnv(b, tc.auth)
			c := env.grpcClient(b, tc.bufconn)
			ctx := context.Background()
			b.ReportAllocs()
			defer reportCPU(b)()
			if !tc.parallel {
				i := 0
				for b.Loop() {
					if _, err := c.SignMqttConnect(ctx, grpcRequest(i%benchDevices)); err != nil {
						b.Fatal(err)
					}
					i++
				}
				return
			}
			b.SetParallelism(parallelism())
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.SignMqttConnect(ctx, grpcRequest(rand.IntN(benchDevices))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per op as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallelism makes RunParallel use benchCallers goroutines.
func parallelism() int { return max(1, benchCallers/runtime.GOMAXPROCS(0)) }

var restBody = []byte(`{"signMethod":"SIGN_METHOD_HMAC_SHA256","transport":"TRANSPORT_TLS"}`)

func restPath(i int) string {
	return "/v1/products/" + benchProduct + "/devices/" + benchDevice(i) + ":signMqttConnect"
}

// restHandler serves one REST request through the server's HTTP handler,
// without a network.
func (e *benchEnv) restHandler(b *testing.B) func(i int) error {
	b.Helper()
	h := e.srv.http.Handler
	do := func(i int) error {
		r := httptest.NewRequest(http.MethodPost, restPath(i), bytes.NewReader(restBody))
		r.Header.Set("Content-Type", "application/json")
		if e.bearer != "" {
			r.Header.Set("Authorization", "Bearer "+e.bearer)
		}
		if e.tls {
			// What net/http hands the handler after a TLS handshake.
			r.TLS = &tls.ConnectionState{HandshakeComplete: true}
			if e.leaf != nil {
				r.TLS.PeerCertificates = []*x509.Certificate{e.leaf}
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", w.Code, w.Body)
		}
		return nil
	}
	return warm(b, do)
}

// restLoopback sends REST requests over loopback TCP (HTTP/1.1, TLS when
// the server has it, a keep-alive connection per caller).
func (e *benchEnv) restLoopback(b *testing.B) func(i int) error {
	b.Helper()
	tr := &http.Transport{TLSClientConfig: e.clientTLS, MaxIdleConnsPerHost: benchCallers * 2}
	client := &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	base := "http://" + e.srv.HTTPAddr().String()
	if e.tls {
		base = "https://" + e.srv.HTTPAddr().String()
	}
	do := func(i int) error {
		req, err := http.NewRequest(http.MethodPost, base+restPath(i), bytes.NewReader(restBody))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if e.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+e.bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	return warm(b, do)
}

// warm fills the cache through do: the benchmarks are of the warm path.
func warm(b *testing.B, do func(int) error) func(int) error {
	b.Helper()
	for i := range benchDevices {
		if err := do(i); err != nil {
			b.Fatal(err)
		}
	}
	return do
}

func BenchmarkREST(b *testing.B) {
	for _, tc := range []struct {
		name     string
		loopback bool
		auth     benchAuth
		parallel bool
	}{
		{"handler/plaintext-anonymous", false, anonymous, false},
		{"handler/mtls-backend", false, mtls, false},
		{"handler/jwt-backend", false, bearerJWT, false},
		{"loopback/mtls-backend", true, mtls, false},
		{"loopback/jwt-backend", true, bearerJWT, false},
		{"handler/plaintext-anonymous-parallel", false, anonymous, true},
		{"handler/mtls-backend-parallel", false, mtls, true},
		{"handler/jwt-backend-parallel", false, bearerJWT, true},
		{"loopback/mtls-backend-parallel", true, mtls, true},
		{"loopback/jwt-backend-parallel", true, bearerJWT, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := newBenchEnv(b, tc.auth)
			var do func(int) error
			if tc.loopback {
				do = env.restLoopback(b)
			} else {
				do = env.restHandler(b)
			}
			b.ReportAllocs()
			defer reportCPU(b)()
			if !tc.parallel {
				i := 0
				for b.Loop() {
					if err := do(i % benchDevices); err != nil {
						b.Fatal(err)
					}
					i++
				}
				return
			}
			b.SetParallelism(parallelism())
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := do(rand.IntN(benchDevices)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
