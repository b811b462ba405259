package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// opsFixture is signerd outside -dev with everything an operator watches:
// real Vault (renewable token), the emulated platform for PreVerify, TLS,
// a device certificate with a tight rate limit, a tiny cache.
type opsFixture struct {
	p      *proc
	vault  *vaulttest.Server
	emu    *platformtest.Server
	device *tls.Config
}

func startOps(t *testing.T, extra ...string) *opsFixture {
	t.Helper()
	ctx := context.Background()
	srv := vaulttest.StartT(t)
	for i := 0; i < 5; i++ {
		if err := srv.PutDevice(ctx, "a1Ops", fmt.Sprintf("ops-dev-%02d", i), "0123456789abcdef0123456789abcdef"); err != nil {
			t.Fatal(err)
		}
	}
	// A renewable 2 s token: renewals happen within the test.
	tok, err := srv.Token(ctx, 2*time.Second, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	emu := platformtest.New(t)
	emu.AddDevice("a1Ops", "ops-dev-00", "0123456789abcdef0123456789abcdef")
	products := writeFile(t, "products.yaml", "defaults:\n  authBaseUrl: "+emu.URL()+"\n")
	platformCA := writeFile(t, "platform-ca.pem", string(emu.CertPEM()))
	tc := newTLSFixture(t)
	args := append(tc.args,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0",
		"-vault-addr", srv.Addr, "-vault-token-file", writeFile(t, "token", tok),
		"-products", products, "-platform-ca-file", platformCA,
		"-cache-size", "2", "-rate-limit", "0.001", "-rate-burst", "1")
	p := startSignerd(t, append(args, extra...)...)
	p.tls = tc.backend
	dev := tc.ca.Device(t, "a1Ops", "ops-dev-00")
	return &opsFixture{p: p, vault: srv, emu: emu, device: pkitest.ClientTLS(tc.ca.Pool(), &dev)}
}

func (f *opsFixture) metricsAddr(t *testing.T) string {
	t.Helper()
	m := f.p.find(func(m map[string]any) bool { return m["msg"] == "listening" })
	addr, _ := m["metrics"].(string)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("no metrics address in %v", m)
	}
	return addr
}

// TestE2EMetricsAndReadiness drives every path an operator watches and then
// checks that /metrics has non-zero samples of every signerd family, and
// that /readyz flips with Vault.
func TestE2EMetricsAndReadiness(t *testing.T) {
	ctx := context.Background()
	f := startOps(t)
	c := f.p.grpcClient(t)
	for i := 0; i < 5; i++ { // 5 devices through a 2-entry cache: misses, hits, evictions
		for j := 0; j < 2; j++ {
			if _, err := c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Ops", DeviceName: fmt.Sprintf("ops-dev-%02d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := c.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: "a1Ops", DeviceName: "ops-dev-00"}); err != nil {
		t.Fatalf("PreVerify: %v", err)
	}
	// The device's budget is one call: the second is refused.
	devConn, err := grpc.NewClient(f.p.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(f.device)))
	if err != nil {
		t.Fatal(err)
	}
	defer devConn.Close()
	dc := signerv1.NewSignerServiceClient(devConn)
	own := &signerv1.SignMqttConnectRequest{ProductKey: "a1Ops", DeviceName: "ops-dev-00"}
	if _, err := dc.SignMqttConnect(ctx, own); err != nil {
		t.Fatalf("device's own first call: %v", err)
	}
	if _, err := dc.SignMqttConnect(ctx, own); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("device's second call = %v, want RESOURCE_EXHAUSTED", err)
	}
	time.Sleep(3 * time.Second) // let the 2 s Vault token renew

	body := get(t, "http://"+f.metricsAddr(t)+"/metrics")
	families := []string{
		"signerd_grpc_server_handled_total",
		"signerd_grpc_server_handling_seconds_count",
		"signerd_secret_cache_lookups_total",
		"signerd_secret_cache_evictions_total",
		"signerd_secret_cache_entries",
		"signerd_vault_request_duration_seconds_count",
		"signerd_vault_requests_total",
		"signerd_platform_preverify_duration_seconds_count",
		"signerd_rate_limited_total",
		"signerd_vault_token_renewals_total",
	}
	for _, fam := range families {
		if !hasNonZero(body, fam) {
			t.Errorf("/metrics has no non-zero sample of %s", fam)
		}
	}
	for _, want := range []string{`transport="grpc"`, `grpc_code="ResourceExhausted"`, `outcome="ok"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	if code := f.p.httpGet(t, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d with Vault up", code)
	}
	f.vault.Stop()
	if code := f.p.httpGet(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Vault down, want 503", code)
	}
	if code := f.p.httpGet(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d with Vault down, want 200 (liveness does not depend on Vault)", code)
	}
}

// TestE2EDrainUnderLoad sends SIGTERM while calls are in flight: they
// complete, new calls are refused, and the process exits within its grace
// period.
func TestE2EDrainUnderLoad(t *testing.T) {
	ctx := context.Background()
	f := startOps(t, "-shutdown-timeout", "10s", "-preverify-rate-limit", "0")
	c := f.p.grpcClient(t)
	// A slow platform keeps PreVerify calls in flight when SIGTERM arrives.
	f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: 2 * time.Second})
	var inflight sync.WaitGroup
	var slowOK, slowFailed atomic.Int64
	started := make(chan struct{}, 4)
	for i := 0; i < 4; i++ {
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			started <- struct{}{}
			_, err := c.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: "a1Ops", DeviceName: "ops-dev-00", ClientId: "c" + strconv.Itoa(i)})
			if err != nil {
				slowFailed.Add(1)
				t.Logf("in-flight PreVerify: %v", err)
				return
			}
			slowOK.Add(1)
		}()
	}
	// A steady stream of fast calls while draining.
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Add(1)
	go func() {
		defer load.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Ops", DeviceName: "ops-dev-01"})
		}
	}()
	for i := 0; i < 4; i++ {
		<-started
	}
	time.Sleep(500 * time.Millisecond) // the slow calls have reached the platform

	start := time.Now()
	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once the listeners close.
	refused := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn, err := grpc.NewClient(f.p.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(f.p.tls)))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err = signerv1.NewSignerServiceClient(conn).SignMqttConnect(cctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Ops", DeviceName: "ops-dev-01"}, grpc.WaitForReady(false))
		cancel()
		conn.Close()
		if status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
			refused = true
			break
		}
	}
	inflight.Wait()
	close(stop)
	load.Wait()

	done := make(chan error, 1)
	go func() { <-f.p.readDone; done <- f.p.cmd.Wait() }()
	select {
	case err := <-done:
		f.p.waited = true
		if err != nil {
			t.Errorf("signerd exited with %v, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("signerd still running 20 s after SIGTERM (shutdown timeout 10 s)")
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !refused {
		t.Error("new connections were still served after SIGTERM")
	}
	if slowOK.Load() != 4 || slowFailed.Load() != 0 {
		t.Errorf("in-flight calls: %d completed, %d failed; want all 4 completed", slowOK.Load(), slowFailed.Load())
	}
	if !f.p.hasLog(t, "stopped") {
		t.Error("no \"stopped\" log line")
	}
}

var sample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.e+-]+|NaN|\+Inf)$`)

// hasNonZero reports whether the exposition has a sample of family > 0.
func hasNonZero(body, family string) bool {
	for _, line := range strings.Split(body, "\n") {
		m := sample.FindStringSubmatch(line)
		if m == nil || m[1] != family {
			continue
		}
		if v, err := strconv.ParseFloat(m[3], 64); err == nil && v > 0 {
			return true
		}
	}
	return false
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return string(b)
}

// TestE2EDrainClosesBothListenersAtOnce holds one call in flight on each
// transport (a slow platform answers PreVerify), sends SIGTERM, and checks
// that new TCP connections to both the gRPC and the REST port are refused
// while those calls are still running, and that both calls then complete.
// A listener that keeps accepting until the other transport has drained
// would let new clients in only to cut them off.
func TestE2EDrainClosesBothListenersAtOnce(t *testing.T) {
	ctx := context.Background()
	f := startOps(t, "-shutdown-timeout", "60s", "-preverify-rate-limit", "0", "-platform-timeout", "30s")
	f.emu.AddDevice("a1Ops", "ops-dev-01", "0123456789abcdef0123456789abcdef")
	// Long enough that the listeners' state can be probed many times over
	// while both calls wait; the test does not depend on its length.
	f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: 3 * time.Second})

	grpcDone := make(chan error, 1)
	go func() {
		_, err := f.p.grpcClient(t).PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: "a1Ops", DeviceName: "ops-dev-00", ClientId: "grpc-inflight"})
		grpcDone <- err
	}()
	restDone := make(chan error, 1)
	go func() {
		u := f.p.baseURL() + "/v1/products/a1Ops/devices/ops-dev-01:preVerify"
		resp, err := f.p.httpClient().Post(u, "application/json", strings.NewReader(`{"clientId":"rest-inflight"}`))
		if err != nil {
			restDone <- err
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			restDone <- fmt.Errorf("status %d: %s", resp.StatusCode, b)
			return
		}
		restDone <- nil
	}()
	// Both calls have reached the platform: they are in flight in signerd.
	waitFor(t, "both in-flight calls to reach the platform", func() bool { return f.emu.Calls() >= 2 })

	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var grpcErr, restErr error
	grpcFinished, restFinished := false, false
	for {
		g, h := refused(f.p.grpcAddr), refused(f.p.httpAddr)
		if g && h {
			break
		}
		select {
		case grpcErr = <-grpcDone:
			grpcFinished = true
		case restErr = <-restDone:
			restFinished = true
		default:
		}
		if grpcFinished || restFinished {
			t.Fatalf("an in-flight call finished (gRPC %v, REST %v) while new connections were still accepted (gRPC port refused: %v, REST port refused: %v)", grpcFinished, restFinished, g, h)
		}
		if f.p.exited() {
			t.Fatalf("signerd exited before its in-flight calls finished; stderr:\n%s", f.p.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !grpcFinished {
		grpcErr = <-grpcDone
	}
	if !restFinished {
		restErr = <-restDone
	}
	if grpcErr != nil {
		t.Errorf("in-flight gRPC PreVerify: %v, want success", grpcErr)
	}
	if restErr != nil {
		t.Errorf("in-flight REST PreVerify: %v, want success", restErr)
	}
	f.p.waitExit(t, "SIGTERM")
}

// refused reports whether a TCP connection to addr is refused.
func refused(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// waitFor polls cond until it holds; guard turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(guard); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
