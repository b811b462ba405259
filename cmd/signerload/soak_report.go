package main

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SoakResult is what a soak reports (soak.json; report.md renders it).
type SoakResult struct {
	Command     string    `json:"command"`
	Started     time.Time `json:"started"`
	Seconds     float64   `json:"seconds"`
	Devices     int       `json:"devices"`
	Rate        float64   `json:"rate"`
	Concurrency int       `json:"concurrency"`
	WorkDir     string    `json:"workDir"`
	SignerdPID  int       `json:"signerdPid"`
	SignerdExit string    `json:"signerdExit"`

	Calls         int64                       `json:"calls"`
	Items         int64                       `json:"batchItems"`
	Wrong         int64                       `json:"wrong"`
	WrongWhat     map[string]int64            `json:"wrongWhat,omitempty"`
	ByKind        map[string]map[string]int64 `json:"byKind"`
	DuringFault   map[string]int64            `json:"acceptedDuringFaults"`
	Unexpected    map[string]int64            `json:"unexpected"`
	PlatformCalls int                         `json:"platformCalls"`
	LogErrors     int                         `json:"signerdErrorLogLines"`
	FirstSeen     map[string]float64          `json:"firstSeenSeconds,omitempty"`

	Windows []window `json:"faults"`
	Samples []sample `json:"samples"`

	Flat     flatRule             `json:"flatRule"`
	Flatness map[string]flatCheck `json:"flatness"`
	Failures []string             `json:"failures,omitempty"`
	Pass     bool                 `json:"pass"`
}

// flatRule: resources are flat after warm-up when the mean of the last
// quarter of the run is within tolerance (a fraction) of the mean of the
// second quarter, or within the absolute slack.
type flatRule struct {
	tolerance       float64
	slackRSSMiB     float64
	slackGoroutines float64
	slackFDs        float64
}

func (f flatRule) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]float64{"tolerance": f.tolerance, "slackRssMiB": f.slackRSSMiB,
		"slackGoroutines": f.slackGoroutines, "slackFds": f.slackFDs})
}

// flatCheck is one resource's verdict.
type flatCheck struct {
	Q2        float64 `json:"q2"`
	Q4        float64 `json:"q4"`
	ChangePct float64 `json:"changePct"`
	Samples   [2]int  `json:"samples"`
	Flat      bool    `json:"flat"`
}

// checkFlat compares the means of the samples in the second and last
// quarters of [0, total] seconds.
func checkFlat(series []sample, total float64, get func(sample) float64, tolerance, slack float64) flatCheck {
	var c flatCheck
	var s2, s4 float64
	for _, s := range series {
		v := get(s)
		if v < 0 {
			continue
		}
		switch {
		case s.T >= total/4 && s.T < total/2:
			s2 += v
			c.Samples[0]++
		case s.T >= total*3/4:
			s4 += v
			c.Samples[1]++
		}
	}
	if c.Samples[0] == 0 || c.Samples[1] == 0 {
		return c // not flat: nothing to compare
	}
	c.Q2, c.Q4 = s2/float64(c.Samples[0]), s4/float64(c.Samples[1])
	d := c.Q4 - c.Q2
	if c.Q2 > 0 {
		c.ChangePct = 100 * d / c.Q2
	}
	c.Flat = math.Abs(d) <= tolerance*c.Q2 || math.Abs(d) <= slack
	return c
}

func (r *SoakResult) fill(t *tally, ws []window, series []sample, total float64) {
	t.mu.Lock()
	r.Calls, r.Items, r.Wrong = t.calls, t.items, t.wrong
	r.ByKind, r.DuringFault, r.Unexpected, r.WrongWhat, r.FirstSeen = t.byKind, t.duringFault, t.unexpected, t.wrongWhat, t.firstSeen
	t.mu.Unlock()
	r.Windows, r.Samples = ws, series
	r.Flatness = map[string]flatCheck{
		"RSS":        checkFlat(series, total, func(s sample) float64 { return float64(s.RSSKiB) }, r.Flat.tolerance, r.Flat.slackRSSMiB*1024),
		"goroutines": checkFlat(series, total, func(s sample) float64 { return float64(s.Goroutines) }, r.Flat.tolerance, r.Flat.slackGoroutines),
		"FDs":        checkFlat(series, total, func(s sample) float64 { return float64(s.FDs) }, r.Flat.tolerance, r.Flat.slackFDs),
	}
	if r.Wrong > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d wrong answers", r.Wrong))
	}
	var n int64
	for _, c := range r.Unexpected {
		n += c
	}
	if n > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d answers with an unexpected code", n))
	}
	for _, name := range sortedKeys(r.Flatness) {
		if c := r.Flatness[name]; !c.Flat {
			r.Failures = append(r.Failures, fmt.Sprintf("%s not flat: second quarter %.0f, last quarter %.0f (%+.1f%%)", name, c.Q2, c.Q4, c.ChangePct))
		}
	}
	if r.Calls == 0 {
		r.Failures = append(r.Failures, "no calls")
	}
}

func (r *SoakResult) summary() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL: " + strings.Join(r.Failures, "; ")
	}
	fmt.Fprintf(&b, "soak: %s\n%.0fs, %d calls (%d batch items), %d wrong, %d faults injected\n",
		verdict, r.Seconds, r.Calls, r.Items, r.Wrong, len(r.Windows))
	for _, k := range sortedKeys(r.Unexpected) {
		fmt.Fprintf(&b, "  unexpected: %s × %d\n", k, r.Unexpected[k])
	}
	return b.String()
}

func writeSoakReport(dir string, r *SoakResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.svg"), []byte(soakSVG(r)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644)
}

// markdown is the report, for docs/RELIABILITY.md.
func (r *SoakResult) markdown() string {
	var b strings.Builder
	verdict := "**pass**"
	if !r.Pass {
		verdict = "**FAIL**: " + strings.Join(r.Failures, "; ")
	}
	fmt.Fprintf(&b, "Run %s UTC, %.0f s: %s.\n\n", r.Started.Format("2006-01-02 15:04"), r.Seconds, verdict)
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", r.Command)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| devices | %d (Vault KV, file storage, TLS) |\n", r.Devices)
	fmt.Fprintf(&b, "| calls | %d (%.1f/s, %d callers) |\n", r.Calls, float64(r.Calls)/r.Seconds, r.Concurrency)
	fmt.Fprintf(&b, "| batch items | %d |\n", r.Items)
	fmt.Fprintf(&b, "| wrong answers | **%d** |\n", r.Wrong)
	var unexpected, accepted int64
	for _, n := range r.Unexpected {
		unexpected += n
	}
	for _, n := range r.DuringFault {
		accepted += n
	}
	fmt.Fprintf(&b, "| answers with an unexpected code | **%d** |\n", unexpected)
	fmt.Fprintf(&b, "| documented errors during injected faults | %d |\n", accepted)
	fmt.Fprintf(&b, "| platform calls (emulator) | %d |\n", r.PlatformCalls)
	fmt.Fprintf(&b, "| signerd ERROR log lines | %d |\n", r.LogErrors)
	fmt.Fprintf(&b, "| signerd exit after SIGTERM | %s |\n\n", r.SignerdExit)

	b.WriteString("Answers by kind of call and code. Each kind is built to get one answer: OK for signs, batches and PreVerify (batch items: OK, or InvalidArgument/NotFound for the bad and unknown items), NotFound for unknown devices, InvalidArgument for bad input, PermissionDenied or Unauthenticated for callers without permission; Unavailable only during injected faults:\n\n")
	codesSeen := map[string]bool{}
	for _, m := range r.ByKind {
		for c := range m {
			codesSeen[c] = true
		}
	}
	cols := sortedKeys(codesSeen)
	b.WriteString("| kind |")
	for _, c := range cols {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(cols)) + "\n")
	for _, k := range sortedKeys(r.ByKind) {
		b.WriteString("| " + k + " |")
		for _, c := range cols {
			if n := r.ByKind[k][c]; n > 0 {
				fmt.Fprintf(&b, " %d |", n)
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	if len(r.DuringFault) > 0 {
		b.WriteString("\nErrors accepted because the call met an injected fault it depends on (Vault down, or a platform fault for PreVerify, plus a grace of 15 s resp. 45 s):")
		for _, k := range sortedKeys(r.DuringFault) {
			fmt.Fprintf(&b, " %s %d;", k, r.DuringFault[k])
		}
		b.WriteString("\n")
	}
	if len(r.Unexpected) > 0 {
		b.WriteString("\nUnexpected:\n\n")
		for _, k := range sortedKeys(r.Unexpected) {
			fmt.Fprintf(&b, "- %s × %d (first at %.0f s)\n", k, r.Unexpected[k], r.FirstSeen[k])
		}
	}
	if len(r.WrongWhat) > 0 {
		b.WriteString("\nWrong answers:\n\n")
		for _, k := range sortedKeys(r.WrongWhat) {
			fmt.Fprintf(&b, "- %s × %d\n", k, r.WrongWhat[k])
		}
	}

	b.WriteString("\nInjected faults:\n\n| at (s) | fault | lasted (s) | uncached device served again (s after unseal) |\n|---:|---|---:|---:|\n")
	for _, w := range r.Windows {
		at := w.Start.Sub(r.Started).Seconds()
		rec := ""
		if w.Kind == "vault" {
			rec = fmt.Sprintf("%.2f", w.RecoveredS)
		}
		fmt.Fprintf(&b, "| %.0f | %s | %.1f | %s |\n", at, soakFaultName(w.Kind), w.End.Sub(w.Start).Seconds(), rec)
	}

	fmt.Fprintf(&b, "\nResources of the signerd process (%d samples: RSS from /proc/PID/status, goroutines from /metrics `go_goroutines`, FDs from /proc/PID/fd). Flat: the last quarter's mean within %.0f%% of the second quarter's",
		len(r.Samples), 100*r.Flat.tolerance)
	if r.Flat.slackRSSMiB+r.Flat.slackGoroutines+r.Flat.slackFDs > 0 {
		fmt.Fprintf(&b, ", or within %.0f MiB / %.0f goroutines / %.0f FDs", r.Flat.slackRSSMiB, r.Flat.slackGoroutines, r.Flat.slackFDs)
	}
	b.WriteString(".\n\n| resource | min | max | 2nd quarter mean | last quarter mean | change | flat |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, res := range []struct {
		name  string
		unit  float64
		label string
		get   func(sample) int64
	}{
		{"RSS", 1024, " MiB", func(s sample) int64 { return s.RSSKiB }},
		{"goroutines", 1, "", func(s sample) int64 { return s.Goroutines }},
		{"FDs", 1, "", func(s sample) int64 { return s.FDs }},
	} {
		lo, hi := minMax(r.Samples, res.get)
		c := r.Flatness[res.name]
		fmt.Fprintf(&b, "| %s | %.1f%s | %.1f%s | %.1f%s | %.1f%s | %+.1f%% | %s |\n", res.name,
			float64(lo)/res.unit, res.label, float64(hi)/res.unit, res.label, c.Q2/res.unit, res.label, c.Q4/res.unit, res.label, c.ChangePct, yesNo(c.Flat))
	}
	return b.String()
}

func soakFaultName(kind string) string {
	if kind == "vault" {
		return "Vault killed (SIGKILL), restarted, unsealed"
	}
	return kind
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func minMax(ss []sample, get func(sample) int64) (lo, hi int64) {
	lo, hi = -1, -1
	for _, s := range ss {
		v := get(s)
		if v < 0 {
			continue
		}
		if lo < 0 || v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// soakSVG plots RSS and goroutines (and FDs) over time, one panel each,
// with the injected faults shaded: Vault outages red, platform faults
// orange. Plain SVG, written here: no plotting dependency.
func soakSVG(r *SoakResult) string {
	const (
		w, panelH, left, right, top, gap = 760, 170, 70, 20, 40, 50
	)
	panels := []struct {
		title string
		unit  float64
		get   func(sample) int64
		color string
	}{
		{"RSS (MiB)", 1024, func(s sample) int64 { return s.RSSKiB }, "#1f77b4"},
		{"goroutines", 1, func(s sample) int64 { return s.Goroutines }, "#2ca02c"},
		{"open file descriptors", 1, func(s sample) int64 { return s.FDs }, "#9467bd"},
	}
	h := top + len(panels)*(panelH+gap) + 10
	tmax := r.Seconds
	if tmax <= 0 {
		tmax = 1
	}
	pw := float64(w - left - right)
	x := func(t float64) float64 { return left + pw*t/tmax }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="13" font-weight="bold">%s</text>`+"\n", left,
		html.EscapeString(fmt.Sprintf("signerd soak: %.0f min, %d calls, %d wrong; red: Vault down, orange: platform fault", tmax/60, r.Calls, r.Wrong)))
	for i, p := range panels {
		y0 := float64(top + i*(panelH+gap))
		lo, hi := minMax(r.Samples, p.get)
		vlo, vhi := 0.0, float64(hi)/p.unit*1.15
		if hi <= 0 {
			vhi = 1
		}
		_ = lo
		y := func(v float64) float64 { return y0 + panelH - panelH*(v-vlo)/(vhi-vlo) }
		for _, win := range r.Windows {
			a, e := win.Start.Sub(r.Started).Seconds(), win.End.Sub(r.Started).Seconds()
			color := "#ffbb78"
			if win.Kind == "vault" {
				color = "#ff9896"
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s" opacity="0.5"/>`+"\n", x(a), y0, math.Max(x(e)-x(a), 1), panelH, color)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.0f" height="%d" fill="none" stroke="#444"/>`+"\n", left, y0, pw, panelH)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", left, y0-6, p.title)
		for k := 0; k <= 4; k++ {
			v := vlo + (vhi-vlo)*float64(k)/4
			fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
				left, left+pw, y(v), y(v), left-4, y(v)+4, v)
		}
		for k := 0; k <= 6; k++ {
			t := tmax * float64(k) / 6
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f min</text>`+"\n", x(t), y0+panelH+14, t/60)
		}
		var pts []string
		for _, s := range r.Samples {
			if v := p.get(s); v >= 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.T), y(float64(v)/p.unit)))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", p.color, strings.Join(pts, " "))
		// The quarters the flatness check compares.
		for _, q := range []float64{0.25, 0.5, 0.75} {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="3,3"/>`+"\n", x(tmax*q), x(tmax*q), y0, y0+panelH)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
