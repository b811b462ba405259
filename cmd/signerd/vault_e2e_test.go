package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"crypto/tls"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/internal/vectors"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// TestE2EVault runs the real binary against a real Vault server: the
// known-answer vectors loaded into Vault KV must come out byte-identical over
// both transports; a Vault outage must leave cached devices served and give
// uncached ones UNAVAILABLE within 2 s; Vault's return must heal signerd
// without a restart.
func TestE2EVault(t *testing.T) {
	ctx := context.Background()
	cs := vectors.MustLoad()
	srv := vaulttest.StartT(t)
	const uncachedPK, uncachedDN = "a1Outage", "never-asked-01"
	load := func() {
		t.Helper()
		for _, c := range cs {
			if err := srv.PutDevice(ctx, c.Input.ProductKey, c.Input.DeviceName, c.Input.DeviceSecret); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.PutDevice(ctx, uncachedPK, uncachedDN, "0123456789abcdef0123456789abcdef"); err != nil {
			t.Fatal(err)
		}
	}
	load()
	// The dev server's root token survives its restart (the same id is
	// given again); a policy-bound token would not, as a dev server keeps
	// everything in memory. Policy enforcement is tested in package secrets.
	tokenFile := writeFile(t, "vault-token", srv.RootToken+"\n")
	tc := newTLSFixture(t)
	p := startSignerd(t, append(tc.args,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-vault-addr", srv.Addr, "-vault-token-file", tokenFile,
		"-cache-ttl", "300ms", "-cache-max-stale", "1h", "-rate-limit", "0")...)
	if p.find(func(m map[string]any) bool { return m["msg"] == "vault store ready" }) == nil {
		t.Fatalf("signerd did not log \"vault store ready\"; stderr:\n%s", p.logs())
	}
	p.tls = tc.backend
	client := p.grpcClient(t)

	var passwords []string
	for i, c := range cs {
		req := vectorRequest(t, c)
		g, err := client.SignMqttConnect(ctx, req)
		if err != nil {
			t.Fatalf("case %d: gRPC: %v", i, err)
		}
		r, err := p.postREST(t, c.Input.ProductKey, c.Input.DeviceName, restBody(t, req))
		if err != nil {
			t.Fatalf("case %d: REST: %v", i, err)
		}
		for transport, got := range map[string]*signerv1.SignMqttConnectResponse{"gRPC": g, "REST": r} {
			if got.GetClientId() != c.Expect.ClientID || got.GetUsername() != c.Expect.Username || got.GetPassword() != c.Expect.Password {
				t.Errorf("case %d: %s answer = %q, %q, %q; want %q, %q, %q", i, transport,
					got.GetClientId(), got.GetUsername(), got.GetPassword(), c.Expect.ClientID, c.Expect.Username, c.Expect.Password)
			}
		}
		passwords = append(passwords, g.GetPassword())
	}
	if code := p.httpGet(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d with Vault up, want 200", code)
	}

	// Vault goes away.
	srv.Stop()
	time.Sleep(400 * time.Millisecond) // past -cache-ttl: only stale serving can answer
	cached := vectorRequest(t, cs[0])
	if g, err := client.SignMqttConnect(ctx, cached); err != nil || g.GetPassword() != cs[0].Expect.Password {
		t.Errorf("cached device over gRPC during the outage: %v", err)
	}
	if _, err := p.postREST(t, cs[0].Input.ProductKey, cs[0].Input.DeviceName, restBody(t, cached)); err != nil {
		t.Errorf("cached device over REST during the outage: %v", err)
	}
	uncached := &signerv1.SignMqttConnectRequest{ProductKey: uncachedPK, DeviceName: uncachedDN}
	start := time.Now()
	_, err := client.SignMqttConnect(ctx, uncached)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("uncached device over gRPC during the outage: %v, want UNAVAILABLE", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("uncached device took %s to fail, want ≤2 s", d)
	}
	start = time.Now()
	restPath := "/v1/products/" + uncachedPK + "/devices/" + url.PathEscape(uncachedDN) + ":signMqttConnect"
	if code := p.httpPost(t, restPath, "{}"); code != http.StatusServiceUnavailable {
		t.Errorf("uncached device over REST during the outage: HTTP %d, want 503", code)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("uncached device over REST took %s to fail, want ≤2 s", d)
	}
	if code := p.httpGet(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Vault down, want 503", code)
	}

	// Vault comes back (empty, as a dev server does): signerd heals itself.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	load()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, err := client.SignMqttConnect(ctx, uncached)
		if err == nil && g.GetPassword() != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("signerd did not recover after Vault returned: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := p.httpGet(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d after Vault returned, want 200", code)
	}
	p.stop(t, syscall.SIGTERM)

	logs := p.logs()
	for _, c := range cs {
		if strings.Contains(logs, c.Input.DeviceSecret) {
			t.Errorf("logs contain the device secret of %s/%s", c.Input.ProductKey, c.Input.DeviceName)
		}
	}
	for _, pw := range passwords {
		if strings.Contains(logs, pw) {
			t.Errorf("logs contain a returned password")
		}
	}
	if strings.Contains(logs, srv.RootToken) {
		t.Error("logs contain the Vault token")
	}
}

func (p *proc) httpGet(t *testing.T, path string) int {
	t.Helper()
	resp, err := p.httpClient().Get(p.baseURL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (p *proc) httpPost(t *testing.T, path, body string) int {
	t.Helper()
	resp, err := p.httpClient().Post(p.baseURL()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// tlsFixture is a CA, signerd's server certificate, a backend client
// certificate and a policy granting that backend everything.
type tlsFixture struct {
	args    []string
	backend *tls.Config
	ca      *pkitest.CA
}

func newTLSFixture(t *testing.T) tlsFixture {
	t.Helper()
	dir := t.TempDir()
	ca := pkitest.NewCA(t, "signerd test CA")
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	caFile := writeFile(t, "ca.pem", string(ca.PEM))
	const backendID = "spiffe://signerd.test/fleet/provisioner"
	policy := writeFile(t, "policy.yaml", "backends:\n  - identity: "+backendID+"\n    products: [\"*\"]\n    rpcs: [\"*\"]\n")
	cert := ca.Backend(t, backendID)
	return tlsFixture{
		args: []string{"-tls-cert-file", certFile, "-tls-key-file", keyFile, "-client-ca-file", caFile,
			"-policy-file", policy, "-audit-log", filepath.Join(dir, "audit.log")},
		backend: pkitest.ClientTLS(ca.Pool(), &cert),
		ca:      ca,
	}
}
