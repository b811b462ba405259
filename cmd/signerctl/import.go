package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signerd/signerd/secrets"
)

// tally counts outcomes at one target; progress reads it while workers add.
type tally struct {
	n [notTried + 1]atomic.Int64
}

func (t *tally) add(o outcome) { t.n[o].Add(1) }
func (t *tally) get(o outcome) int64 {
	return t.n[o].Load()
}

// result is what happened to one device.
type result struct {
	done         bool
	kv, tr       outcome
	kvMsg, trMsg string
}

// testHookDone, when set (by tests), is called after each device.
var testHookDone func()

func runImport(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	start := time.Now()
	cfg, err := parseImport(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "signerctl import:", err)
		return exitUsage
	}
	f, err := os.Open(cfg.file)
	if err != nil {
		fmt.Fprintln(stderr, "signerctl import:", err)
		return exitUsage
	}
	ex, err := readExport(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "signerctl import: %s: %v\n", cfg.file, err)
		return exitUsage
	}
	// Bad rows first, in file order: they are known before Vault is asked.
	for _, b := range ex.bad {
		fmt.Fprintf(stdout, "line %d: bad row: %s\n", b.line, b.reason)
	}

	st := &store{
		dryRun: cfg.dryRun, mount: cfg.vault.KVMount, trMount: cfg.vault.TransitMount,
		tmpl: cfg.vault.KVPath, field: cfg.vault.KVField, timeout: cfg.vault.timeout,
	}
	if !cfg.offline && len(ex.devices) > 0 {
		v, err := connect(ctx, cfg.vault, cfg.concurrency, stderr)
		if err != nil {
			// On one line: Vault's messages come with line breaks.
			fmt.Fprintln(stderr, "signerctl import:", strings.Join(strings.Fields(err.Error()), " "))
			return exitUsage
		}
		defer v.Close()
		st.v, st.kv = v, v.Client().KVv2(cfg.vault.KVMount)
		if cfg.transit {
			if st.transit, err = secrets.NewTransit(v.Client(), secrets.TransitConfig{Mount: cfg.vault.TransitMount, Timeout: cfg.vault.timeout}); err != nil {
				fmt.Fprintln(stderr, "signerctl import:", err)
				return exitUsage
			}
		}
		if err := st.preflight(ctx, ex.devices[0].id); err != nil {
			fmt.Fprintln(stderr, "signerctl import:", err)
			return exitUsage
		}
	}

	var kvT, trT tally
	results := make([]result, len(ex.devices))
	var stoppedForErrors atomic.Bool
	if st.v != nil {
		stoppedForErrors.Store(importAll(ctx, cfg, st, ex.devices, results, &kvT, &trT, stderr))
	}

	// Conflicts and errors, in file order.
	attempted := 0
	for i, r := range results {
		if !r.done {
			continue
		}
		attempted++
		d := ex.devices[i]
		if r.kv == conflict || r.kv == failed {
			fmt.Fprintf(stdout, "line %d: %s: vault kv: %s: %s\n", d.line, label(d), word(r.kv), r.kvMsg)
		}
		if r.tr == conflict || r.tr == failed {
			fmt.Fprintf(stdout, "line %d: %s: transit: %s: %s\n", d.line, label(d), word(r.tr), r.trMsg)
		}
	}

	elapsed := time.Since(start)
	interrupted := ctx.Err() != nil && attempted < len(ex.devices)
	stopped := stoppedForErrors.Load() && attempted < len(ex.devices)
	s := summary{
		file: cfg.file, dryRun: cfg.dryRun, offline: cfg.offline, transit: cfg.transit,
		rows: ex.rows, valid: len(ex.devices), bad: len(ex.bad), attempted: attempted,
		kvWhere: cfg.vault.KVMount + "/" + cfg.vault.KVPath, trWhere: cfg.vault.TransitMount,
		kv: &kvT, tr: &trT, elapsed: elapsed, interrupted: interrupted, stopped: stopped, maxErrors: cfg.maxErrors,
	}
	s.print(stdout)
	return s.status()
}

// importAll hands the devices to cfg.concurrency workers until all are done,
// ctx ends (^C: requests in flight still finish), or -max-errors is reached,
// which it reports.
func importAll(ctx context.Context, cfg importConfig, st *store, devices []device, results []result, kvT, trT *tally, stderr io.Writer) (stoppedForErrors bool) {
	dispatch, stop := context.WithCancel(ctx)
	defer stop()
	// Requests are not cancelled by ^C, only bounded by their timeouts, so
	// that each device in flight ends with a known outcome.
	reqCtx := context.WithoutCancel(ctx)

	var errCount atomic.Int64
	var stopped atomic.Bool
	var done atomic.Int64
	prog := newProgress(cfg, stderr, int64(len(devices)), &done, kvT, trT)

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for i := range jobs {
				d := devices[i]
				r := result{done: true, tr: notTried}
				r.kv, r.kvMsg = st.putKV(reqCtx, d)
				kvT.add(r.kv)
				if st.transit != nil {
					if r.kv == created || r.kv == unchanged {
						r.tr, r.trMsg = st.putTransit(reqCtx, d)
					}
					trT.add(r.tr)
				}
				results[i] = r
				if r.kv == failed || r.tr == failed {
					if n := errCount.Add(1); cfg.maxErrors > 0 && n >= int64(cfg.maxErrors) {
						stopped.Store(true)
						stop()
					}
				}
				done.Add(1)
				prog.add()
				if testHookDone != nil {
					testHookDone()
				}
			}
		})
	}
feed:
	for i := range devices {
		select {
		case <-dispatch.Done():
			break feed
		case jobs <- i:
		}
	}
	close(jobs)
	wg.Wait()
	prog.finish()
	return stopped.Load()
}

func word(o outcome) string {
	switch o {
	case conflict:
		return "conflict"
	case failed:
		return "error"
	}
	return ""
}

type summary struct {
	file                        string
	dryRun, offline, transit    bool
	rows, valid, bad, attempted int
	kvWhere, trWhere            string
	kv, tr                      *tally
	elapsed                     time.Duration
	interrupted, stopped        bool
	maxErrors                   int
}

func (s summary) status() int {
	switch {
	case s.interrupted || s.stopped:
		return exitIncomplete
	case s.bad > 0 || s.problems() > 0:
		return exitRowsFailed
	}
	return exitOK
}

func (s summary) problems() int64 {
	return s.kv.get(conflict) + s.kv.get(failed) + s.tr.get(conflict) + s.tr.get(failed)
}

func (s summary) print(w io.Writer) {
	mode := ""
	switch {
	case s.offline:
		mode = " (dry run, offline: file checked only, Vault not contacted)"
	case s.dryRun:
		mode = " (dry run: Vault read, nothing written)"
	}
	fmt.Fprintf(w, "summary%s: %s: %d rows: %d valid, %d bad\n", mode, s.file, s.rows, s.valid, s.bad)
	createdWord := "created"
	if s.dryRun {
		createdWord = "to create"
	}
	line := func(name string, t *tally, extra string) {
		fmt.Fprintf(w, "  %s: %d %s, %d unchanged, %d conflicts, %d errors%s\n", name,
			t.get(created), createdWord, t.get(unchanged), t.get(conflict), t.get(failed), extra)
	}
	if !s.offline {
		line("vault kv "+s.kvWhere, s.kv, "")
		if s.transit {
			line("transit "+s.trWhere, s.tr, fmt.Sprintf(", %d not tried (kv conflict or error)", s.tr.get(notTried)))
		}
	}
	if left := s.valid - s.attempted; left > 0 && !s.offline {
		why := "interrupted"
		if s.stopped {
			why = fmt.Sprintf("stopped after %d errors (-max-errors)", s.maxErrors)
		}
		fmt.Fprintf(w, "  not attempted: %d devices, %s: re-run the same command to continue\n", left, why)
	}
	handled := s.bad + s.attempted
	if s.offline {
		handled = s.rows
	}
	rate := float64(handled) / max(s.elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "  elapsed %s, %.0f rows/s\n", s.elapsed.Round(time.Millisecond), rate)
	var why []string
	if s.bad > 0 {
		why = append(why, fmt.Sprintf("%d bad rows", s.bad))
	}
	if c := s.kv.get(conflict) + s.tr.get(conflict); c > 0 {
		why = append(why, fmt.Sprintf("%d conflicts", c))
	}
	if e := s.kv.get(failed) + s.tr.get(failed); e > 0 {
		why = append(why, fmt.Sprintf("%d errors", e))
	}
	if s.interrupted || s.stopped {
		why = append(why, "incomplete")
	}
	if len(why) == 0 {
		fmt.Fprintln(w, "result: ok")
		return
	}
	fmt.Fprintf(w, "result: %s (exit status %d; see the lines above)\n", strings.Join(why, ", "), s.status())
}
