package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// Bounds that no flag can lift: a load generator must stop by itself.
const (
	hardCap        = time.Hour
	maxConcurrency = 4096
	// Latencies are recorded in nanoseconds, 3 significant digits, up to a
	// minute (longer ones are recorded as a minute).
	histMax = int64(time.Minute)
)

// loadOptions are the flags of the load modes.
type loadOptions struct {
	mode        string
	label       string
	concurrency int
	devices     int
	offset      int
	unique      bool
	duration    time.Duration
	count       int64
	warmup      time.Duration
	maxDuration time.Duration
	timeout     time.Duration
	batch       int
	methodName  string
	method      signing.Method
	verify      bool
	jsonOut     string
	allowRemote bool
	fleet       fleet
	serverPID   int

	// grpc, rest
	addr, baseURL string
	conns         int
	http2         bool
	tls           tlsFlags
	// transit, kv
	vault vaultFlags
}

type tlsFlags struct {
	plaintext             bool
	caFile                string
	certFile, keyFile     string
	serverName, tokenFile string
}

func loadFlags(mode string, stderr io.Writer) (*flag.FlagSet, *loadOptions) {
	o := &loadOptions{mode: mode}
	fs := flag.NewFlagSet("signerload "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.label, "label", mode, "name of this run in the report")
	fs.IntVar(&o.concurrency, "c", 16, "concurrent clients (closed loop: each sends its next request when the previous one is answered)")
	fs.IntVar(&o.devices, "n", 1000, "devices: requests go to devices offset … offset+n-1")
	fs.IntVar(&o.offset, "device-offset", 0, "index of the first device")
	fs.BoolVar(&o.unique, "unique", false, "each device once, in order (a cold cache); -count defaults to all of them")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured duration (0: until -count)")
	fs.Int64Var(&o.count, "count", 0, "stop after this many requests (0: until -d)")
	fs.DurationVar(&o.warmup, "warmup", 0, "unmeasured load before the measured run (same devices; not with -unique)")
	fs.DurationVar(&o.maxDuration, "max-duration", 10*time.Minute, "hard cap on the whole invocation, warm-up included (at most 1h)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "deadline of one request")
	fs.StringVar(&o.methodName, "method", "hmacsha256", "sign method: hmacsha256, hmacsha1 or hmacmd5 (transit: hmacsha256 only)")
	fs.BoolVar(&o.verify, "verify", false, "check every answer against the HMAC computed here from the -secret-seed secret")
	fs.StringVar(&o.jsonOut, "json", "", "also write the result as JSON to this file (for signerload report)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target that is not on this machine's loopback")
	fs.StringVar(&o.fleet.product, "product", "a1SignerLoad", "productKey of the devices")
	fs.StringVar(&o.fleet.seed, "secret-seed", "signerload", "seed the device secrets are derived from (as in seed mode)")
	fs.StringVar(&o.fleet.device, "device", "", "one fixed deviceName instead of dev-0000000… (e.g. signerd -dev's demo-device-01)")
	switch mode {
	case "grpc", "rest":
		if mode == "grpc" {
			fs.StringVar(&o.addr, "addr", "127.0.0.1:9090", "signerd gRPC address host:port")
			fs.IntVar(&o.conns, "conns", 1, "gRPC connections shared by the clients")
			fs.IntVar(&o.batch, "batch", 0, "send BatchSignMqttConnect with this many devices per call (max 1000) instead of SignMqttConnect")
		} else {
			fs.StringVar(&o.baseURL, "url", "https://127.0.0.1:8080", "signerd REST base URL")
			fs.BoolVar(&o.http2, "http2", false, "use HTTP/2 (default: HTTP/1.1, a keep-alive connection per client, as devices do)")
		}
		fs.BoolVar(&o.tls.plaintext, "plaintext", false, "no TLS (signerd -dev or -insecure)")
		fs.StringVar(&o.tls.caFile, "ca", "", "CA bundle (PEM) to verify signerd's certificate (default: system roots)")
		fs.StringVar(&o.tls.certFile, "cert", "", "client certificate (PEM): a device's or a backend's (URI SAN spiffe://… granted in the policy)")
		fs.StringVar(&o.tls.keyFile, "key", "", "client private key (PEM)")
		fs.StringVar(&o.tls.serverName, "server-name", "", "TLS server name to verify (default: the host of the address)")
		fs.StringVar(&o.tls.tokenFile, "token-file", "", "file holding a bearer token (JWT) to send")
	}
	if mode != "hmac" {
		fs.IntVar(&o.serverPID, "server-pid", 0, "PID of the server (signerd, or Vault) on this machine: report its CPU time per sign over the measured run, from /proc")
	}
	switch mode {
	case "transit", "kv":
		o.vault.register(fs)
		if mode == "transit" {
			fs.StringVar(&o.vault.transitMount, "transit-mount", "transit", "Transit mount")
			fs.StringVar(&o.vault.transitKey, "transit-key", "", "one Transit key for every device (default: the device's own key, as seed -transit-keys imports it)")
		} else {
			fs.StringVar(&o.vault.kvMount, "kv-mount", "iot", "KV v2 mount")
			fs.StringVar(&o.vault.kvPath, "kv-path", "devices/{productKey}/{deviceName}", "path of a device's secret in the mount")
			fs.StringVar(&o.vault.kvField, "kv-field", "deviceSecret", "field holding the secret")
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: signerload %s [flags]\n\n", mode)
		fs.PrintDefaults()
	}
	return fs, o
}

func (o *loadOptions) validate() error {
	var errs []error
	if o.concurrency < 1 || o.concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("-c %d: want 1–%d", o.concurrency, maxConcurrency))
	}
	if o.fleet.device != "" {
		o.devices = 1
	}
	if o.devices < 1 || o.offset < 0 || o.offset+o.devices > 9_999_999 {
		errs = append(errs, fmt.Errorf("-n %d -device-offset %d: want n ≥ 1 and devices within dev-0000000…dev-9999999", o.devices, o.offset))
	}
	if err := signing.ValidateProductKey(o.fleet.product); err != nil {
		errs = append(errs, fmt.Errorf("-product: %w", err))
	}
	if o.fleet.device != "" {
		if err := signing.ValidateDeviceName(o.fleet.device); err != nil {
			errs = append(errs, fmt.Errorf("-device: %w", err))
		}
	}
	if o.batch < 0 || o.batch > 1000 {
		errs = append(errs, fmt.Errorf("-batch %d: want 0–1000", o.batch))
	}
	per := max(o.batch, 1)
	if o.unique {
		if o.fleet.device != "" {
			errs = append(errs, errors.New("-unique: not with -device"))
		}
		if o.warmup > 0 {
			errs = append(errs, errors.New("-warmup: not with -unique (a warm-up would use up the uncached devices)"))
		}
		all := int64((o.devices + per - 1) / per)
		if o.count == 0 || o.count > all {
			o.count = all
		}
	}
	if o.duration < 0 || o.count < 0 || o.warmup < 0 || (o.duration == 0 && o.count == 0) {
		errs = append(errs, errors.New("-d, -count: set at least one bound, neither negative"))
	}
	if o.maxDuration <= 0 || o.maxDuration > hardCap {
		errs = append(errs, fmt.Errorf("-max-duration %s: want (0, %s]", o.maxDuration, hardCap))
	}
	if o.warmup+o.duration > o.maxDuration {
		errs = append(errs, fmt.Errorf("-warmup + -d = %s: more than -max-duration %s", o.warmup+o.duration, o.maxDuration))
	}
	if o.timeout <= 0 {
		errs = append(errs, errors.New("-timeout: must be positive"))
	}
	m, err := signing.ParseMethod(o.methodName)
	if err != nil {
		errs = append(errs, fmt.Errorf("-method %q: want hmacsha256, hmacsha1 or hmacmd5", o.methodName))
	}
	o.method = m
	if (o.mode == "transit" || o.mode == "hmac") && m != signing.MethodHMACSHA256 {
		errs = append(errs, fmt.Errorf("-method %s: %s mode measures hmacsha256 only", o.methodName, o.mode))
	}
	if o.conns < 0 || o.conns > 64 {
		errs = append(errs, fmt.Errorf("-conns %d: want 1–64", o.conns))
	}
	return errors.Join(errs...)
}

func loadMain(mode string, args []string, stdout, stderr io.Writer) error {
	fs, o := loadFlags(mode, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := o.validate(); err != nil {
		return err
	}
	var t target
	var err error
	switch mode {
	case "grpc":
		t, err = newGRPCTarget(o)
	case "rest":
		t, err = newRESTTarget(o)
	case "transit", "kv":
		t, err = newVaultTarget(o)
	case "hmac":
		t = newHMACTarget(o)
	}
	if err != nil {
		return err
	}
	defer t.close()

	// The hard cap holds whatever happens; ^C ends the run early and still
	// reports what was measured.
	ctx, cancel := context.WithTimeout(context.Background(), o.maxDuration)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	res := runLoad(ctx, o, t)
	res.Target = t.describe()
	res.Command = "signerload " + mode + " " + strings.Join(args, " ")
	res.print(stdout)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if res.Signs == 0 {
		return errors.New("no sign succeeded")
	}
	return nil
}

// target sends one kind of request.
type target interface {
	// do sends one request for devs (one device, or a batch) and returns
	// "OK" or the error's code. A batch reports each item with w.item.
	do(ctx context.Context, w *worker, devs []int) string
	// local reports whether requests stay in this process (no deadline
	// per request is needed).
	local() bool
	describe() string
	close()
}

// worker is one client: its own histogram and counters, merged at the end,
// so that recording takes no lock.
type worker struct {
	id    int
	hist  *hdrhistogram.Histogram
	codes map[string]int64
	items map[string]int64
	rng   *rand.Rand
	devs  []int
}

func (w *worker) item(code string) { w.items[code]++ }

// Result is one run, as printed and as written by -json.
type Result struct {
	Label       string    `json:"label"`
	Mode        string    `json:"mode"`
	Target      string    `json:"target"`
	Command     string    `json:"command"`
	Started     time.Time `json:"started"`
	Concurrency int       `json:"concurrency"`
	Devices     int       `json:"devices"`
	Batch       int       `json:"batch,omitempty"`
	Unique      bool      `json:"unique,omitempty"`
	Verify      bool      `json:"verify,omitempty"`
	ElapsedSec  float64   `json:"elapsedSeconds"`
	// Requests completed (answered, whatever the answer) and OK among them.
	Requests int64 `json:"requests"`
	OK       int64 `json:"ok"`
	// Signs is the number of credentials issued: OK requests, or with
	// -batch the OK items.
	Signs       int64            `json:"signs"`
	Errors      map[string]int64 `json:"errors,omitempty"`
	ItemErrors  map[string]int64 `json:"itemErrors,omitempty"`
	RequestRate float64          `json:"requestsPerSecond"`
	SignRate    float64          `json:"signsPerSecond"`
	// Latency of OK requests, microseconds.
	Latency Latency `json:"latencyMicros"`
	// ClientCPU is this load generator's own CPU time (user + system) per
	// sign, microseconds: on a shared machine it is taken from the target.
	ClientCPU float64 `json:"clientCPUMicrosPerSign"`
	// ServerCPU is the -server-pid process's CPU time per sign over the
	// measured run (warm-up excluded), microseconds.
	ServerPID  int     `json:"serverPID,omitempty"`
	ServerCPU  float64 `json:"serverCPUMicrosPerSign,omitempty"`
	GoVersion  string  `json:"goVersion"`
	NumCPU     int     `json:"numCPU"`
	GOMAXPROCS int     `json:"gomaxprocs"`
}

// Latency percentiles in microseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// runLoad runs the warm-up (unmeasured) and then the measured phase.
func runLoad(ctx context.Context, o *loadOptions, t target) *Result {
	if o.warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, o.warmup)
		phase(wctx, o, t, 0)
		cancel()
	}
	mctx := ctx
	if o.duration > 0 {
		var cancel context.CancelFunc
		mctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	srv0, srvErr := processCPU(o.serverPID)
	started, cpu0 := time.Now(), cpuTime()
	workers, elapsed := phase(mctx, o, t, o.count)
	cpu := cpuTime() - cpu0
	srv1, srvErr1 := processCPU(o.serverPID)

	r := &Result{
		Label: o.label, Mode: o.mode, Started: started.UTC(), Concurrency: o.concurrency,
		Devices: o.devices, Batch: o.batch, Unique: o.unique, Verify: o.verify,
		ElapsedSec: elapsed.Seconds(), Errors: map[string]int64{}, ItemErrors: map[string]int64{},
		GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	h := newHist()
	for _, w := range workers {
		h.Merge(w.hist)
		for c, n := range w.codes {
			r.Requests += n
			if c == "OK" {
				r.OK += n
			} else {
				r.Errors[c] += n
			}
		}
		for c, n := range w.items {
			if c == "OK" {
				r.Signs += n
			} else {
				r.ItemErrors[c] += n
			}
		}
	}
	if o.batch == 0 {
		r.Signs = r.OK
	}
	if s := elapsed.Seconds(); s > 0 {
		r.RequestRate = float64(r.Requests) / s
		r.SignRate = float64(r.Signs) / s
	}
	if r.Signs > 0 {
		r.ClientCPU = float64(cpu.Microseconds()) / float64(r.Signs)
		if o.serverPID > 0 && srvErr == nil && srvErr1 == nil {
			r.ServerPID = o.serverPID
			r.ServerCPU = float64((srv1 - srv0).Microseconds()) / float64(r.Signs)
		}
	}
	us := func(v int64) float64 { return float64(v) / 1e3 }
	r.Latency = Latency{
		Mean: h.Mean() / 1e3, P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)),
		P99: us(h.ValueAtQuantile(99)), P999: us(h.ValueAtQuantile(99.9)), Max: us(h.Max()),
	}
	return r
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, histMax, 3) }

// userHZ is the unit of /proc/PID/stat's times: USER_HZ, 100 on every Linux
// whatever the kernel's own tick rate.
const userHZ = 100

// processCPU is the CPU time (user + system, all threads) process pid has
// used, from /proc/PID/stat; 0 for pid 0.
func processCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("-server-pid: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after its closing one. utime and stime are
	// fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	var f []string
	if i >= 0 {
		f = strings.Fields(string(b[i+1:]))
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("-server-pid: /proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("-server-pid: /proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phase runs o.concurrency workers until ctx ends, count requests have been
// sent (if count > 0) or, with -unique, every device has been asked once.
func phase(ctx context.Context, o *loadOptions, t target, count int64) ([]*worker, time.Duration) {
	var issued, next atomic.Int64
	per := max(o.batch, 1)
	workers := make([]*worker, o.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{
			id: i, hist: newHist(), codes: map[string]int64{}, items: map[string]int64{},
			rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i))), devs: make([]int, 0, per),
		}
		workers[i] = w
		wg.Go(func() {
			// ctx's own timer may fire a moment after its deadline: a
			// request sent in between would fail at once, over and over.
			deadline, bounded := ctx.Deadline()
			over := func() bool { return ctx.Err() != nil || bounded && !time.Now().Before(deadline) }
			for !over() {
				if count > 0 && issued.Add(1) > count {
					return
				}
				w.devs = w.devs[:0]
				if o.unique {
					first := int(next.Add(int64(per))) - per
					for d := first; d < first+per && d < o.devices; d++ {
						w.devs = append(w.devs, o.offset+d)
					}
					if len(w.devs) == 0 {
						return
					}
				} else {
					for range per {
						w.devs = append(w.devs, o.offset+w.rng.IntN(o.devices))
					}
				}
				rctx, cancel := ctx, context.CancelFunc(nil)
				if !t.local() {
					rctx, cancel = context.WithTimeout(ctx, o.timeout)
				}
				t0 := time.Now()
				code := t.do(rctx, w, w.devs)
				lat := time.Since(t0)
				if cancel != nil {
					cancel()
				}
				if code != "OK" && over() {
					return // cut short by the end of the run: not an answer
				}
				w.codes[code]++
				if code == "OK" {
					_ = w.hist.RecordValue(min(int64(lat), histMax))
				}
			}
		})
	}
	wg.Wait()
	return workers, time.Since(start)
}

func (r *Result) print(w io.Writer) {
	fmt.Fprintf(w, "%s: %s → %s, c=%d, devices=%d", r.Label, r.Mode, r.Target, r.Concurrency, r.Devices)
	if r.Batch > 0 {
		fmt.Fprintf(w, ", batch=%d", r.Batch)
	}
	if r.Unique {
		fmt.Fprint(w, ", each device once")
	}
	fmt.Fprintf(w, ", %.1fs\n", r.ElapsedSec)
	fmt.Fprintf(w, "  requests    %d (ok %d, errors %d)\n", r.Requests, r.OK, r.Requests-r.OK)
	fmt.Fprintf(w, "  throughput  %.0f req/s", r.RequestRate)
	if r.Batch > 0 {
		fmt.Fprintf(w, ", %.0f signs/s", r.SignRate)
	}
	fmt.Fprintln(w)
	l := r.Latency
	fmt.Fprintf(w, "  latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n",
		fmtMicros(l.P50), fmtMicros(l.P90), fmtMicros(l.P99), fmtMicros(l.P999), fmtMicros(l.Max), fmtMicros(l.Mean))
	fmt.Fprintf(w, "  errors      %s\n", fmtCodes(r.Errors))
	if r.Batch > 0 {
		fmt.Fprintf(w, "  item errors %s\n", fmtCodes(r.ItemErrors))
	}
}

func fmtMicros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.1fµs", us)
}

func fmtCodes(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
