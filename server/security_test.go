package server_test

// The hostile suite: a real server.Server with real TLS, real client
// certificates and real JWTs, attacked over both transports. Every call
// is checked for its status, and at the end for its audit record; the
// secret store counts every lookup, so that a denied caller is shown never
// to have reached it.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/limits"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
	"github.com/signerd/signerd/tlsreload"
)

func init() {
	// The CA bundle is re-read often, so that revocation by removal shows
	// within the test's patience.
	tlsreload.CheckInterval = 5 * time.Millisecond
}

// patience bounds every "eventually"; it only turns a hang into a failure.
const patience = 20 * time.Second

const (
	pkA = "a1ProdA"
	pkB = "b2ProdB"

	provA         = "spiffe://signerd.test/fleet/prov-a" // mTLS, product A only
	admin         = "spiffe://signerd.test/fleet/admin"  // mTLS, everything
	stranger      = "spiffe://signerd.test/fleet/stranger"
	jwtProvA      = "jwt-prov-a" // JWT subject, product A, SignMqttConnect only
	jwtAdmin      = "jwt-admin"  // JWT subject, everything
	jwtStranger   = "jwt-stranger"
	jwtIssuer     = "https://issuer.signerd.test"
	jwtAudience   = "signerd"
	numDevices    = 120
	numPerProduct = 6 // devices alternate products in runs of this many
)

// countingStore counts every lookup, per device.
type countingStore struct {
	inner secrets.Store
	mu    sync.Mutex
	byID  map[secrets.DeviceID]int
	total int
}

func (s *countingStore) Lookup(ctx context.Context, id secrets.DeviceID) (secrets.Secret, error) {
	s.mu.Lock()
	s.byID[id]++
	s.total++
	s.mu.Unlock()
	return s.inner.Lookup(ctx, id)
}

func (s *countingStore) snapshot() (int, map[secrets.DeviceID]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[secrets.DeviceID]int, len(s.byID))
	for k, v := range s.byID {
		m[k] = v
	}
	return s.total, m
}

// jwtIssuerKeys signs backend tokens; its JWKS file holds the public keys.
type jwtIssuerKeys struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	jwksFile string
}

func newJWTIssuer(t *testing.T) *jwtIssuerKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ek.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64u := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64u(rk.N.Bytes()), "e": b64u(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64u(raw[1:33]), "y": b64u(raw[33:])},
	}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return &jwtIssuerKeys{rsa: rk, ec: ek, jwksFile: path}
}

func validClaims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": jwtIssuer, "aud": jwtAudience, "sub": sub,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
}

func signJWT(t *testing.T, m jwt.SigningMethod, kid string, c jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (k *jwtIssuerKeys) rs256(t *testing.T, c jwt.MapClaims) string {
	return signJWT(t, jwt.SigningMethodRS256, "rsa-1", c, k.rsa)
}

func (k *jwtIssuerKeys) es256(t *testing.T, c jwt.MapClaims) string {
	return signJWT(t, jwt.SigningMethodES256, "ec-1", c, k.ec)
}

// secServer is a running server with everything the suite checks.
type secServer struct {
	srv      *server.Server
	grpcAddr string
	base     string // https://host:port
	roots    *x509.CertPool
	ca       *pkitest.CA // client CA, stays in the bundle
	ca2      *pkitest.CA // client CA, removed from the bundle later
	caFile   string
	store    *countingStore
	authn    *auth.Authenticator
	jwt      *jwtIssuerKeys
	audit    *logBuffer
	logs     *logBuffer

	seq atomic.Int64

	mu        sync.Mutex
	expect    map[string][]auditWant // by request id
	secrets   []string               // every device secret in the store
	passwords []string               // every password handed out
	tokens    []string               // every bearer token sent
	calls     int
}

type auditWant struct {
	caller, transport, rpc, pk, dn, outcome, code string
}

type secOptions struct {
	rate, backendRate *limits.PerCaller
	// policy replaces the suite's policy.
	policy string
}

func startSecure(t *testing.T, o secOptions) *secServer {
	t.Helper()
	dir := t.TempDir()
	s := &secServer{
		ca: pkitest.NewCA(t, "device CA one"), ca2: pkitest.NewCA(t, "device CA two"),
		store:  &countingStore{inner: secrets.NewMemory(), byID: map[secrets.DeviceID]int{}},
		jwt:    newJWTIssuer(t),
		audit:  &logBuffer{},
		logs:   &logBuffer{},
		expect: map[string][]auditWant{},
	}
	serverCA := pkitest.NewCA(t, "server CA")
	s.roots = serverCA.Pool()
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", serverCA.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	kp, err := tlsreload.NewKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s.caFile = filepath.Join(dir, "client-ca.pem")
	if err := os.WriteFile(s.caFile, append(append([]byte(nil), s.ca.PEM...), s.ca2.PEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	caPool, err := tlsreload.NewCAPool(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	caPool.OnError = func(err error) { t.Errorf("client CA reload: %v", err) }
	verifier, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{JWKSFile: s.jwt.jwksFile, Issuer: jwtIssuer, Audience: jwtAudience})
	if err != nil {
		t.Fatal(err)
	}
	s.authn = auth.NewAuthenticator(auth.Authenticator{ClientCAs: caPool.Pool, JWT: verifier})
	policyText := `
backends:
  - identity: ` + provA + `
    products: [` + pkA + `]
    rpcs: [SignMqttConnect, BatchSignMqttConnect]
  - identity: ` + admin + `
    products: ["*"]
    rpcs: ["*"]
  - identity: ` + jwtProvA + `
    products: [` + pkA + `]
    rpcs: [SignMqttConnect]
  - identity: ` + jwtAdmin + `
    products: ["*"]
    rpcs: ["*"]
`
	if o.policy != "" {
		policyText = o.policy
	}
	policy, err := auth.ParsePolicy([]byte(policyText))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := service.New(s.store, service.WithLogger(logger), service.WithAuthorizer(auth.NewAuthorizer(policy)),
		service.WithSigners(platformSigners(t)...))
	s.srv, err = server.New(server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Service: svc, Logger: logger,
		TLS:           &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.GetCertificate, ClientAuth: tls.RequestClientCert},
		Authenticator: s.authn,
		Audit:         audit.New(s.audit),
		RateLimit:     o.rate, BackendRateLimit: o.backendRate,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.grpcAddr = s.srv.GRPCAddr().String()
	s.base = "https://" + s.srv.HTTPAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// putSecret stores a random secret for a device.
func (s *secServer) putSecret(t *testing.T, pk, dn string) {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	secret := hex.EncodeToString(b)
	s.store.inner.(*secrets.Memory).Put(secrets.DeviceID{ProductKey: pk, DeviceName: dn}, []byte(secret))
	s.mu.Lock()
	s.secrets = append(s.secrets, secret)
	s.mu.Unlock()
}

// caller is one client identity with a connection on each transport.
type caller struct {
	name   string // as audited: device:…, backend:…
	pk, dn string // a device's own names
	cert   *tls.Certificate
	bearer string
	grpc   signerv1.SignerServiceClient
	http   *http.Client
}

func (s *secServer) newCaller(t *testing.T, name string, cert *tls.Certificate, bearer string) *caller {
	t.Helper()
	cfg := &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12,
		// Always present the certificate, whatever the server asks for.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		}}
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg.Clone(), MaxIdleConnsPerHost: 4}
	t.Cleanup(func() { conn.Close(); tr.CloseIdleConnections() })
	if bearer != "" {
		s.mu.Lock()
		s.tokens = append(s.tokens, bearer)
		s.mu.Unlock()
	}
	return &caller{name: name, cert: cert, bearer: bearer, grpc: signerv1.NewSignerServiceClient(conn), http: &http.Client{Transport: tr}}
}

// attempt is one call.
type attempt struct {
	what      string // for failure messages
	transport string // grpc or rest
	rpc       string // SignMqttConnect, PreVerify, BatchSignMqttConnect
	pk, dn    string // the device named, as the server reads it
	path      string // REST: the URL path, when not the plain escaped one
	body      string // REST: the body, when not "{}"
	header    http.Header
	md        []string
	noReqID   bool
	batch     []*signerv1.SignMqttConnectRequest
	// want is the call's code; anyOf, if set, allows any of these instead.
	want  codes.Code
	anyOf []codes.Code
	// items are the batch items' codes when the call succeeds.
	items []codes.Code
}

type result struct {
	code       codes.Code
	httpStatus int
	retryAfter string
	requestID  string
	username   string
	password   string
	items      []codes.Code
}

var restVerb = map[string]string{"SignMqttConnect": "signMqttConnect", "PreVerify": "preVerify"}

// do makes the call, checks its code and records what its audit must say.
func (s *secServer) do(t *testing.T, c *caller, a attempt) result {
	t.Helper()
	reqID := fmt.Sprintf("sec-%07d", s.seq.Add(1))
	if a.noReqID {
		reqID = ""
	}
	var r result
	switch a.transport {
	case "grpc":
		r = s.doGRPC(t, c, a, reqID)
	case "rest":
		r = s.doREST(t, c, a, reqID)
	default:
		t.Fatalf("transport %q", a.transport)
	}
	allowed := a.anyOf
	if allowed == nil {
		allowed = []codes.Code{a.want}
	}
	if !slices.Contains(allowed, r.code) {
		t.Errorf("%s (%s %s as %s): got %v (HTTP %d), want %v", a.what, a.transport, a.rpc, c.name, r.code, r.httpStatus, allowed)
	}
	if a.transport == "rest" && r.httpStatus != runtime.HTTPStatusFromCode(r.code) {
		t.Errorf("%s: HTTP %d for %v", a.what, r.httpStatus, r.code)
	}
	if r.code == codes.OK && a.batch != nil && !slices.Equal(r.items, a.items) {
		t.Errorf("%s (%s batch as %s): item codes %v, want %v", a.what, a.transport, c.name, r.items, a.items)
	}
	if r.code == codes.ResourceExhausted {
		if n, err := strconv.Atoi(r.retryAfter); err != nil || n < 1 {
			t.Errorf("%s (%s): RESOURCE_EXHAUSTED with Retry-After %q, want whole seconds ≥1", a.what, a.transport, r.retryAfter)
		}
	}
	if r.requestID == "" || (reqID != "" && r.requestID != reqID) {
		t.Errorf("%s (%s): response request id %q, want %q (or a generated one)", a.what, a.transport, r.requestID, reqID)
	}

	// The audit records this call must have left.
	who := c.name
	if r.code == codes.Unauthenticated {
		who = "unauthenticated"
	}
	var wants []auditWant
	switch {
	case a.batch != nil && r.code == codes.OK:
		for i, item := range a.batch {
			code := codes.Unknown
			if i < len(r.items) {
				code = r.items[i]
			}
			wants = append(wants, auditWant{who, a.transport, a.rpc, item.GetProductKey(), item.GetDeviceName(), outcomeOf(code), code.String()})
		}
	case a.batch != nil && r.code == codes.PermissionDenied && who != "unauthenticated":
		// A known caller refused the whole batch: every device it named
		// is recorded as denied.
		for _, item := range a.batch {
			wants = append(wants, auditWant{who, a.transport, a.rpc, item.GetProductKey(), item.GetDeviceName(), outcomeOf(r.code), r.code.String()})
		}
	default:
		wants = append(wants, auditWant{who, a.transport, a.rpc, a.pk, a.dn, outcomeOf(r.code), r.code.String()})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if r.password != "" {
		s.passwords = append(s.passwords, r.password)
	}
	if _, dup := s.expect[r.requestID]; dup {
		t.Errorf("%s: request id %q seen twice", a.what, r.requestID)
	}
	s.expect[r.requestID] = wants
	return r
}

func outcomeOf(c codes.Code) string {
	switch c {
	case codes.OK:
		return "issued"
	case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted:
		return "denied"
	case codes.InvalidArgument:
		return "rejected"
	}
	return "failed"
}

func (s *secServer) doGRPC(t *testing.T, c *caller, a attempt, reqID string) result {
	t.Helper()
	md := append([]string(nil), a.md...)
	if reqID != "" {
		md = append(md, "x-request-id", reqID)
	}
	if c.bearer != "" {
		md = append(md, "authorization", "Bearer "+c.bearer)
	}
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs(md...)), patience)
	defer cancel()
	var hdr metadata.MD
	var r result
	var err error
	switch a.rpc {
	case "SignMqttConnect":
		var resp *signerv1.SignMqttConnectResponse
		resp, err = c.grpc.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: a.pk, DeviceName: a.dn}, grpc.Header(&hdr))
		r.username, r.password = resp.GetUsername(), resp.GetPassword()
	case "PreVerify":
		_, err = c.grpc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: a.pk, DeviceName: a.dn}, grpc.Header(&hdr))
	case "BatchSignMqttConnect":
		var resp *signerv1.BatchSignMqttConnectResponse
		resp, err = c.grpc.BatchSignMqttConnect(ctx, &signerv1.BatchSignMqttConnectRequest{Requests: a.batch}, grpc.Header(&hdr))
		r.items = itemCodes(resp)
		for _, it := range resp.GetResults() {
			if pw := it.GetResponse().GetPassword(); pw != "" {
				s.mu.Lock()
				s.passwords = append(s.passwords, pw)
				s.mu.Unlock()
			}
		}
	default:
		t.Fatalf("rpc %q", a.rpc)
	}
	r.code = status.Code(err)
	if v := hdr.Get("retry-after"); len(v) > 0 {
		r.retryAfter = v[0]
	}
	if v := hdr.Get("x-request-id"); len(v) > 0 {
		r.requestID = v[0]
	}
	return r
}

func itemCodes(resp *signerv1.BatchSignMqttConnectResponse) []codes.Code {
	var out []codes.Code
	for _, it := range resp.GetResults() {
		out = append(out, codes.Code(it.GetError().GetCode()))
	}
	return out
}

func (s *secServer) doREST(t *testing.T, c *caller, a attempt, reqID string) result {
	t.Helper()
	path, body := a.path, a.body
	if path == "" {
		if a.rpc == "BatchSignMqttConnect" {
			path = "/v1/devices:batchSignMqttConnect"
		} else {
			path = "/v1/products/" + url.PathEscape(a.pk) + "/devices/" + url.PathEscape(a.dn) + ":" + restVerb[a.rpc]
		}
	}
	if body == "" {
		body = "{}"
		if a.batch != nil {
			b, err := protojson.Marshal(&signerv1.BatchSignMqttConnectRequest{Requests: a.batch})
			if err != nil {
				t.Fatal(err)
			}
			body = string(b)
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range a.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	if reqID != "" {
		req.Header.Set("X-Request-Id", reqID)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s: POST %s: %v", a.what, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := result{httpStatus: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), requestID: resp.Header.Get("X-Request-Id")}
	if resp.StatusCode != http.StatusOK {
		var st struct {
			Code int `json:"code"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Errorf("%s: HTTP %d with a body that is not a JSON status: %s", a.what, resp.StatusCode, raw)
		}
		r.code = codes.Code(st.Code)
		return r
	}
	r.code = codes.OK
	um := protojson.UnmarshalOptions{DiscardUnknown: true}
	switch a.rpc {
	case "BatchSignMqttConnect":
		var out signerv1.BatchSignMqttConnectResponse
		if err := um.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: batch answer %s: %v", a.what, raw, err)
		}
		r.items = itemCodes(&out)
		for _, it := range out.GetResults() {
			if pw := it.GetResponse().GetPassword(); pw != "" {
				s.mu.Lock()
				s.passwords = append(s.passwords, pw)
				s.mu.Unlock()
			}
		}
	default:
		var out signerv1.SignMqttConnectResponse
		if err := um.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: answer %s: %v", a.what, raw, err)
		}
		r.username, r.password = out.GetUsername(), out.GetPassword()
	}
	return r
}

// verifyAudit checks that every call left exactly the records it should,
// and no other record exists.
func (s *secServer) verifyAudit(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	got := map[string][]auditWant{}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(s.audit.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("audit line is not JSON: %q", line)
			continue
		}
		str := func(k string) string { v, _ := m[k].(string); return v }
		id := str("request_id")
		if id == "" {
			t.Errorf("audit record without a request id: %s", line)
		}
		if str("event_time") == "" || str("peer") == "" {
			t.Errorf("audit record without event_time or peer: %s", line)
		}
		if str("outcome") != "issued" && str("reason") == "" {
			t.Errorf("%s audit record without a reason: %s", str("outcome"), line)
		}
		got[id] = append(got[id], auditWant{str("caller"), str("transport"), str("rpc"), str("product_key"), str("device_name"), str("outcome"), str("code")})
		n++
	}
	want := 0
	for id, ws := range s.expect {
		want += len(ws)
		if !slices.Equal(got[id], ws) {
			t.Errorf("request %s: audit records\n %+v\nwant\n %+v", id, got[id], ws)
		}
	}
	for id := range got {
		if _, ok := s.expect[id]; !ok {
			t.Errorf("audit records for request %s, which no call of the suite made: %+v", id, got[id])
		}
	}
	if n != want {
		t.Errorf("%d audit records for %d calls; want %d (one per call, one per batch item)", n, s.calls, want)
	}
	t.Logf("audit: %d records for %d calls", n, s.calls)
}

// scanLogs checks that no secret, password or token reached a log.
func (s *secServer) scanLogs(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.logs.String() + "\n" + s.audit.String()
	key := s.authn.GatewayMetadata(context.Background(), &http.Request{}).Get("x-signerd-internal-key")
	checks := []struct {
		what string
		vals []string
	}{{"device secret", s.secrets}, {"password", s.passwords}, {"bearer token", s.tokens}, {"gateway key", key}}
	for _, c := range checks {
		found := 0
		for _, v := range c.vals {
			if v == "" {
				t.Errorf("empty %s in the scan list", c.what)
				continue
			}
			if strings.Contains(all, v) {
				found++
			}
			// A JWT's signature alone is as good as a leak of the token.
			if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) > 16 && strings.Contains(all, parts[2]) {
				found++
			}
		}
		if found > 0 {
			t.Errorf("logs contain %d of %d %ss", found, len(c.vals), c.what)
		}
		t.Logf("log scan: %d %ss, none found in %d bytes of logs", len(c.vals), c.what, len(all))
	}
	if len(s.secrets) == 0 || len(s.passwords) == 0 {
		t.Error("the scan has no secrets or passwords to look for")
	}
}

// device is a device with a client certificate.
type device struct {
	*caller
	leaf *x509.Certificate
}

func deviceNames() [][2]string {
	patterns := []string{"dev-%04d", "dev:%04d", "dev@%04d", "dev.%04d", "Dev_%04d", "d:%04d@site.x"}
	var out [][2]string
	for i := 0; i < numDevices; i++ {
		pk := pkA
		if (i/numPerProduct)%2 == 1 {
			pk = pkB
		}
		out = append(out, [2]string{pk, fmt.Sprintf(patterns[i%len(patterns)], i)})
	}
	return out
}

func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsUpper(r) {
			return unicode.ToLower(r)
		}
		return unicode.ToUpper(r)
	}, s)
}

func otherProduct(pk string) string {
	if pk == pkA {
		return pkB
	}
	return pkA
}

// percentAll encodes every byte of s as %XX.
func percentAll(s string, lower bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		f := "%%%02X"
		if lower {
			f = "%%%02x"
		}
		fmt.Fprintf(&b, f, s[i])
	}
	return b.String()
}

// percentSpecials encodes only the characters of a device name that are
// not letters or digits.
func percentSpecials(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 128 && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func signPathOf(pk, dn, verb string) string {
	return "/v1/products/" + pk + "/devices/" + dn + ":" + verb
}

// parallel runs f for every index on a few workers.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// tally counts attempts by code.
type tally struct {
	mu     sync.Mutex
	counts map[string]map[codes.Code]int // by transport
}

func (ty *tally) add(transport string, c codes.Code, n int) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	if ty.counts == nil {
		ty.counts = map[string]map[codes.Code]int{}
	}
	if ty.counts[transport] == nil {
		ty.counts[transport] = map[codes.Code]int{}
	}
	ty.counts[transport][c] += n
}

func (ty *tally) total(transport string) (all, denied int) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	for c, n := range ty.counts[transport] {
		all += n
		if c == codes.PermissionDenied {
			denied += n
		}
	}
	return all, denied
}

func TestHostile(t *testing.T) {
	s := startSecure(t, secOptions{})

	// ≥100 devices across two products, with names using every special
	// character, plus decoys in the store: case variants and the same name
	// in the other product, so that a wrong match would find a secret.
	var devices []*device
	byName := map[[2]string]*device{}
	for _, n := range deviceNames() {
		pk, dn := n[0], n[1]
		s.putSecret(t, pk, dn)
		for _, decoy := range [][2]string{{pk, swapCase(dn)}, {pk, strings.ToUpper(dn)}, {swapCase(pk), dn}, {otherProduct(pk), dn}, {pk, dn + "x"}} {
			if _, err := s.store.inner.Lookup(context.Background(), secrets.DeviceID{ProductKey: decoy[0], DeviceName: decoy[1]}); err != nil {
				s.putSecret(t, decoy[0], decoy[1])
			}
		}
		cert := s.ca.Device(t, pk, dn)
		d := &device{caller: s.newCaller(t, "device:"+pk+"/"+dn, &cert, ""), leaf: cert.Leaf}
		d.pk, d.dn = pk, dn
		devices = append(devices, d)
		byName[n] = d
	}
	if len(devices) < 100 {
		t.Fatalf("%d devices, want ≥100", len(devices))
	}
	backendCert := func(id string) *tls.Certificate { c := s.ca.Backend(t, id); return &c }
	prov := s.newCaller(t, "backend:"+provA, backendCert(provA), "")
	adm := s.newCaller(t, "backend:"+admin, backendCert(admin), "")
	strangerCaller := s.newCaller(t, "backend:"+stranger, backendCert(stranger), "")
	jwtProv := s.newCaller(t, "backend:"+jwtProvA, nil, s.jwt.es256(t, validClaims(jwtProvA)))
	jwtProvRSA := s.newCaller(t, "backend:"+jwtProvA, nil, s.jwt.rs256(t, validClaims(jwtProvA)))
	jwtAdm := s.newCaller(t, "backend:"+jwtAdmin, nil, s.jwt.rs256(t, validClaims(jwtAdmin)))
	jwtStrange := s.newCaller(t, "backend:"+jwtStranger, nil, s.jwt.es256(t, validClaims(jwtStranger)))
	var productA, productB []*device
	for _, d := range devices {
		if d.pk == pkA {
			productA = append(productA, d)
		} else {
			productB = append(productB, d)
		}
	}

	// Legitimate calls first: the suite would prove nothing if nobody could
	// get credentials at all.
	t.Run("own credentials", func(t *testing.T) {
		before, beforeByID := s.store.snapshot()
		parallel(len(devices), 4, func(i int) {
			d := devices[i]
			for _, tr := range []string{"grpc", "rest"} {
				r := s.do(t, d.caller, attempt{what: "own credentials", transport: tr, rpc: "SignMqttConnect", pk: d.pk, dn: d.dn, want: codes.OK})
				if r.code == codes.OK && (r.username != d.dn+"&"+d.pk || len(r.password) != 64) {
					t.Errorf("%s over %s: username %q, password of %d characters", d.name, tr, r.username, len(r.password))
				}
			}
		})
		after, afterByID := s.store.snapshot()
		if after-before != 2*len(devices) {
			t.Errorf("store saw %d lookups for %d devices × 2 transports", after-before, len(devices))
		}
		for _, d := range devices {
			id := secrets.DeviceID{ProductKey: d.pk, DeviceName: d.dn}
			if n := afterByID[id] - beforeByID[id]; n != 2 {
				t.Errorf("store saw %d lookups of %s, want 2", n, id)
			}
		}
		// The device's own name in any percent-encoding is still itself.
		for _, d := range devices[:12] {
			for _, p := range []string{percentAll(d.dn, false), percentAll(d.dn, true), percentSpecials(d.dn)} {
				r := s.do(t, d.caller, attempt{what: "own, encoded " + p, transport: "rest", rpc: "SignMqttConnect", pk: d.pk, dn: d.dn,
					path: signPathOf(percentAll(d.pk, false), p, "signMqttConnect"), want: codes.OK})
				if r.code == codes.OK && r.username != d.dn+"&"+d.pk {
					t.Errorf("%s with path %s: username %q", d.name, p, r.username)
				}
			}
		}
		// The path names the device: a body naming another is overridden.
		for i, d := range devices[:12] {
			o := devices[(i+1)%len(devices)]
			body := fmt.Sprintf(`{"productKey":%q,"deviceName":%q}`, o.pk, o.dn)
			r := s.do(t, d.caller, attempt{what: "own path, body naming another", transport: "rest", rpc: "SignMqttConnect", pk: d.pk, dn: d.dn, body: body, want: codes.OK})
			if r.code == codes.OK && r.username != d.dn+"&"+d.pk {
				t.Errorf("%s: path of itself, body of %s: got credentials for %q", d.name, o.name, r.username)
			}
		}
		// Backends within their grants, with both kinds of token.
		for _, c := range []struct {
			who *caller
			d   *device
			tr  string
		}{{prov, productA[0], "grpc"}, {prov, productA[1], "rest"}, {adm, productB[0], "grpc"}, {adm, productB[1], "rest"},
			{jwtProv, productA[2], "grpc"}, {jwtProvRSA, productA[3], "rest"}, {jwtAdm, productB[2], "rest"}, {jwtAdm, productA[4], "grpc"}} {
			r := s.do(t, c.who, attempt{what: "backend within its grant", transport: c.tr, rpc: "SignMqttConnect", pk: c.d.pk, dn: c.d.dn, want: codes.OK})
			if r.code == codes.OK && r.username != c.d.dn+"&"+c.d.pk {
				t.Errorf("%s for %s: username %q", c.who.name, c.d.name, r.username)
			}
		}
		// A generated request id when the caller sends none.
		for _, tr := range []string{"grpc", "rest"} {
			s.do(t, devices[0].caller, attempt{what: "no request id", transport: tr, rpc: "SignMqttConnect", pk: devices[0].pk, dn: devices[0].dn, noReqID: true, want: codes.OK})
		}
	})

	var attempts, items tally // calls, and batch items
	t.Run("cross-device", func(t *testing.T) {
		before, _ := s.store.snapshot()
		parallel(len(devices), 4, func(i int) {
			d := devices[i]
			o := devices[(i+1)%len(devices)] // another device, same product mostly
			var x *device                    // a device of the other product
			for j := 1; x == nil; j++ {
				if c := devices[(i+j*numPerProduct)%len(devices)]; c.pk != d.pk {
					x = c
				}
			}
			deny := func(a attempt) {
				a.want = codes.PermissionDenied
				if a.rpc == "" {
					a.rpc = "SignMqttConnect"
				}
				r := s.do(t, d.caller, a)
				attempts.add(a.transport, r.code, 1)
			}
			for _, tr := range []string{"grpc", "rest"} {
				deny(attempt{what: "other device", transport: tr, pk: o.pk, dn: o.dn})
				deny(attempt{what: "other product's device", transport: tr, pk: x.pk, dn: x.dn})
				deny(attempt{what: "own name in the other product", transport: tr, pk: otherProduct(d.pk), dn: d.dn})
				deny(attempt{what: "own productKey, other's name", transport: tr, pk: d.pk, dn: x.dn})
				deny(attempt{what: "name case variant", transport: tr, pk: d.pk, dn: swapCase(d.dn)})
				deny(attempt{what: "name upper case", transport: tr, pk: d.pk, dn: strings.ToUpper(d.dn)})
				deny(attempt{what: "productKey case variant", transport: tr, pk: swapCase(d.pk), dn: d.dn})
				deny(attempt{what: "name with a suffix", transport: tr, pk: d.pk, dn: d.dn + "x"})
				deny(attempt{what: "PreVerify for another device", transport: tr, rpc: "PreVerify", pk: o.pk, dn: o.dn})
			}
			// REST only: encodings of another's names in the path, and a
			// body naming the caller itself.
			rest := func(what, path, body, pk, dn string) {
				rpc := "SignMqttConnect"
				if strings.HasSuffix(path, ":preVerify") {
					rpc = "PreVerify"
				}
				deny(attempt{what: what, transport: "rest", rpc: rpc, pk: pk, dn: dn, path: path, body: body})
			}
			rest("other, all percent-encoded", signPathOf(percentAll(o.pk, false), percentAll(o.dn, false), "signMqttConnect"), "", o.pk, o.dn)
			rest("other, all percent-encoded (lower hex)", signPathOf(o.pk, percentAll(o.dn, true), "signMqttConnect"), "", o.pk, o.dn)
			rest("other, specials percent-encoded (%3A %40 %2E)", signPathOf(o.pk, percentSpecials(o.dn), "signMqttConnect"), "", o.pk, o.dn)
			rest("other product, encoded", signPathOf(percentAll(x.pk, true), percentSpecials(x.dn), "signMqttConnect"), "", x.pk, x.dn)
			rest("own name, case-variant productKey, encoded", signPathOf(percentAll(swapCase(d.pk), false), percentAll(d.dn, false), "signMqttConnect"), "", swapCase(d.pk), d.dn)
			rest("path other, body self (JSON names)", "", fmt.Sprintf(`{"productKey":%q,"deviceName":%q}`, d.pk, d.dn), o.pk, o.dn)
			rest("path other, body self (proto names)", "", fmt.Sprintf(`{"product_key":%q,"device_name":%q,"clientId":"x"}`, d.pk, d.dn), o.pk, o.dn)
			rest("path other product, body self", "", fmt.Sprintf(`{"productKey":%q,"deviceName":%q}`, d.pk, d.dn), x.pk, x.dn)
			rest("PreVerify, other encoded", signPathOf(o.pk, percentAll(o.dn, false), "preVerify"), "", o.pk, o.dn)
			// A device may not batch, not even for itself.
			for _, tr := range []string{"grpc", "rest"} {
				r := s.do(t, d.caller, attempt{what: "device batch", transport: tr, rpc: "BatchSignMqttConnect", want: codes.PermissionDenied,
					batch: []*signerv1.SignMqttConnectRequest{{ProductKey: d.pk, DeviceName: d.dn}, {ProductKey: o.pk, DeviceName: o.dn}}})
				attempts.add(tr, r.code, 1)
			}
		})

		// Backends beyond their grants.
		backendDeny := func(c *caller, rpc string, targets []*device) {
			for _, d := range targets {
				for _, tr := range []string{"grpc", "rest"} {
					r := s.do(t, c, attempt{what: "backend beyond its grant", transport: tr, rpc: rpc, pk: d.pk, dn: d.dn, want: codes.PermissionDenied})
					attempts.add(tr, r.code, 1)
				}
			}
		}
		backendDeny(prov, "SignMqttConnect", productB) // ungranted product
		backendDeny(prov, "PreVerify", productA[:10])  // ungranted RPC
		backendDeny(jwtProv, "SignMqttConnect", productB[:20])
		backendDeny(jwtProvRSA, "PreVerify", productA[:10])
		backendDeny(strangerCaller, "SignMqttConnect", devices[:20]) // not in the policy
		backendDeny(jwtStrange, "SignMqttConnect", devices[:20])

		// Batches: every item of another product denied, per item.
		var itemsB []*signerv1.SignMqttConnectRequest
		var deniedB []codes.Code
		for _, d := range productB {
			itemsB = append(itemsB, &signerv1.SignMqttConnectRequest{ProductKey: d.pk, DeviceName: d.dn})
			deniedB = append(deniedB, codes.PermissionDenied)
		}
		var itemsA []*signerv1.SignMqttConnectRequest
		var deniedA []codes.Code
		for _, d := range productA[:20] {
			itemsA = append(itemsA, &signerv1.SignMqttConnectRequest{ProductKey: d.pk, DeviceName: d.dn})
			deniedA = append(deniedA, codes.PermissionDenied)
		}
		for _, tr := range []string{"grpc", "rest"} {
			// A caller not granted the batch RPC is refused it as a whole;
			// one granted it has each item checked against its products.
			for _, b := range []struct {
				who   *caller
				what  string
				items []*signerv1.SignMqttConnectRequest
				code  codes.Code
				want  []codes.Code
			}{{prov, "batch of an ungranted product", itemsB, codes.OK, deniedB}, {jwtProv, "batch without the batch RPC", itemsA, codes.PermissionDenied, deniedA}} {
				r := s.do(t, b.who, attempt{what: b.what, transport: tr, rpc: "BatchSignMqttConnect", batch: b.items, want: b.code, items: b.want})
				if r.code != codes.OK {
					items.add(tr, r.code, len(b.items))
				}
				for _, c := range r.items {
					items.add(tr, c, 1)
				}
			}
		}

		after, _ := s.store.snapshot()
		if after != before {
			t.Errorf("the secret store saw %d lookups during the cross-device attempts, want 0", after-before)
		}
		g, gd := attempts.total("grpc")
		r, rd := attempts.total("rest")
		ig, igd := items.total("grpc")
		ir, ird := items.total("rest")
		t.Logf("cross-device calls: gRPC %d (%d PERMISSION_DENIED), REST %d (%d HTTP 403); "+
			"batch items: gRPC %d (%d denied), REST %d (%d denied); store lookups: %d", g, gd, r, rd, ig, igd, ir, ird, after-before)
		if g+r < 1000 || g < 400 || r < 400 {
			t.Errorf("only %d gRPC + %d REST calls, want ≥1,000 over both transports", g, r)
		}
		if gd != g || rd != r || igd != ig || ird != ir || ig == 0 || ir == 0 {
			t.Errorf("not every attempt was denied: calls gRPC %v, REST %v; items gRPC %v, REST %v",
				attempts.counts["grpc"], attempts.counts["rest"], items.counts["grpc"], items.counts["rest"])
		}
	})

	t.Run("mixed batch", func(t *testing.T) {
		_, before := s.store.snapshot()
		var items []*signerv1.SignMqttConnectRequest
		var want []codes.Code
		for i := 0; i < 12; i++ {
			d := devices[i*5%len(devices)]
			items = append(items, &signerv1.SignMqttConnectRequest{ProductKey: d.pk, DeviceName: d.dn})
			if d.pk == pkA {
				want = append(want, codes.OK)
			} else {
				want = append(want, codes.PermissionDenied)
			}
		}
		for _, tr := range []string{"grpc", "rest"} {
			s.do(t, prov, attempt{what: "mixed batch", transport: tr, rpc: "BatchSignMqttConnect", batch: items, want: codes.OK, items: want})
		}
		_, after := s.store.snapshot()
		for _, it := range items {
			id := secrets.DeviceID{ProductKey: it.ProductKey, DeviceName: it.DeviceName}
			n := after[id] - before[id]
			if it.ProductKey == pkA && n != 2 {
				t.Errorf("granted item %s: %d lookups, want 2", id, n)
			}
			if it.ProductKey != pkA && n != 0 {
				t.Errorf("denied item %s: %d lookups, want 0", id, n)
			}
		}
	})

	t.Run("spoofed forwarding headers", func(t *testing.T) {
		before, _ := s.store.snapshot()
		attacker, victim := devices[0], devices[7]
		realKey := s.authn.GatewayMetadata(context.Background(), &http.Request{}).Get("x-signerd-internal-key")[0]
		anon := s.newCaller(t, "anonymous", nil, "")
		wrongCA := pkitest.NewCA(t, "attacker CA").Device(t, attacker.pk, attacker.dn)
		forged := s.newCaller(t, "forged", &wrongCA, "")
		victimDER := base64.StdEncoding.EncodeToString(victim.leaf.Raw)
		for _, key := range []string{"0123456789abcdef", realKey} {
			headers := []http.Header{
				{"Grpc-Metadata-X-Signerd-Internal-Key": {key}, "Grpc-Metadata-X-Signerd-Peer-Cert": {victimDER}},
				{"X-Signerd-Internal-Key": {key}, "X-Signerd-Peer-Cert": {victimDER}},
				{"Grpc-Metadata-X-Signerd-Internal-Key": {key}, "Grpc-Metadata-X-Signerd-Peer-Cert-Bin": {base64.StdEncoding.EncodeToString([]byte(victimDER))}},
				{"Grpc-Metadata-X-Signerd-Internal-Key": {key}, "X-Signerd-Internal-Key": {key},
					"Grpc-Metadata-X-Signerd-Peer-Cert": {victimDER}, "X-Signerd-Peer-Cert": {victimDER}},
			}
			for _, h := range headers {
				for _, c := range []struct {
					who  *caller
					want codes.Code
				}{{attacker.caller, codes.PermissionDenied}, {anon, codes.Unauthenticated}, {forged, codes.Unauthenticated}} {
					r := s.do(t, c.who, attempt{what: fmt.Sprintf("REST spoof %v", keysOf(h)), transport: "rest", rpc: "SignMqttConnect",
						pk: victim.pk, dn: victim.dn, header: h, want: c.want})
					if r.httpStatus == http.StatusOK {
						t.Errorf("spoofed headers %v as %s got the victim's credentials", keysOf(h), c.who.name)
					}
				}
				// gRPC callers cannot send the in-process metadata either.
				md := []string{"x-signerd-internal-key", key, "x-signerd-peer-cert", victimDER}
				s.do(t, attacker.caller, attempt{what: "gRPC spoof", transport: "grpc", rpc: "SignMqttConnect", pk: victim.pk, dn: victim.dn, md: md, want: codes.PermissionDenied})
				s.do(t, anon, attempt{what: "gRPC spoof", transport: "grpc", rpc: "SignMqttConnect", pk: victim.pk, dn: victim.dn, md: md, want: codes.Unauthenticated})
			}
		}
		after, _ := s.store.snapshot()
		if after != before {
			t.Errorf("spoofing attempts reached the secret store %d times", after-before)
		}
		// The audited peer of a REST call is the address signerd saw, not
		// what the caller claims in X-Forwarded-For.
		s.do(t, attacker.caller, attempt{what: "own credentials, forged X-Forwarded-For", transport: "rest", rpc: "SignMqttConnect",
			pk: attacker.pk, dn: attacker.dn, header: http.Header{"X-Forwarded-For": {"10.66.66.66"}}, want: codes.OK})
		if strings.Contains(s.audit.String(), "10.66.66.66") {
			t.Error("the audit record's peer holds the caller's X-Forwarded-For claim")
		}
	})

	t.Run("unauthenticated", func(t *testing.T) {
		before, _ := s.store.snapshot()
		d := devices[3]
		now := time.Now()
		badCert := func(o pkitest.Options, ca *pkitest.CA) *tls.Certificate {
			o.URIs = []string{"aliyun-iot://" + d.pk + "/" + d.dn}
			c := ca.Issue(t, o)
			return &c
		}
		attackerCA := pkitest.NewCA(t, "attacker CA")
		callers := []*caller{
			s.newCaller(t, "expired", badCert(pkitest.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}, s.ca), ""),
			s.newCaller(t, "not yet valid", badCert(pkitest.Options{NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}, s.ca), ""),
			s.newCaller(t, "wrong CA", badCert(pkitest.Options{}, attackerCA), ""),
			s.newCaller(t, "self-signed", badCert(pkitest.Options{SelfSigned: true}, s.ca), ""),
			s.newCaller(t, "server certificate", badCert(pkitest.Options{Server: true}, s.ca), ""),
			s.newCaller(t, "no credentials", nil, ""),
			s.newCaller(t, "device cert with a bearer", d.cert, s.jwt.es256(t, validClaims(jwtAdmin))),
		}
		k := s.jwt
		pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		valid := k.rs256(t, validClaims(jwtAdmin))
		parts := strings.Split(valid, ".")
		tampered, err := json.Marshal(validClaims(jwtAdmin))
		if err != nil {
			t.Fatal(err)
		}
		tampered = bytes.Replace(tampered, []byte(jwtAdmin), []byte(jwtProvA), 1)
		with := func(kv ...any) jwt.MapClaims {
			c := validClaims(jwtAdmin)
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(c, kv[i].(string))
				} else {
					c[kv[i].(string)] = kv[i+1]
				}
			}
			return c
		}
		for name, tok := range map[string]string{
			"JWT wrong issuer":           k.rs256(t, with("iss", "https://evil.test")),
			"JWT wrong audience":         k.es256(t, with("aud", "another-service")),
			"JWT expired":                k.es256(t, with("exp", now.Add(-time.Hour).Unix())),
			"JWT not yet valid":          k.rs256(t, with("nbf", now.Add(time.Hour).Unix())),
			"JWT without exp":            k.rs256(t, with("exp", nil)),
			"JWT alg none":               signJWT(t, jwt.SigningMethodNone, "rsa-1", validClaims(jwtAdmin), jwt.UnsafeAllowNoneSignatureType),
			"JWT HS256 with the RSA key": signJWT(t, jwt.SigningMethodHS256, "rsa-1", validClaims(jwtAdmin), pubPEM),
			"JWT unknown kid":            signJWT(t, jwt.SigningMethodRS256, "rsa-9", validClaims(jwtAdmin), k.rsa),
			"JWT tampered payload":       parts[0] + "." + base64.RawURLEncoding.EncodeToString(tampered) + "." + parts[2],
			"JWT of another issuer":      newJWTIssuer(t).es256(t, validClaims(jwtAdmin)),
		} {
			callers = append(callers, s.newCaller(t, name, nil, tok))
		}
		for _, c := range callers {
			for _, tr := range []string{"grpc", "rest"} {
				for _, rpc := range []string{"SignMqttConnect", "PreVerify"} {
					s.do(t, c, attempt{what: c.name, transport: tr, rpc: rpc, pk: d.pk, dn: d.dn, want: codes.Unauthenticated})
				}
				s.do(t, c, attempt{what: c.name + " batch", transport: tr, rpc: "BatchSignMqttConnect", want: codes.Unauthenticated,
					batch: []*signerv1.SignMqttConnectRequest{{ProductKey: d.pk, DeviceName: d.dn}}})
			}
		}
		after, _ := s.store.snapshot()
		if after != before {
			t.Errorf("unauthenticated callers reached the secret store %d times", after-before)
		}
	})

	t.Run("revocation by removal", func(t *testing.T) {
		d := devices[5]
		cert := s.ca2.Device(t, d.pk, d.dn)
		c := s.newCaller(t, d.name, &cert, "")
		for _, tr := range []string{"grpc", "rest"} {
			s.do(t, c, attempt{what: "second CA, before removal", transport: tr, rpc: "SignMqttConnect", pk: d.pk, dn: d.dn, want: codes.OK})
		}
		if err := os.WriteFile(s.caFile, s.ca.PEM, 0o600); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(patience)
		for {
			r := s.do(t, c, attempt{what: "second CA, being removed", transport: "grpc", rpc: "SignMqttConnect", pk: d.pk, dn: d.dn,
				anyOf: []codes.Code{codes.OK, codes.Unauthenticated}})
			if r.code == codes.Unauthenticated {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a certificate of the removed CA still accepted after %v", patience)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, tr := range []string{"grpc", "rest"} {
			s.do(t, c, attempt{what: "second CA, removed", transport: tr, rpc: "SignMqttConnect", pk: d.pk, dn: d.dn, want: codes.Unauthenticated})
			s.do(t, d.caller, attempt{what: "first CA, still in the bundle", transport: tr, rpc: "SignMqttConnect", pk: d.pk, dn: d.dn, want: codes.OK})
		}
	})

	t.Run("audit", func(t *testing.T) { s.verifyAudit(t) })
	t.Run("log scan", func(t *testing.T) { s.scanLogs(t) })
}

func keysOf(h http.Header) []string {
	var ks []string
	for k := range h {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestRateLimitAcrossTransports: a caller over its budget gets
// RESOURCE_EXHAUSTED (HTTP 429) with Retry-After, other callers are not
// affected, and the caller recovers once its bucket refills.
func TestRateLimitAcrossTransports(t *testing.T) {
	s := startSecure(t, secOptions{rate: limits.NewPerCaller(50, 2, 0), backendRate: limits.NewPerCaller(50, 2, 0)})
	var devs []*caller
	for _, n := range deviceNames()[:4] {
		s.putSecret(t, n[0], n[1])
		cert := s.ca.Device(t, n[0], n[1])
		c := s.newCaller(t, "device:"+n[0]+"/"+n[1], &cert, "")
		c.pk, c.dn = n[0], n[1]
		devs = append(devs, c)
	}
	bcert := s.ca.Backend(t, admin)
	adm := s.newCaller(t, "backend:"+admin, &bcert, "")
	jwtAdm := s.newCaller(t, "backend:"+jwtAdmin, nil, s.jwt.es256(t, validClaims(jwtAdmin)))

	exhaust := func(c *caller, tr string, target *caller) {
		t.Helper()
		a := attempt{what: "over budget", transport: tr, rpc: "SignMqttConnect", pk: target.pk, dn: target.dn,
			anyOf: []codes.Code{codes.OK, codes.ResourceExhausted}}
		// Rounds of concurrent calls: more than the burst at once, however
		// slow the machine.
		for round := 0; round < 100; round++ {
			var exhausted atomic.Bool
			parallel(8, 8, func(int) {
				if r := s.do(t, c, a); r.code == codes.ResourceExhausted {
					exhausted.Store(true)
				}
			})
			if exhausted.Load() {
				return
			}
		}
		t.Fatalf("%s over %s: no RESOURCE_EXHAUSTED in 100 rounds of 8 concurrent calls at 50/s burst 2", c.name, tr)
	}
	recoverWithin := func(c *caller, tr string, target *caller) {
		t.Helper()
		deadline := time.Now().Add(patience)
		for {
			a := attempt{what: "recovering", transport: tr, rpc: "SignMqttConnect", pk: target.pk, dn: target.dn,
				anyOf: []codes.Code{codes.OK, codes.ResourceExhausted}}
			if r := s.do(t, c, a); r.code == codes.OK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s over %s did not recover within %v", c.name, tr, patience)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	for i, tr := range []string{"grpc", "rest"} {
		d, other := devs[2*i], devs[2*i+1]
		exhaust(d, tr, d)
		// Another caller's budget is its own.
		s.do(t, other, attempt{what: "another device meanwhile", transport: tr, rpc: "SignMqttConnect", pk: other.pk, dn: other.dn, want: codes.OK})
		recoverWithin(d, tr, d)
	}
	// Backends have budgets of their own, per identity.
	for _, tr := range []string{"grpc", "rest"} {
		exhaust(adm, tr, devs[0])
		s.do(t, jwtAdm, attempt{what: "another backend meanwhile", transport: tr, rpc: "SignMqttConnect", pk: devs[1].pk, dn: devs[1].dn, want: codes.OK})
		recoverWithin(adm, tr, devs[0])
	}
	s.verifyAudit(t)
	s.scanLogs(t)
}
