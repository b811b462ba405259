package main

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/internal/vectors"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// haCluster is Vault as deployed (three Raft nodes over TLS) for the tests
// named TestE2EVaultHA…, started once for the package's test binary by the
// first of them. Each test runs signerd against it, breaks it (kills,
// seals), and leaves it healed for the next: SharedCluster.Get heals it.
var haCluster = vaulttest.SharedCluster{N: 3}

// failFast is the bound: an uncached device gets UNAVAILABLE
// within 2 s while Vault cannot answer.
const failFast = 2 * time.Second

// recovery bounds how long a test polls for signerd to serve again after
// Vault returned. It only ends a broken test: the time is logged, not
// asserted.
const recovery = 90 * time.Second

// haSignerd is signerd started against one node of the cluster, with the
// vectors' devices in Vault.
type haSignerd struct {
	p      *proc
	client signerv1.SignerServiceClient
	cs     []vectors.Case
}

// startHASignerd loads the vectors into the cluster and starts signerd
// talking to node only (as a replica configured with one node's address
// would), trusting the cluster's CA through VAULT_CACERT. A 300 ms cache
// TTL makes every check after a short sleep a test of stale serving.
func startHASignerd(t *testing.T, c *vaulttest.Cluster, node *vaulttest.Node, args ...string) *haSignerd {
	t.Helper()
	ctx := context.Background()
	cs := vectors.MustLoad()
	fx := c.Fixtures(t)
	for _, v := range cs {
		if err := fx.PutDevice(ctx, v.Input.ProductKey, v.Input.DeviceName, v.Input.DeviceSecret); err != nil {
			t.Fatal(err)
		}
	}
	tc := newTLSFixture(t)
	args = append(append(tc.args,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0",
		"-vault-addr", node.Addr,
		"-cache-ttl", "300ms", "-cache-max-stale", "1h", "-rate-limit", "0"), args...)
	p := startSignerdEnv(t, []string{"VAULT_CACERT=" + c.CAFile}, args...)
	p.tls = tc.backend
	return &haSignerd{p: p, client: p.grpcClient(t), cs: cs}
}

// tokenArgs gives signerd a policy-bound token of the given TTL, renewable
// without a maximum.
func tokenArgs(t *testing.T, c *vaulttest.Cluster, ttl time.Duration) []string {
	t.Helper()
	tok, err := c.Fixtures(t).Token(context.Background(), ttl, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-vault-token-file", writeFile(t, "vault-token", tok)}
}

// appRoleArgs creates an AppRole role for the test and returns signerd's
// flags for it.
func appRoleArgs(t *testing.T, c *vaulttest.Cluster, ttl, maxTTL time.Duration) []string {
	t.Helper()
	name := "signerd-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	roleID, secretID, err := c.Fixtures(t).AppRole(context.Background(), name, ttl, maxTTL)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-vault-auth", "approle", "-vault-approle-role-id", roleID,
		"-vault-approle-secret-id-file", writeFile(t, "secret-id", secretID)}
}

// sign asks for vector i's device over gRPC. A wrong answer fails the test
// at once: whatever Vault does, signerd answers right or not at all.
func (h *haSignerd) sign(t *testing.T, i int) (time.Duration, error) {
	t.Helper()
	v := h.cs[i]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	r, err := h.client.SignMqttConnect(ctx, vectorRequest(t, v))
	d := time.Since(start)
	if err == nil && r.GetPassword() != v.Expect.Password {
		t.Fatalf("device %s/%s: wrong password", v.Input.ProductKey, v.Input.DeviceName)
	}
	return d, err
}

// mustServe checks that vector i's device is served.
func (h *haSignerd) mustServe(t *testing.T, what string, i int) {
	t.Helper()
	if _, err := h.sign(t, i); err != nil {
		t.Errorf("%s: %v, want an answer", what, err)
	}
}

// failsFast checks that vector i's device gets UNAVAILABLE within failFast.
func (h *haSignerd) failsFast(t *testing.T, what string, i int) {
	t.Helper()
	d, err := h.sign(t, i)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("%s: %v, want UNAVAILABLE", what, err)
	}
	if d > failFast {
		t.Errorf("%s: answered after %s, want within %s", what, d, failFast)
	}
}

// awaitServe polls vector i's device until it is served and returns how
// long that took from since, and how many UNAVAILABLE answers came first.
// Every answer before must be UNAVAILABLE within failFast: never a hang,
// never another code.
func (h *haSignerd) awaitServe(t *testing.T, what string, i int, since time.Time) (took time.Duration, unavailable int) {
	t.Helper()
	for deadline := time.Now().Add(recovery); ; time.Sleep(100 * time.Millisecond) {
		d, err := h.sign(t, i)
		if err == nil {
			return time.Since(since), unavailable
		}
		unavailable++
		if status.Code(err) != codes.Unavailable || d > failFast {
			t.Errorf("%s: %v after %s, want UNAVAILABLE within %s until it recovers", what, err, d, failFast)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing %s later: %v; signerd's log:\n%s", what, recovery, err, h.p.logs())
		}
	}
}

// readyz is signerd's /readyz status code.
func (h *haSignerd) readyz(t *testing.T) int { return h.p.httpGet(t, "/readyz") }

// metric returns the value of the sample of family whose labels contain
// labels ("" for an unlabelled family).
func (h *haSignerd) metric(t *testing.T, family, labels string) float64 {
	t.Helper()
	m := h.p.find(func(m map[string]any) bool { return m["msg"] == "listening" })
	addr, _ := m["metrics"].(string)
	body := get(t, "http://"+addr+"/metrics")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(family) + `(\{[^}]*\})? (\S+)$`)
	for _, s := range re.FindAllStringSubmatch(body, -1) {
		if strings.Contains(s[1], labels) {
			v, err := strconv.ParseFloat(s[2], 64)
			if err != nil {
				t.Fatalf("metric %s%s: %v", family, s[1], err)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no %s{%s}", family, labels)
	return 0
}

// TestE2EVaultHALeaderLoss kills the active node while signerd talks to a
// standby: cached devices are served throughout, uncached ones get
// UNAVAILABLE within 2 s until a new leader is elected, then are served
// again without a restart. The time from the kill to the first success is
// logged.
func TestE2EVaultHALeaderLoss(t *testing.T) {
	c := haCluster.Get(t)
	standby, err := c.Standby()
	if err != nil {
		t.Fatal(err)
	}
	h := startHASignerd(t, c, standby, tokenArgs(t, c, time.Hour)...)
	h.mustServe(t, "before", 0)
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	leader.Kill()
	killed := time.Now()
	time.Sleep(400 * time.Millisecond) // past -cache-ttl: only stale serving answers
	h.mustServe(t, "cached device after the leader was killed", 0)
	took, n := h.awaitServe(t, "uncached device after the leader was killed", 1, killed)
	t.Logf("leader loss: first uncached success %s after the kill, after %d UNAVAILABLE answers", took.Round(time.Millisecond), n)
	if _, err := c.Leader(); err != nil {
		t.Fatal(err)
	}
	if code := h.readyz(t); code != http.StatusOK {
		t.Errorf("/readyz = %d under the new leader, want 200", code)
	}
}

// TestE2EVaultHANodeLost kills the node signerd talks to (the leader) and
// starts it again: while it is gone cached devices are served, uncached
// ones get UNAVAILABLE within 2 s and /readyz is 503; once it is back (and
// unsealed) signerd serves again without a restart.
func TestE2EVaultHANodeLost(t *testing.T) {
	c := haCluster.Get(t)
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	h := startHASignerd(t, c, leader, tokenArgs(t, c, time.Hour)...)
	h.mustServe(t, "before", 0)
	leader.Kill()
	time.Sleep(400 * time.Millisecond)
	h.mustServe(t, "cached device with signerd's node gone", 0)
	h.failsFast(t, "uncached device with signerd's node gone", 1)
	if code := h.readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with signerd's node gone, want 503", code)
	}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	took, _ := h.awaitServe(t, "uncached device after signerd's node came back", 1, back)
	t.Logf("node lost and back: first uncached success %s after the node was unsealed", took.Round(time.Millisecond))
	waitFor(t, "/readyz 200 after signerd's node came back", func() bool { return h.readyz(t) == http.StatusOK })
}

// TestE2EVaultHASealUnseal seals the node signerd talks to (Vault seals only
// its active node) and unseals it again.
func TestE2EVaultHASealUnseal(t *testing.T) {
	c := haCluster.Get(t)
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	h := startHASignerd(t, c, leader, tokenArgs(t, c, time.Hour)...)
	h.mustServe(t, "before", 0)
	if err := leader.Seal(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	h.mustServe(t, "cached device with signerd's node sealed", 0)
	h.failsFast(t, "uncached device with signerd's node sealed", 1)
	if code := h.readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with signerd's node sealed, want 503", code)
	}
	if err := leader.Unseal(); err != nil {
		t.Fatal(err)
	}
	unsealed := time.Now()
	took, _ := h.awaitServe(t, "uncached device after unseal", 1, unsealed)
	t.Logf("seal and unseal: first uncached success %s after the unseal", took.Round(time.Millisecond))
	waitFor(t, "/readyz 200 after unseal", func() bool { return h.readyz(t) == http.StatusOK })
}

// TestE2EVaultHATokenRenewalUnderLoad signs for 10 s through a standby
// (nearly every call a Vault read: 1 ms cache TTL) while signerd's AppRole
// token (TTL 2 s, max 3 s) is renewed and replaced several times: no call
// fails.
func TestE2EVaultHATokenRenewalUnderLoad(t *testing.T) {
	c := haCluster.Get(t)
	standby, err := c.Standby()
	if err != nil {
		t.Fatal(err)
	}
	h := startHASignerd(t, c, standby, append(appRoleArgs(t, c, 2*time.Second, 3*time.Second), "-cache-ttl", "1ms")...)
	var calls, failed atomic.Int64
	var firstErr sync.Once
	stop := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(stop); i += 4 {
				v := h.cs[i%len(h.cs)]
				r, err := h.client.SignMqttConnect(context.Background(), vectorRequest(t, v))
				calls.Add(1)
				if err != nil || r.GetPassword() != v.Expect.Password {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("call during token renewal: %v (or a wrong password)", err) })
				}
			}
		}()
	}
	wg.Wait()
	renewals := h.metric(t, "signerd_vault_token_renewals_total", `kind="renew"`)
	relogins := h.metric(t, "signerd_vault_token_renewals_total", `kind="relogin"`)
	t.Logf("%d calls, %d failed, %v renewals, %v re-logins", calls.Load(), failed.Load(), renewals, relogins)
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed while the token was renewed", failed.Load(), calls.Load())
	}
	if renewals < 2 || relogins < 2 {
		t.Errorf("renewals = %v, re-logins = %v over 10 s of 2 s/3 s tokens; want ≥2 each", renewals, relogins)
	}
}

// TestE2EVaultHAOutageLongerThanToken stops the whole cluster for longer
// than signerd's token lives. With AppRole, signerd logs in again when
// Vault returns and serves uncached devices without a restart. With a
// static token, which signerd cannot renew once it has expired, a log line,
// signerd_vault_token_refused and /readyz say the token is gone, and cached
// devices are still served.
func TestE2EVaultHAOutageLongerThanToken(t *testing.T) {
	c := haCluster.Get(t)
	// Long enough for a signerd to start on a loaded 2-core machine with
	// its token still alive (2 s was not); the outage below is twice it.
	const ttl = 6 * time.Second
	node := c.Nodes[0]
	approle := startHASignerd(t, c, node, appRoleArgs(t, c, ttl, time.Hour)...)
	static := startHASignerd(t, c, node, tokenArgs(t, c, ttl)...)
	for name, h := range map[string]*haSignerd{"approle": approle, "static token": static} {
		h.mustServe(t, name+": before", 0)
	}

	for _, nd := range c.Nodes {
		nd.Kill()
	}
	time.Sleep(2 * ttl) // the tokens expire while Vault is down
	for name, h := range map[string]*haSignerd{"approle": approle, "static token": static} {
		h.mustServe(t, name+": cached device during the outage", 0)
		h.failsFast(t, name+": uncached device during the outage", 1)
	}
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()

	took, _ := approle.awaitServe(t, "approle: uncached device after the outage", 1, healed)
	t.Logf("outage longer than the token: AppRole signerd served an uncached device %s after every node was unsealed and a voter again",
		took.Round(time.Millisecond))
	if n := approle.metric(t, "signerd_vault_token_renewals_total", `kind="relogin"`); n < 1 {
		t.Errorf("approle: %v re-logins after the outage, want ≥1", n)
	}
	if v := approle.metric(t, "signerd_vault_token_refused", ""); v != 0 {
		t.Errorf("approle: signerd_vault_token_refused = %v after a successful re-login, want 0", v)
	}
	waitFor(t, "approle: /readyz 200", func() bool { return approle.readyz(t) == http.StatusOK })

	line := static.p.waitLog(t, `"vault token is gone"`, func(m map[string]any) bool {
		msg, _ := m["msg"].(string)
		return strings.HasPrefix(msg, "vault token is gone")
	})
	if fix, _ := line["fix"].(string); !strings.Contains(fix, "token file") {
		t.Errorf("the token-gone line does not say what ends it: %v", line)
	}
	if v := static.metric(t, "signerd_vault_token_refused", ""); v != 1 {
		t.Errorf("static token: signerd_vault_token_refused = %v with the token gone, want 1", v)
	}
	if code := static.readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("static token: /readyz = %d with the token gone, want 503", code)
	}
	static.mustServe(t, "static token: cached device with the token gone", 0)
	static.failsFast(t, "static token: uncached device with the token gone", 2)
}
