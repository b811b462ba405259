package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Labels scripts/bench.sh gives its runs; report computes the ratios the
// issue asks for from them.
const (
	labelTransit     = "transit"
	labelTransitRoot = "transit-root"
	labelKV          = "kv"
	labelKVPool3     = "kv-pool3"
	labelKVRoot      = "kv-root"
	labelGRPCWarm    = "grpc-warm"
	labelRESTWarm    = "rest-warm"
	labelRESTJWT     = "rest-jwt-warm"
	labelGRPCCold    = "grpc-cold"
	labelGRPCCold1   = "grpc-cold-c1"
	labelKV1         = "kv-c1"
	labelHMAC        = "hmac"
)

// reportMain prints a Markdown table of -json results, in the order given,
// and the ratios between the runs labelled as scripts/bench.sh labels them.
func reportMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("signerload report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: signerload report RESULT.json...")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	var rs []*Result
	byLabel := map[string]*Result{}
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rs = append(rs, &r)
		byLabel[r.Label] = &r
	}
	// The server's CPU per sign is divided by a bare HMAC-SHA256's, the
	// hmac run's own CPU per sign, measured in the same run.
	hmac := 0.0
	if h := byLabel[labelHMAC]; h != nil {
		hmac = h.ClientCPU
	}
	fmt.Fprintln(stdout, "| run | what | c | requests | errors | throughput (signs/s) | p50 | p90 | p99 | max | server CPU per sign | ÷ one HMAC |")
	fmt.Fprintln(stdout, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rs {
		errs := r.Requests - r.OK
		for _, n := range r.ItemErrors {
			errs += n
		}
		cpu, perHMAC := serverCPU(r), "–"
		if cpu > 0 && hmac > 0 {
			perHMAC = fmt.Sprintf("%.0f×", cpu/hmac)
		}
		cpuCol := "–"
		if cpu > 0 {
			cpuCol = fmtMicros(cpu)
		}
		fmt.Fprintf(stdout, "| %s | %s | %d | %d | %d | %.0f | %s | %s | %s | %s | %s | %s |\n",
			r.Label, r.Target, r.Concurrency, r.Requests, errs, r.SignRate,
			fmtMicros(r.Latency.P50), fmtMicros(r.Latency.P90), fmtMicros(r.Latency.P99), fmtMicros(r.Latency.Max), cpuCol, perHMAC)
	}
	fmt.Fprintln(stdout)
	ratio := func(name, num, den string, f func(n, d *Result) (float64, string)) {
		n, d := byLabel[num], byLabel[den]
		if n == nil || d == nil {
			return
		}
		v, unit := f(n, d)
		fmt.Fprintf(stdout, "- %s: %.2f%s\n", name, v, unit)
	}
	rate := func(n, d *Result) (float64, string) { return n.SignRate / d.SignRate, "×" }
	p50 := func(n, d *Result) (float64, string) { return n.Latency.P50 / d.Latency.P50, "×" }
	p99 := func(n, d *Result) (float64, string) { return n.Latency.P99 / d.Latency.P99, "×" }
	for _, t := range []string{labelTransit, labelTransitRoot} {
		ratio("signerd warm gRPC / "+t+" throughput", labelGRPCWarm, t, rate)
		ratio("signerd warm REST (mTLS) / "+t+" throughput", labelRESTWarm, t, rate)
		ratio("signerd warm REST (JWT) / "+t+" throughput", labelRESTJWT, t, rate)
	}
	for _, k := range []string{labelKV, labelKVPool3, labelKVRoot} {
		ratio("signerd cold gRPC / "+k+" latency, p50", labelGRPCCold, k, p50)
		ratio("signerd cold gRPC / "+k+" latency, p99", labelGRPCCold, k, p99)
	}
	ratio("signerd cold gRPC / kv latency with one client, p50", labelGRPCCold1, labelKV1, p50)
	ratio("signerd cold gRPC / kv latency with one client, p99", labelGRPCCold1, labelKV1, p99)
	ratio("signerd warm gRPC / bare HMAC throughput", labelGRPCWarm, labelHMAC,
		func(n, d *Result) (float64, string) { return 100 * n.SignRate / d.SignRate, "%" })
	printTargets(stdout, byLabel)
	printCPUTargets(stdout, byLabel, hmac)
	for _, l := range []string{labelHMAC, labelGRPCWarm, labelRESTWarm, labelRESTJWT} {
		r := byLabel[l]
		if r == nil || r.SignRate == 0 {
			continue
		}
		note := ""
		if l != labelHMAC {
			note = ", load generator included"
		}
		fmt.Fprintf(stdout, "- machine time per sign, %s: %s (%d CPUs / %.0f signs/s%s)\n",
			l, fmtMicros(float64(r.NumCPU)*1e6/r.SignRate), r.NumCPU, r.SignRate, note)
	}
	return nil
}

// serverCPU is a run's server CPU per sign, or 0 if it was not measured;
// for the hmac run, which has no server, its own.
func serverCPU(r *Result) float64 {
	if r.Mode == "hmac" {
		return r.ClientCPU
	}
	return r.ServerCPU
}

// check is one target: got against want, a floor or (atMost) a ceiling.
type check struct {
	name      string
	got, want float64
	atMost    bool
	unit      string
}

// printCPUTargets checks the runs against the targets of issue 15, all
// ratios within one run: signerd's CPU per warm sign against a bare
// HMAC-SHA256's, and signerd's throughput against Vault Transit's at the
// same concurrency, with a root and with a least-privilege token.
func printCPUTargets(w io.Writer, byLabel map[string]*Result, hmac float64) {
	var cs []check
	for _, t := range []struct {
		label, name string
		max         float64
	}{
		{labelRESTJWT, "REST (TLS + JWT)", 80},
		{labelRESTWarm, "REST (mTLS)", 70},
		{labelGRPCWarm, "gRPC (mTLS)", 40},
	} {
		if r := byLabel[t.label]; r != nil && r.ServerCPU > 0 && hmac > 0 {
			cs = append(cs, check{"signerd CPU per warm sign ÷ one HMAC, " + t.name, r.ServerCPU / hmac, t.max, true, "×"})
		}
	}
	for _, tr := range []struct{ label, name string }{{labelTransitRoot, "root token"}, {labelTransit, "least-privilege token"}} {
		for _, t := range []struct {
			label, name string
			min         float64
		}{{labelRESTJWT, "REST (JWT)", 3}, {labelGRPCWarm, "gRPC", 6}} {
			if r, v := byLabel[t.label], byLabel[tr.label]; r != nil && v != nil && v.SignRate > 0 {
				cs = append(cs, check{t.name + " / Vault Transit (" + tr.name + ") throughput", r.SignRate / v.SignRate, t.min, false, "×"})
			}
		}
	}
	printChecks(w, "Targets of issue 15 (ratios within this run):", cs)
}

// printTargets checks the runs against the targets of issue 7 (2 cores,
// load generator on the same machine). Memory is checked by
// scripts/bench.sh, which measures it.
func printTargets(w io.Writer, byLabel map[string]*Result) {
	var cs []check
	if r := byLabel[labelGRPCWarm]; r != nil {
		cs = append(cs,
			check{"warm gRPC throughput", r.SignRate, 25000, false, " signs/s"},
			check{"warm gRPC p99", r.Latency.P99 / 1e3, 5, true, " ms"})
	}
	if r := byLabel[labelRESTWarm]; r != nil {
		cs = append(cs, check{"warm REST throughput", r.SignRate, 12000, false, " signs/s"})
	}
	if r, t := byLabel[labelGRPCWarm], byLabel[labelTransit]; r != nil && t != nil {
		cs = append(cs, check{"warm gRPC / Transit HMAC throughput", r.SignRate / t.SignRate, 5, false, "×"})
	}
	if r, k := byLabel[labelGRPCCold], byLabel[labelKV]; r != nil && k != nil {
		cs = append(cs, check{"cold gRPC / raw KV read latency (p50)", r.Latency.P50 / k.Latency.P50, 1.25, true, "×"})
	}
	if r, k := byLabel[labelGRPCCold1], byLabel[labelKV1]; r != nil && k != nil {
		cs = append(cs, check{"cold gRPC / raw KV read latency (p50, one client)", r.Latency.P50 / k.Latency.P50, 1.25, true, "×"})
	}
	printChecks(w, "Targets of issue 7:", cs)
}

func printChecks(w io.Writer, title string, cs []check) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, title)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | |")
	fmt.Fprintln(w, "|---|--:|---|")
	for _, c := range cs {
		op, ok := "≥", c.got >= c.want
		if c.atMost {
			op, ok = "≤", c.got <= c.want
		}
		verdict := "met"
		if !ok {
			if c.atMost {
				verdict = fmt.Sprintf("missed: %.2f× the bound", c.got/c.want)
			} else {
				verdict = fmt.Sprintf("missed: %.0f%% of the target", 100*c.got/c.want)
			}
		}
		fmt.Fprintf(w, "| %s %s %s%s | %s%s | %s |\n", c.name, op, fmtNum(c.want), c.unit, fmtNum(c.got), c.unit, verdict)
	}
	fmt.Fprintln(w)
}

func fmtNum(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
