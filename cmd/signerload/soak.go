package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/platform/aliyun/aliyuntest"
)

// soakOptions are the flags of signerload soak.
type soakOptions struct {
	duration    time.Duration
	devices     int
	rate        float64
	concurrency int
	conns       int
	deviceCerts int
	signerdBin  string
	workDir     string
	outDir      string
	vaultEvery  time.Duration
	vaultDown   time.Duration
	faultEvery  time.Duration
	faultFor    time.Duration
	sample      time.Duration
	flat        flatRule
	fleet       fleet
	keep        bool
}

func soakFlags(stderr io.Writer) (*flag.FlagSet, *soakOptions) {
	o := &soakOptions{}
	fs := flag.NewFlagSet("signerload soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 30*time.Minute, "how long to run the mix (at most 1h)")
	fs.IntVar(&o.devices, "devices", 10_000, "devices in Vault and on the platform emulator")
	fs.Float64Var(&o.rate, "rate", 100, "calls per second, all kinds together (a batch counts once)")
	fs.IntVar(&o.concurrency, "c", 16, "concurrent callers")
	fs.IntVar(&o.conns, "conns", 2, "gRPC connections of the backend")
	fs.IntVar(&o.deviceCerts, "device-certs", 100, "devices that also call with their own certificate (REST)")
	fs.StringVar(&o.signerdBin, "signerd-bin", "", "signerd binary (default: go build ./cmd/signerd into the work directory)")
	fs.StringVar(&o.workDir, "workdir", "", "directory for certificates, Vault's storage and logs (default: a new temporary one, removed after a passing run)")
	fs.StringVar(&o.outDir, "out", "soak-report", "directory for report.md, soak.svg and soak.json")
	fs.DurationVar(&o.vaultEvery, "vault-every", 4*time.Minute, "kill Vault (SIGKILL) this often (0: never)")
	fs.DurationVar(&o.vaultDown, "vault-down", 15*time.Second, "how long Vault stays down before it is started and unsealed again")
	fs.DurationVar(&o.faultEvery, "fault-every", 3*time.Minute, "inject a platform fault this often (0: never)")
	fs.DurationVar(&o.faultFor, "fault-for", 20*time.Second, "how long each platform fault lasts")
	fs.DurationVar(&o.sample, "sample", 5*time.Second, "resource sampling interval")
	fs.Float64Var(&o.flat.tolerance, "flat-tolerance", 0.10, "flat: the last quarter's mean within this fraction of the second quarter's")
	fs.Float64Var(&o.flat.slackRSSMiB, "flat-slack-rss-mib", 0, "flat: RSS may also differ by this many MiB")
	fs.Float64Var(&o.flat.slackGoroutines, "flat-slack-goroutines", 0, "flat: goroutines may also differ by this many")
	fs.Float64Var(&o.flat.slackFDs, "flat-slack-fds", 0, "flat: file descriptors may also differ by this many")
	fs.StringVar(&o.fleet.product, "product", "a1SoakLoad", "productKey of the devices")
	fs.StringVar(&o.fleet.seed, "secret-seed", "soak", "seed the device secrets are derived from")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory even when the run passes")
	return fs, o
}

func (o *soakOptions) validate() error {
	var errs []error
	if o.duration <= 0 || o.duration > hardCap {
		errs = append(errs, fmt.Errorf("-duration %s: want (0, %s]", o.duration, hardCap))
	}
	if o.devices < 2 || o.devices > 1_000_000 {
		errs = append(errs, fmt.Errorf("-devices %d: want 2–1,000,000", o.devices))
	}
	if o.rate <= 0 || o.concurrency < 1 || o.concurrency > 256 || o.conns < 1 || o.deviceCerts < 1 {
		errs = append(errs, errors.New("-rate > 0, -c 1–256, -conns ≥ 1, -device-certs ≥ 1"))
	}
	if o.vaultEvery < 0 || o.faultEvery < 0 || o.vaultDown <= 0 || o.faultFor <= 0 || o.sample <= 0 {
		errs = append(errs, errors.New("-vault-every, -fault-every ≥ 0; -vault-down, -fault-for, -sample > 0"))
	}
	if o.flat.tolerance < 0 {
		errs = append(errs, errors.New("-flat-tolerance: not negative"))
	}
	return errors.Join(errs...)
}

// soakMain runs the soak and writes its report; it fails (exit 1) on any
// wrong answer, unexpected code or growing resource.
func soakMain(args []string, stdout, stderr io.Writer) error {
	fs, o := soakFlags(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runSoak(ctx, o, "signerload soak "+strings.Join(args, " "), stderr)
	if err != nil {
		return err
	}
	if err := writeSoakReport(o.outDir, res); err != nil {
		return err
	}
	fmt.Fprint(stdout, res.summary())
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(o.outDir, "report.md"))
	if !res.Pass {
		return fmt.Errorf("soak failed: %s (work directory kept: %s)", strings.Join(res.Failures, "; "), res.WorkDir)
	}
	return nil
}

// window is a period during which a fault was injected.
type window struct {
	Kind       string    `json:"kind"` // "vault" or "platform: <fault>"
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"` // zero while open
	RecoveredS float64   `json:"recoveredSeconds,omitempty"`
}

// Grace after a window ends during which its codes are still accepted:
// signerd needs a moment to see Vault again, and an open circuit breaker
// (30 s) must let a probe through.
const (
	vaultGrace    = 15 * time.Second
	platformGrace = 45 * time.Second
)

type chaos struct {
	mu      sync.Mutex
	windows []*window
}

func (c *chaos) open(kind string) *window {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &window{Kind: kind, Start: time.Now()}
	c.windows = append(c.windows, w)
	return w
}

func (c *chaos) close(w *window) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w.End = time.Now()
}

// allows reports whether o, asked between start and end, met an injected
// fault it depends on, so that UNAVAILABLE (or DEADLINE_EXCEEDED, once the
// caller's deadline has passed) is the documented answer.
func (c *chaos) allows(o outcome, start, end time.Time) bool {
	switch o.got {
	case "Unavailable":
	case "DeadlineExceeded":
		// Documented as "the caller's deadline passed": an answer before
		// the soak's deadline is signerd's own timeout passed off as the
		// caller's.
		if end.Sub(start) < soakTimeout {
			return false
		}
	default:
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.windows {
		vault := w.Kind == "vault"
		if (vault && !o.vault) || (!vault && !o.platform) {
			continue
		}
		grace := platformGrace
		if vault {
			grace = vaultGrace
		}
		if !w.Start.After(end) && (w.End.IsZero() || !start.After(w.End.Add(grace))) {
			return true
		}
	}
	return false
}

func (c *chaos) list() []window {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]window, len(c.windows))
	for i, w := range c.windows {
		out[i] = *w
	}
	return out
}

// tally counts outcomes.
type tally struct {
	mu          sync.Mutex
	calls       int64
	items       int64
	wrong       int64
	byKind      map[string]map[string]int64 // kind → code → count
	duringFault map[string]int64            // code → count accepted because of a fault
	unexpected  map[string]int64            // "kind: want X, got Y" → count
	wrongWhat   map[string]int64
	// firstSeen: when each unexpected or wrong answer was first seen, in
	// seconds since t0, so that a report can be matched with the logs.
	firstSeen map[string]float64
	t0        time.Time
	logf      func(string, ...any)
}

func newTally() *tally {
	return &tally{byKind: map[string]map[string]int64{}, duringFault: map[string]int64{},
		unexpected: map[string]int64{}, wrongWhat: map[string]int64{}, firstSeen: map[string]float64{},
		t0: time.Now(), logf: func(string, ...any) {}}
}

// seen records the first time of key and logs it then.
func (t *tally) seen(key string, start, end time.Time) {
	if _, ok := t.firstSeen[key]; ok {
		return
	}
	t.firstSeen[key] = start.Sub(t.t0).Seconds()
	t.logf("first %s (call from %.1fs to %.1fs)", key, start.Sub(t.t0).Seconds(), end.Sub(t.t0).Seconds())
}

func (t *tally) add(c *chaos, outs []outcome, start, end time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range outs {
		if o.item {
			t.items++
		} else {
			t.calls++
		}
		if t.byKind[o.kind] == nil {
			t.byKind[o.kind] = map[string]int64{}
		}
		t.byKind[o.kind][o.got]++
		switch {
		case o.got == "OK" && o.wrong != "":
			t.wrong++
			t.wrongWhat[o.kind+": "+o.wrong]++
			t.seen("wrong answer: "+o.kind+": "+o.wrong, start, end)
		case o.got == o.expect:
		case o.expect != "InvalidArgument" && o.expect != "PermissionDenied" && o.expect != "Unauthenticated" && c.allows(o, start, end):
			t.duringFault[o.got]++
		default:
			key := fmt.Sprintf("%s: want %s, got %s", o.kind, o.expect, o.got)
			t.unexpected[key]++
			t.seen(key, start, end)
		}
	}
}

// sample is one reading of signerd's resources.
type sample struct {
	T          float64 `json:"t"` // seconds since the start of the mix
	RSSKiB     int64   `json:"rssKiB"`
	Goroutines int64   `json:"goroutines"`
	FDs        int64   `json:"fds"`
	Calls      int64   `json:"calls"`
}

// runSoak sets everything up, runs the mix for o.duration with Vault
// restarts and platform faults, and returns the result.
func runSoak(ctx context.Context, o *soakOptions, command string, stderr io.Writer) (*SoakResult, error) {
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s soak: "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
	}
	dir := o.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "signerload-soak-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	passed := false
	defer func() {
		if passed && !o.keep && o.workDir == "" {
			os.RemoveAll(dir)
		}
	}()
	vaultBin, err := vaulttest.Bin()
	if err != nil {
		return nil, err
	}
	bin := o.signerdBin
	if bin == "" {
		bin = filepath.Join(dir, "signerd")
		logf("building signerd into %s", bin)
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/signerd/signerd/cmd/signerd")
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("go build signerd: %w", err)
		}
	}

	ca, err := newSoakCA("signerd soak CA")
	if err != nil {
		return nil, err
	}
	alien, err := newSoakCA("a CA signerd does not trust")
	if err != nil {
		return nil, err
	}
	emu := aliyuntest.New(nil)
	defer emu.Close()
	probes := 200 // devices only the recovery probe uses: never cached by the mix
	for i := range o.devices + probes {
		emu.AddDevice(o.fleet.product, o.fleet.name(i), string(o.fleet.secret(i)))
	}

	v, err := newSoakVault(vaultBin, dir, ca)
	if err != nil {
		return nil, err
	}
	defer v.kill()
	if err := v.start(ctx); err != nil {
		return nil, err
	}
	token, err := v.initialize(ctx)
	if err != nil {
		return nil, err
	}
	logf("vault %s (file storage, TLS) initialized; writing %d devices", v.addr, o.devices+probes)
	kv := v.client.KVv2("iot")
	start := time.Now()
	err = parallel(ctx, 16, 0, o.devices+probes, "kv", stderr, func(ctx context.Context, i int) error {
		_, err := kv.Put(ctx, "devices/"+o.fleet.product+"/"+o.fleet.name(i), map[string]any{"deviceSecret": string(o.fleet.secret(i))})
		return err
	})
	if err != nil {
		return nil, err
	}
	logf("devices written in %.1fs", time.Since(start).Seconds())

	files := map[string]string{
		"token":           token,
		"ca.pem":          string(ca.pem),
		"platform-ca.pem": string(emu.CertPEM()),
		"products.yaml":   "defaults:\n  authBaseUrl: " + emu.URL() + "\n",
		"policy.yaml": "backends:\n" +
			"  - identity: " + soakBackendID + "\n    products: [\"*\"]\n    rpcs: [\"*\"]\n" +
			"  - identity: " + soakRestrictedID + "\n    products: [\"" + soakOtherProduct + "\"]\n    rpcs: [SignMqttConnect, PreVerify]\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	serverCert, err := ca.issue("signerd", "", true)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := writePair(dir, "signerd", serverCert)
	if err != nil {
		return nil, err
	}
	signerdArgs := []string{
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0",
		"-tls-cert-file", certFile, "-tls-key-file", keyFile, "-client-ca-file", filepath.Join(dir, "ca.pem"),
		"-policy-file", filepath.Join(dir, "policy.yaml"), "-audit-log", filepath.Join(dir, "audit.log"),
		"-vault-addr", v.addr, "-vault-token-file", filepath.Join(dir, "token"),
		"-products", filepath.Join(dir, "products.yaml"), "-platform-ca-file", filepath.Join(dir, "platform-ca.pem"),
		// No rate limits: the soak's RESOURCE_EXHAUSTED would be its own
		// doing; rate limits have their own tests.
		"-rate-limit", "0", "-backend-rate-limit", "0", "-preverify-rate-limit", "0",
	}
	p, err := startSignerd(ctx, bin, signerdArgs, []string{"VAULT_CACERT=" + v.caFile}, filepath.Join(dir, "signerd.log"))
	if err != nil {
		return nil, err
	}
	defer func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}()
	pid := p.cmd.Process.Pid
	logf("signerd pid %d: grpc %s, http %s, metrics %s", pid, p.grpcAddr, p.httpAddr, p.metrics)

	clients, err := newSoakClients(ca, alien, p.grpcAddr, p.httpAddr, o.fleet, o.devices, o.deviceCerts, o.conns, emu)
	if err != nil {
		return nil, err
	}
	defer clients.close()

	res := &SoakResult{Command: command, Devices: o.devices, Rate: o.rate, Concurrency: o.concurrency,
		WorkDir: dir, SignerdPID: pid, Started: time.Now().UTC(), Flat: o.flat}
	var (
		ch     chaos
		t      = newTally()
		wg     sync.WaitGroup
		mu     sync.Mutex
		series []sample
	)
	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	t0 := time.Now()
	t.t0, t.logf = t0, logf

	// Resources of the signerd process.
	metricsClient := &http.Client{Timeout: 5 * time.Second}
	wg.Go(func() {
		tick := time.NewTicker(o.sample)
		defer tick.Stop()
		for {
			s := sample{T: time.Since(t0).Seconds(), RSSKiB: procRSS(pid), FDs: procFDs(pid), Goroutines: goroutines(metricsClient, p.metrics)}
			t.mu.Lock()
			s.Calls = t.calls
			t.mu.Unlock()
			mu.Lock()
			series = append(series, s)
			mu.Unlock()
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
		}
	})

	// Vault: killed and started again, on a schedule.
	var vaultErr error
	if o.vaultEvery > 0 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(o.vaultEvery):
				}
				w := ch.open("vault")
				logf("vault: kill (SIGKILL) pid %d", v.pid())
				v.kill()
				select {
				case <-runCtx.Done():
				case <-time.After(o.vaultDown):
				}
				// Start and unseal even when the run is over: signerd's
				// shutdown and the final samples need no dead Vault.
				sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
				err := v.start(sctx)
				if err == nil {
					err = v.unseal(sctx)
				}
				scancel()
				ch.close(w)
				if err != nil {
					vaultErr = fmt.Errorf("vault restart %d: %w", n+1, err)
					logf("%v", vaultErr)
					return
				}
				rec := recoverProbe(runCtx, clients, o.devices+n%probes, w.End)
				ch.mu.Lock()
				w.RecoveredS = rec.Seconds()
				ch.mu.Unlock()
				logf("vault: up and unsealed %.1fs after the kill; signerd served an uncached device %.2fs after the unseal", w.End.Sub(w.Start).Seconds(), rec.Seconds())
			}
		})
	}

	// Platform faults, one kind after another.
	if o.faultEvery > 0 {
		faults := []aliyuntest.Fault{
			{Kind: aliyuntest.FaultHTTPStatus, Status: 503},
			{Kind: aliyuntest.FaultTooManyRequests, RetryAfter: "1"},
			{Kind: aliyuntest.FaultResetConnection},
			{Kind: aliyuntest.FaultCode, Code: 6760, Message: "system busy"},
			{Kind: aliyuntest.FaultCloseConnection},
			{Kind: aliyuntest.FaultCode, Code: 500, Message: "internal error"},
		}
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(o.faultEvery):
				}
				f := faults[n%len(faults)]
				name := f.Kind.String()
				if f.Kind == aliyuntest.FaultCode || f.Kind == aliyuntest.FaultHTTPStatus {
					name += " " + strconv.Itoa(max(f.Code, f.Status))
				}
				w := ch.open("platform: " + name)
				logf("platform: fault %s for %s", name, o.faultFor)
				emu.Inject(f)
				select {
				case <-runCtx.Done():
				case <-time.After(o.faultFor):
				}
				emu.ClearFaults()
				ch.close(w)
			}
		})
	}

	// The mix, at o.rate calls per second over o.concurrency callers.
	lim := rate.NewLimiter(rate.Limit(o.rate), o.concurrency)
	total := 0
	for _, op := range soakMix {
		total += op.weight
	}
	for w := range o.concurrency {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(t0.UnixNano())))
			for {
				if lim.Wait(runCtx) != nil {
					return
				}
				k := r.IntN(total)
				op := soakMix[0]
				for _, cand := range soakMix {
					if k < cand.weight {
						op = cand
						break
					}
					k -= cand.weight
				}
				// Calls are given their own deadline, not runCtx: the last
				// ones finish instead of being cut at the end.
				cctx, ccancel := context.WithTimeout(context.Background(), soakTimeout)
				start := time.Now()
				outs := op.do(clients, cctx, r)
				ccancel()
				t.add(&ch, outs, start, time.Now())
			}
		})
	}
	progress := time.NewTicker(time.Minute)
	go func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-progress.C:
				t.mu.Lock()
				logf("%.0fs: %d calls, %d wrong, %d unexpected", time.Since(t0).Seconds(), t.calls, t.wrong, len(t.unexpected))
				t.mu.Unlock()
			}
		}
	}()
	wg.Wait()
	progress.Stop()
	res.Seconds = time.Since(t0).Seconds()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}

	res.PlatformCalls = emu.Calls()
	exitErr := p.stop()
	res.SignerdExit = "0 (SIGTERM, drained)"
	if exitErr != nil {
		res.SignerdExit = exitErr.Error()
	}
	res.fill(t, ch.list(), series, o.duration.Seconds())
	if vaultErr != nil {
		res.Failures = append(res.Failures, vaultErr.Error())
	}
	if exitErr != nil {
		res.Failures = append(res.Failures, "signerd exit after SIGTERM: "+exitErr.Error())
	}
	if n := countLogLevel(p.logFile, "ERROR"); n > 0 {
		res.LogErrors = n
	}
	res.Pass = len(res.Failures) == 0
	passed = res.Pass
	return res, nil
}

// recoverProbe asks for a device the mix never asks for (so never cached)
// every 100 ms from Vault's unseal until it is served, and returns how
// long that took.
func recoverProbe(ctx context.Context, c *soakClients, i int, since time.Time) time.Duration {
	r := rand.New(rand.NewPCG(uint64(i), 1))
	for ctx.Err() == nil {
		req := c.signRequest(r, i)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := c.backend[0].SignMqttConnect(cctx, req)
		cancel()
		if err == nil && c.checkSign(req, i, resp) == "" {
			return time.Since(since)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(since)
}

// procRSS is the resident set of pid in KiB (VmRSS), or -1.
func procRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// procFDs is the number of open file descriptors of pid, or -1.
func procFDs(pid int) int64 {
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return int64(len(es))
}

// goroutines is go_goroutines from signerd's /metrics, or -1.
func goroutines(c *http.Client, addr string) int64 {
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return int64(f)
			}
		}
	}
	return -1
}

// countLogLevel counts signerd log lines at level.
func countLogLevel(file, level string) int {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"level":"`+level+`"`) {
			n++
		}
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
