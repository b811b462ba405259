package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// The fleet of the replica tests: 1,000 devices in Vault and on the
// emulated platform.
const (
	repPK      = "a1ReplicaPK"
	repDevices = 1000
)

func repName(i int) string          { return fmt.Sprintf("rep-%04d", i) }
func repSecret(dn string) string    { return "s3cr3t-" + dn + "-0123456789abcdef" }
func repTokenPath(dn string) string { return "preverify-tokens/" + repPK + "/" + dn }
func repPolicy(identity string) string {
	return "backends:\n  - identity: " + identity + "\n    products: [\"*\"]\n    rpcs: [\"*\"]\n"
}

const repBackend = "spiffe://signerd.test/fleet/provisioner"

// fleet is what N signerd replicas share: one Vault (signerd logs in with a
// token of the shipped policy, so the policy is what allows the token
// records), one platform emulator, one CA.
type fleet struct {
	vault *vaulttest.Server
	emu   *platformtest.Server
	ca    *pkitest.CA
	args  []string // every replica's flags
}

func startFleet(t *testing.T, devices int, extra ...string) *fleet {
	t.Helper()
	ctx := context.Background()
	v := vaulttest.StartT(t)
	emu := platformtest.New(t, platformtest.WithMQTT("mqtt.test.local", 8883))
	ca := pkitest.NewCA(t, "signerd replicas e2e CA")
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < devices; i += 8 {
				if err := v.PutDevice(ctx, repPK, repName(i), repSecret(repName(i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range devices {
		emu.AddDevice(repPK, repName(i), repSecret(repName(i)))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	token, err := v.Token(ctx, time.Hour, 24*time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	products := writeFile(t, "products.yaml", fmt.Sprintf(
		"defaults:\n  host: mqtt.test.local\n  tcpPort: 1883\n  tlsPort: 8883\n  wssPort: 443\n  authBaseUrl: %s\n", emu.URL()))
	args := []string{
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off",
		"-tls-cert-file", certFile, "-tls-key-file", keyFile,
		"-client-ca-file", writeFile(t, "ca.pem", string(ca.PEM)),
		"-policy-file", writeFile(t, "policy.yaml", repPolicy(repBackend)), "-audit-log", filepath.Join(dir, "audit.log"),
		"-vault-addr", v.Addr, "-vault-token-file", writeFile(t, "vault-token", token),
		"-products", products, "-platform-ca-file", writeFile(t, "platform-ca.pem", string(emu.CertPEM())),
		// A loaded test machine: no call may fail for being slow, and no
		// platform call may be retried for it (that would count twice).
		"-vault-timeout", "20s", "-platform-timeout", "30s", "-max-in-flight", "0",
	}
	return &fleet{vault: v, emu: emu, ca: ca, args: append(args, extra...)}
}

// start starts one replica with the fleet's flags and env.
func (f *fleet) start(t *testing.T, env ...string) *proc {
	t.Helper()
	p := startSignerdEnv(t, env, f.args...)
	backend := f.ca.Backend(t, repBackend)
	p.tls = pkitest.ClientTLS(f.ca.Pool(), &backend)
	return p
}

// dial is a gRPC client of p that the caller closes.
func dial(t *testing.T, p *proc) (*grpc.ClientConn, signerv1.SignerServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(p.tls)))
	if err != nil {
		t.Fatal(err)
	}
	return conn, signerv1.NewSignerServiceClient(conn)
}

// TestE2EReplicasShareTokens: three replicas of the real binary against one
// Vault and one platform; 1,000 devices, each asked through all three at
// once, cost 1,000 platform calls, and every replica hands out the same
// token per device; a force_refresh at one replica replaces the token at
// all of them.
func TestE2EReplicasShareTokens(t *testing.T) {
	f := startFleet(t, repDevices, "-rate-limit", "0", "-preverify-rate-limit", "0", "-backend-rate-limit", "0")
	var reps []*proc
	var clients []signerv1.SignerServiceClient
	for range 3 {
		p := f.start(t)
		if !p.hasLog(t, "PreVerify tokens shared by the replicas in Vault") {
			t.Fatalf("replica does not share its tokens; stderr:\n%s", p.logs())
		}
		reps = append(reps, p)
		clients = append(clients, p.grpcClient(t))
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()

	ask := func(c signerv1.SignerServiceClient, dn string, force bool) (*signerv1.PreVerifyResponse, error) {
		return c.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: repPK, DeviceName: dn, ForceRefresh: force})
	}
	// Every device through all three replicas at the same moment, 32
	// devices (96 calls) in flight at a time.
	tokens := make([][3]string, repDevices)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, 3*repDevices)
	for i := range repDevices {
		sem <- struct{}{}
		var dev sync.WaitGroup
		for r := range 3 {
			wg.Add(1)
			dev.Add(1)
			go func() {
				defer wg.Done()
				defer dev.Done()
				resp, err := ask(clients[r], repName(i), false)
				if err != nil {
					errs <- fmt.Errorf("%s at replica %d: %w", repName(i), r, err)
					return
				}
				if _, ok := f.emu.Issued(resp.GetIotId(), resp.GetIotToken()); !ok {
					errs <- fmt.Errorf("%s at replica %d: a token the platform did not issue", repName(i), r)
				}
				tokens[i][r] = resp.GetIotToken()
			}()
		}
		go func() { dev.Wait(); <-sem }()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	calls := f.emu.Calls()
	t.Logf("MEASURED: %d devices asked through 3 replicas at once (%d calls) in %v: %d platform calls (%.2f per device)",
		repDevices, 3*repDevices, elapsed.Round(time.Millisecond), calls, float64(calls)/repDevices)
	if calls != repDevices {
		t.Errorf("platform calls = %d, want %d (one per device)", calls, repDevices)
	}
	for i, tk := range tokens {
		if tk[0] == "" || tk[1] != tk[0] || tk[2] != tk[0] {
			t.Fatalf("%s: the replicas handed out different tokens", repName(i))
		}
	}
	// The token is Vault's record, and nowhere in the replicas' logs.
	rec, err := f.vault.Client.KVv2("iot").Get(ctx, repTokenPath(repName(7)))
	if err != nil || !strings.Contains(fmt.Sprint(rec.Data["tokens"]), tokens[7][0]) {
		t.Errorf("Vault's record of %s does not hold the token handed out (%v)", repName(7), err)
	}
	for r, p := range reps {
		for _, tk := range tokens[:50] {
			if strings.Contains(p.logs(), tk[0]) {
				t.Fatalf("replica %d logged a token", r)
			}
		}
	}

	// force_refresh at one replica: afterwards every replica hands out the
	// new token, none the old one; meanwhile the other replicas keep being
	// asked about the same devices.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var seenOld atomic.Int64
	forced := make([]atomic.Value, 30)
	for r := 1; r < 3; r++ {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := n % len(forced)
				want, done := forced[i].Load().(string)
				resp, err := ask(clients[r], repName(i), false)
				if err != nil {
					t.Errorf("%s at replica %d during refreshes: %v", repName(i), r, err)
					return
				}
				if done && resp.GetIotToken() != want {
					seenOld.Add(1)
				}
			}
		}()
	}
	for i := range forced {
		resp, err := ask(clients[i%3], repName(i), true)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetIotToken() == tokens[i][0] {
			t.Fatalf("%s: force_refresh handed out the old token", repName(i))
		}
		forced[i].Store(resp.GetIotToken())
		for r, c := range clients {
			got, err := ask(c, repName(i), false)
			if err != nil {
				t.Fatal(err)
			}
			if got.GetIotToken() != resp.GetIotToken() {
				t.Errorf("%s: replica %d hands out another token after replica %d's force_refresh", repName(i), r, i%3)
			}
		}
	}
	close(stop)
	bg.Wait()
	// force_refresh is limited per device fleet-wide: going round the
	// replicas does not buy a device more refreshes.
	for i := range 3 {
		if _, err := ask(clients[(i+1)%3], repName(i), true); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s: a second force_refresh at another replica = %v, want RESOURCE_EXHAUSTED", repName(i), err)
		}
	}
	if n := seenOld.Load(); n > 0 {
		t.Errorf("%d answers handed out a replaced token after its force_refresh had returned", n)
	}
	if got, want := f.emu.Calls(), repDevices+len(forced); got != want {
		t.Errorf("platform calls after %d forced refreshes = %d, want %d", len(forced), got, want)
	}
}

// TestE2ERateLimitReplicas: with -rate-limit-replicas (from the
// environment, as the manifests set it) three replicas together allow a
// caller the configured burst, not three times it.
func TestE2ERateLimitReplicas(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		wantOK   int
		wantDeny int
	}{
		{"SIGNERD_RATE_LIMIT_REPLICAS=3", []string{"SIGNERD_RATE_LIMIT_REPLICAS=3"}, 3, 3},
		{"unset: each replica allows the whole burst", nil, 6, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Burst 3 and a rate too slow to refill during the test.
			f := startFleet(t, 2, "-backend-rate-limit", "0.003", "-backend-rate-burst", "3")
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			ok, denied := 0, 0
			var clients []signerv1.SignerServiceClient
			for range 3 {
				clients = append(clients, f.start(t, tc.env...).grpcClient(t))
			}
			for range 2 {
				for _, c := range clients {
					_, err := c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: repPK, DeviceName: repName(1)})
					switch status.Code(err) {
					case codes.OK:
						ok++
					case codes.ResourceExhausted:
						denied++
					default:
						t.Fatalf("SignMqttConnect: %v", err)
					}
				}
			}
			if ok != tc.wantOK || denied != tc.wantDeny {
				t.Errorf("6 calls over 3 replicas: %d allowed, %d refused; want %d, %d", ok, denied, tc.wantOK, tc.wantDeny)
			}
		})
	}
}

// lb spreads calls over the live replicas as a load balancer does: round
// robin per call, and a call that never reached signerd (connection
// refused, the connection closing under it: the transport's errors, not
// an answer of signerd's) is sent to the next replica. That is what
// Envoy's retry_on "connect-failure,refused-stream,reset", a gRPC client's
// transparent retry and Kubernetes' own endpoint removal do; a call that
// signerd answered, with any status, is never retried: it counts.
type lb struct {
	mu      sync.Mutex
	members []*member
	next    int
	retries atomic.Int64
	reasons sync.Map // transport error → *atomic.Int64, for the report
}

type member struct {
	p      *proc
	conn   *grpc.ClientConn
	client signerv1.SignerServiceClient
}

func (b *lb) add(m *member) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.members = append(b.members, m)
}

func (b *lb) remove(m *member) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.members {
		if x == m {
			b.members = append(b.members[:i], b.members[i+1:]...)
			return
		}
	}
}

func (b *lb) pick() *member {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	return b.members[b.next%len(b.members)]
}

// notReached returns which transport error err is, or "" if it is none:
// then signerd answered. signerd's own UNAVAILABLE answers carry its
// messages, which none of these are.
func notReached(err error) string {
	if status.Code(err) != codes.Unavailable {
		return ""
	}
	msg := status.Convert(err).Message()
	for _, s := range []string{"connection refused", "Error while dialing", "transport is closing", "error reading from server", "connection reset", "GOAWAY", "EOF"} {
		if strings.Contains(msg, s) {
			return s
		}
	}
	return ""
}

func (b *lb) call(do func(signerv1.SignerServiceClient) error) error {
	var err error
	for range 6 {
		err = do(b.pick().client)
		reason := notReached(err)
		if reason == "" {
			return err
		}
		b.retries.Add(1)
		n, _ := b.reasons.LoadOrStore(reason, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	return err
}

func (b *lb) report() string {
	var parts []string
	b.reasons.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%q: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	return strings.Join(parts, ", ")
}

// TestE2ERollingRestart: three replicas under steady load (SignMqttConnect
// and PreVerify, from 16 callers through lb) are replaced one at a time as
// a rolling update does: a fresh replica starts and joins, an old one gets
// SIGTERM and leaves the balancer when it has exited. No call fails, every
// signature is right, and PreVerify answers stay one token per device.
func TestE2ERollingRestart(t *testing.T) {
	f := startFleet(t, repDevices, "-rate-limit", "0", "-preverify-rate-limit", "0", "-backend-rate-limit", "0")
	b := &lb{}
	join := func() *member {
		p := f.start(t)
		conn, c := dial(t, p)
		m := &member{p: p, conn: conn, client: c}
		b.add(m)
		return m
	}
	var old []*member
	for range 3 {
		old = append(old, join())
	}

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, failed atomic.Int64
	var mu sync.Mutex
	tokens := map[string]string{} // device → the one token handed out
	var failures []string
	fail := func(format string, a ...any) {
		failed.Add(1)
		mu.Lock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, a...))
		}
		mu.Unlock()
	}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				dn := repName((w*7919 + n*31) % repDevices)
				calls.Add(1)
				if n%4 == 3 {
					var resp *signerv1.PreVerifyResponse
					err := b.call(func(c signerv1.SignerServiceClient) (err error) {
						resp, err = c.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: repPK, DeviceName: dn})
						return err
					})
					if err != nil {
						fail("PreVerify %s: %v", dn, err)
						continue
					}
					mu.Lock()
					if prev, ok := tokens[dn]; ok && prev != resp.GetIotToken() {
						mu.Unlock()
						fail("PreVerify %s: another token than before", dn)
						continue
					}
					tokens[dn] = resp.GetIotToken()
					mu.Unlock()
					continue
				}
				ts := int64(1_800_000_000_000 + n)
				var resp *signerv1.SignMqttConnectResponse
				err := b.call(func(c signerv1.SignerServiceClient) (err error) {
					resp, err = c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: repPK, DeviceName: dn, TimestampMs: &ts})
					return err
				})
				if err != nil {
					fail("SignMqttConnect %s: %v", dn, err)
					continue
				}
				want, err := signing.SignConnect(signing.ConnectRequest{
					ProductKey: repPK, DeviceName: dn, ClientID: repPK + "." + dn, Method: signing.MethodHMACSHA256,
					Transport: signing.TransportTLS, Timestamp: strconv.FormatInt(ts, 10),
				}, signing.DeviceSecretMAC([]byte(repSecret(dn))))
				if err != nil || resp.GetPassword() != want.Password {
					fail("SignMqttConnect %s: wrong password", dn)
				}
			}
		}()
	}

	// Let the load settle, then roll: surge one, retire one.
	waitCalls := func(n int64) {
		for target := calls.Load() + n; calls.Load() < target && failed.Load() == 0; {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCalls(300)
	for i, m := range old {
		fresh := join()
		waitCalls(200) // the fresh one serves
		if err := m.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		before := calls.Load()
		m.p.waitExit(t, "SIGTERM")
		b.remove(m)
		m.conn.Close()
		t.Logf("replica %d retired (%d calls during its shutdown); replica %s serves", i, calls.Load()-before, fresh.p.grpcAddr)
		waitCalls(200)
	}
	close(stop)
	wg.Wait()
	t.Logf("MEASURED: rolling restart of 3 replicas under load from 16 callers: %d calls, %d failed, %d sent again to another replica (never reached signerd: %s)",
		calls.Load(), failed.Load(), b.retries.Load(), b.report())
	if failed.Load() > 0 {
		t.Errorf("%d of %d calls failed during the rolling restart; first: %v", failed.Load(), calls.Load(), failures)
	}
	if calls.Load() < 1000 {
		t.Errorf("only %d calls during the rolling restart: the load did not run", calls.Load())
	}
}

// TestE2ETokenRecordsDenied: signerd whose Vault policy predates the shared
// tokens (device secrets only) refuses to start, saying what to change;
// with -preverify-token-path off it starts and keeps its tokens itself.
func TestE2ETokenRecordsDenied(t *testing.T) {
	f := startFleet(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	old := `path "iot/data/devices/*" { capabilities = ["read"] }`
	if err := f.vault.Client.Sys().PutPolicyWithContext(ctx, "signerd-before-tokens", old); err != nil {
		t.Fatal(err)
	}
	sec, err := f.vault.Client.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{
		Policies: []string{"signerd-before-tokens"}, TTL: "1h", NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	args := append(slices.Clone(f.args), "-vault-token-file", writeFile(t, "old-token", sec.Auth.ClientToken))

	cmd := exec.CommandContext(ctx, signerdBin, args...)
	cmd.Env = hermeticEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("signerd with a policy without the token records: %v (want a non-zero exit)\n%s", err, out)
	}
	for _, want := range []string{"-preverify-token-path", "iot/data/preverify-tokens/", "deploy/vault/policy.hcl", "off"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not contain %q:\n%s", want, out)
		}
	}

	p := startSignerd(t, append(args, "-preverify-token-path", "off")...)
	if !p.hasLog(t, "PreVerify tokens kept per replica (-preverify-token-path off): N replicas make N platform calls per device and hand out different tokens") {
		t.Errorf("no warning about per-replica tokens:\n%s", p.logs())
	}
}
