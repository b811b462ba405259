package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far an import is, on stderr. It shows counts only,
// never a device's name or secret.
type progress interface {
	add()    // one more device done
	finish() // all done (or stopped)
}

// newProgress picks the display: a bar when stderr is a terminal (or
// -progress=bar), plain periodic lines otherwise (logs, CI, pipes).
func newProgress(cfg importConfig, stderr io.Writer, total int64, done *atomic.Int64, kv, tr *tally) progress {
	mode := cfg.progress
	if mode == "auto" {
		mode = "plain"
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	what := "importing"
	if cfg.dryRun {
		what = "checking"
	}
	switch mode {
	case "bar":
		return &barProgress{bar: progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("devices"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
		)}
	case "plain":
		p := &plainProgress{w: stderr, what: what, total: total, done: done, kv: kv, tr: tr,
			transit: cfg.transit, start: time.Now(), stop: make(chan struct{}), exited: make(chan struct{})}
		go p.loop(cfg.progressInterval)
		return p
	}
	return noProgress{}
}

type noProgress struct{}

func (noProgress) add()    {}
func (noProgress) finish() {}

type barProgress struct {
	bar *progressbar.ProgressBar
}

func (b *barProgress) add() { _ = b.bar.Add(1) }

func (b *barProgress) finish() {
	if b.bar.IsFinished() {
		return
	}
	// Stopped early: leave the bar where it is and end its line.
	_ = b.bar.Exit()
}

// plainProgress prints a line every interval, and a last one at the end.
type plainProgress struct {
	w       io.Writer
	what    string
	total   int64
	done    *atomic.Int64
	kv, tr  *tally
	transit bool
	start   time.Time

	once   sync.Once
	stop   chan struct{}
	exited chan struct{}
}

func (p *plainProgress) add() {}

func (p *plainProgress) loop(every time.Duration) {
	defer close(p.exited)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.line()
		}
	}
}

func (p *plainProgress) finish() {
	p.once.Do(func() {
		close(p.stop)
		<-p.exited
		p.line()
	})
}

func (p *plainProgress) line() {
	n := p.done.Load()
	secs := max(time.Since(p.start).Seconds(), 1e-9)
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(n) / float64(p.total)
	}
	tr := ""
	if p.transit {
		tr = fmt.Sprintf("; transit %d created, %d unchanged, %d conflicts, %d errors",
			p.tr.get(created), p.tr.get(unchanged), p.tr.get(conflict), p.tr.get(failed))
	}
	fmt.Fprintf(p.w, "signerctl import: %s: %d/%d devices (%.0f%%), %.0f/s; kv %d created, %d unchanged, %d conflicts, %d errors%s\n",
		p.what, n, p.total, pct, float64(n)/secs,
		p.kv.get(created), p.kv.get(unchanged), p.kv.get(conflict), p.kv.get(failed), tr)
}
