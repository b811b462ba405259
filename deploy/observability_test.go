package deploy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = "observability/alerts.yaml"
	ruleCRDFile   = "observability/prometheusrule.yaml"
	dashboardFile = "observability/signerd-dashboard.json"
	runbookFile   = "../docs/RUNBOOK.md"
)

// promParser parses PromQL as Prometheus does by default.
var promParser = parser.NewParser(parser.Options{})

// loadRules is `promtool check rules`: the file parses strictly (unknown
// fields are errors) and every rule validates (expressions parse, for and
// labels are well-formed, templates in annotations compile).
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(data, false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if groups == nil || len(groups.Groups) == 0 {
		t.Fatalf("%s: no rule groups", rulesFile)
	}
	return groups
}

type alertRule struct {
	group string
	rule  rulefmt.Rule
}

func alertRules(t *testing.T) map[string]alertRule {
	t.Helper()
	out := map[string]alertRule{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule (%s); this file holds alerts only", g.Name, r.Record)
				continue
			}
			if _, dup := out[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			out[r.Alert] = alertRule{g.Name, r}
		}
	}
	return out
}

// TestAlertRules checks the rules like `promtool check rules` and holds
// them to what operators rely on: severity, summary, a runbook section,
// the PrometheusRule equal to the plain file, and the vault-alerts
// component (which the prod overlay and the chart render) equal to the
// same rules here.
func TestAlertRules(t *testing.T) {
	rules := alertRules(t)
	for _, want := range []string{
		"SignerdUnavailableErrors", "SignerdVaultPermissionDenied", "SignerdVaultTokenRenewalFailing",
		"SignerdPlatformBreakerOpen", "SignerdCacheHitRatioLow", "SignerdLatencyHigh", "SignerdNoReadyReplicas",
		"SignerdVaultUnavailable", "SignerdServingStaleSecrets",
	} {
		if _, ok := rules[want]; !ok {
			t.Errorf("no alert %s", want)
		}
	}
	runbook, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range rules {
		if !slices.Contains([]string{"critical", "warning"}, r.rule.Labels["severity"]) {
			t.Errorf("%s: severity %q, want critical or warning", name, r.rule.Labels["severity"])
		}
		if r.rule.Annotations["summary"] == "" || r.rule.Annotations["description"] == "" || r.rule.For == 0 {
			t.Errorf("%s: want a summary, a description and a for duration", name)
		}
		// The runbook has a section per alert, and the link finds it.
		if !regexp.MustCompile(`(?m)^## ` + name + `$`).Match(runbook) {
			t.Errorf("%s: docs/RUNBOOK.md has no section \"## %s\"", name, name)
		}
		if want := "docs/RUNBOOK.md#" + strings.ToLower(name); !strings.HasSuffix(r.rule.Annotations["runbook_url"], want) {
			t.Errorf("%s: runbook_url %q does not end in %s", name, r.rule.Annotations["runbook_url"], want)
		}
		for _, section := range []string{"Meaning", "Confirm", "Act"} {
			if !runbookSection(string(runbook), name, section) {
				t.Errorf("docs/RUNBOOK.md, %s: no \"**%s**\" paragraph", name, section)
			}
		}
	}

	// The PrometheusRule holds the plain file's groups, unchanged.
	crd, err := os.ReadFile(ruleCRDFile)
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := decodeStrict(string(crd), &pr); err != nil {
		t.Fatalf("%s: %v", ruleCRDFile, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Errorf("%s is %s %s", ruleCRDFile, pr.APIVersion, pr.Kind)
	}
	plain, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var plainGroups struct {
		Groups any `json:"groups"`
	}
	if err := yaml.Unmarshal(plain, &plainGroups); err != nil {
		t.Fatal(err)
	}
	if d := diff("groups", toGeneric(t, plainGroups.Groups), toGeneric(t, pr.Spec.Groups)); len(d) > 0 {
		t.Errorf("%s differs from %s:\n%s", ruleCRDFile, rulesFile, strings.Join(d, "\n"))
	}

	// deploy/k8s/components/vault-alerts (and so the chart, which
	// TestChartMatchesKustomizeProd compares with it) says the same as
	// this file's rules of the same names.
	m := render(t, "k8s/overlays/prod")
	if m.rule == nil {
		t.Fatal("the prod overlay renders no PrometheusRule")
	}
	for _, g := range m.rule.Spec.Groups {
		for _, kr := range g.Rules {
			r, ok := rules[kr.Alert]
			if !ok {
				t.Errorf("vault-alerts' %s is not in %s", kr.Alert, rulesFile)
				continue
			}
			if strings.TrimSpace(kr.Expr) != strings.TrimSpace(r.rule.Expr) || kr.For != r.rule.For.String() ||
				!maps.Equal(kr.Labels, r.rule.Labels) || !maps.Equal(kr.Annotations, r.rule.Annotations) {
				t.Errorf("alert %s: vault-alerts component and %s differ", kr.Alert, rulesFile)
			}
		}
	}
}

func toGeneric(t *testing.T, v any) any {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	return normalize(out, nil)
}

// runbookSection reports whether the runbook's section for alert has a
// paragraph starting with **what**.
func runbookSection(runbook, alert, what string) bool {
	_, rest, ok := strings.Cut(runbook, "\n## "+alert+"\n")
	if !ok {
		return false
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return strings.Contains(rest, "\n**"+what+"**")
}

// alertCase is one synthetic history for an alert, in promtool's
// input_series notation (series at 1 m steps from time 0), and whether the alert must be
// firing at the end, with which labels.
type alertCase struct {
	name   string
	load   string
	at     time.Duration
	firing []map[string]string // nil: must not fire
}

// TestAlertsFire is `promtool test rules` for every alert: each fires on
// a synthetic series that shows its condition for long enough, with the
// labels its summary uses, and stays silent on a healthy one (or one too
// short for its for duration).
func TestAlertsFire(t *testing.T) {
	rules := alertRules(t)
	cases := map[string][]alertCase{
		"SignerdUnavailableErrors": {
			{name: "10% UNAVAILABLE", at: 20 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_grpc_server_handled_total{namespace="signerd",instance="a",grpc_method="SignMqttConnect",grpc_code="OK"} 0+90x30
signerd_grpc_server_handled_total{namespace="signerd",instance="a",grpc_method="SignMqttConnect",grpc_code="Unavailable"} 0+10x30`},
			{name: "1% UNAVAILABLE", at: 20 * time.Minute, load: `
signerd_grpc_server_handled_total{namespace="signerd",instance="a",grpc_method="SignMqttConnect",grpc_code="OK"} 0+99x30
signerd_grpc_server_handled_total{namespace="signerd",instance="a",grpc_method="SignMqttConnect",grpc_code="Unavailable"} 0+1x30`},
		},
		"SignerdVaultPermissionDenied": {
			{name: "403s", at: 15 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="200"} 0+50x30
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="403"} 0+1x30`},
			{name: "404s are unknown devices, not denials", at: 15 * time.Minute, load: `
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="404"} 0+5x30`},
		},
		"SignerdVaultUnavailable": {
			{name: "Vault sealed", at: 10 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="200"} 0+10x30
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="503"} 0+30x30`},
			{name: "few errors", at: 10 * time.Minute, load: `
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="200"} 0+90x30
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="error"} 0+1x30`},
		},
		"SignerdServingStaleSecrets": {
			{name: "stale lookups", at: 15 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="stale"} 0+3x30`},
			{name: "none stale", at: 15 * time.Minute, load: `
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="stale"} 7x30
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="hit"} 0+30x30`},
		},
		"SignerdVaultTokenRenewalFailing": {
			{name: "re-logins every few minutes", at: 90 * time.Minute, firing: []map[string]string{{"namespace": "signerd", "instance": "a"}}, load: `
signerd_vault_token_renewals_total{namespace="signerd",instance="a",kind="relogin"} 0+1x120
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="200"} 0+10x120
process_start_time_seconds{namespace="signerd",instance="a"} 0x120`},
			{name: "no renewal in 3h", at: 4 * time.Hour, firing: []map[string]string{{"namespace": "signerd", "instance": "b"}}, load: `
signerd_vault_requests_total{namespace="signerd",instance="b",method="GET",code="200"} 0+10x300
process_start_time_seconds{namespace="signerd",instance="b"} 0x300`},
			{name: "renewing every 40 min, a re-login a day", at: 4 * time.Hour, load: `
signerd_vault_token_renewals_total{namespace="signerd",instance="a",kind="renew"} 0+0.025x300
signerd_vault_token_renewals_total{namespace="signerd",instance="a",kind="relogin"} 1x300
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="200"} 0+10x300
process_start_time_seconds{namespace="signerd",instance="a"} 0x300`},
			{name: "young replica", at: 2 * time.Hour, load: `
signerd_vault_requests_total{namespace="signerd",instance="a",method="GET",code="200"} 0+10x300
process_start_time_seconds{namespace="signerd",instance="a"} 0x300`},
		},
		"SignerdLatencyHigh": {
			{name: "p99 250ms", at: 20 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: latencyLoad(0.25)},
			{name: "p99 5ms", at: 20 * time.Minute, load: latencyLoad(0.005)},
		},
		"SignerdCacheHitRatioLow": {
			{name: "20% hits", at: 50 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="hit"} 0+200x60
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="miss"} 0+800x60`},
			{name: "95% hits", at: 50 * time.Minute, load: `
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="hit"} 0+950x60
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="miss"} 0+50x60`},
			{name: "idle: too few lookups to judge", at: 50 * time.Minute, load: `
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="hit"} 0+1x60
signerd_secret_cache_lookups_total{namespace="signerd",instance="a",outcome="miss"} 0+9x60`},
		},
		"SignerdNoReadyReplicas": {
			{name: "none available", at: 10 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
kube_deployment_status_replicas_available{namespace="signerd",deployment="signerd"} 3x4 0x20`},
			{name: "one available", at: 10 * time.Minute, load: `
kube_deployment_status_replicas_available{namespace="signerd",deployment="signerd"} 3x4 1x20`},
			{name: "a blip shorter than for", at: 10 * time.Minute, load: `
kube_deployment_status_replicas_available{namespace="signerd",deployment="signerd"} 3x8 0x1 3x10`},
		},
		"SignerdPlatformBreakerOpen": {
			{name: "open", at: 10 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_platform_breaker_state{namespace="signerd",instance="a",endpoint="https://iot-auth.cn-shanghai.aliyuncs.com"} 0x4 2x20
signerd_platform_breaker_state{namespace="signerd",instance="b",endpoint="https://iot-auth.cn-shanghai.aliyuncs.com"} 0x30`},
			{name: "one endpoint of two down, probes failing", at: 10 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_platform_breaker_state{namespace="signerd",instance="a",endpoint="https://iot-auth.cn-shanghai.aliyuncs.com"} 0x30
signerd_platform_breaker_state{namespace="signerd",instance="a",endpoint="https://auth.example.com"} 0x4 2 1 2 2 1 2 2 1 2 2 1 2 2 1 2`},
			{name: "half-open, no call since", at: 10 * time.Minute, firing: []map[string]string{{"namespace": "signerd"}}, load: `
signerd_platform_breaker_state{namespace="signerd",instance="a",endpoint="https://iot-auth.cn-shanghai.aliyuncs.com"} 0x4 2 1x20`},
			{name: "opened once, closed by its first probe", at: 15 * time.Minute, load: `
signerd_platform_breaker_state{namespace="signerd",instance="a",endpoint="https://iot-auth.cn-shanghai.aliyuncs.com"} 0x8 2 0x10`},
			{name: "closed", at: 10 * time.Minute, load: `
signerd_platform_breaker_state{namespace="signerd",instance="a",endpoint="https://iot-auth.cn-shanghai.aliyuncs.com"} 0x30
signerd_platform_breaker_state{namespace="signerd",instance="b",endpoint="https://iot-auth.cn-shanghai.aliyuncs.com"} 0x30`},
		},
	}
	for name := range rules {
		if _, ok := cases[name]; !ok {
			t.Errorf("alert %s has no case here", name)
		}
	}
	for name, cs := range cases {
		r, ok := rules[name]
		if !ok {
			t.Errorf("no alert %s", name)
			continue
		}
		fired := false
		for _, c := range cs {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				got := evalAlert(t, r.rule, c.load, c.at)
				if c.firing == nil {
					if len(got) > 0 {
						t.Errorf("fires %v; want silence", got)
					}
					return
				}
				fired = true
				if len(got) != len(c.firing) {
					t.Fatalf("firing %v, want %v", got, c.firing)
				}
				for i, want := range c.firing {
					for k, v := range want {
						if got[i].Get(k) != v {
							t.Errorf("alert %d: %s=%q, want %q (%v)", i, k, got[i].Get(k), v, got[i])
						}
					}
				}
			})
		}
		if !fired {
			t.Errorf("%s: no case makes it fire", name)
		}
	}
}

// latencyLoad is SignMqttConnect's histogram with every call taking about
// d (all calls in the first bucket at or above d).
func latencyLoad(d float64) string {
	var b strings.Builder
	for _, le := range []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1} {
		inc := 0
		if le >= d {
			inc = 100
		}
		fmt.Fprintf(&b, "signerd_grpc_server_handling_seconds_bucket{namespace=\"signerd\",instance=\"a\",grpc_method=\"SignMqttConnect\",transport=\"grpc\",le=\"%g\"} 0+%dx30\n", le, inc)
	}
	fmt.Fprintf(&b, "signerd_grpc_server_handling_seconds_bucket{namespace=\"signerd\",instance=\"a\",grpc_method=\"SignMqttConnect\",transport=\"grpc\",le=\"+Inf\"} 0+100x30\n")
	return b.String()
}

// evalAlert evaluates an alerting rule the way Prometheus' rule manager
// does: at every 1 m evaluation from time 0 up to at, a series the
// expression returns becomes pending, and firing once it has been returned
// at every evaluation for the rule's for duration. load holds one series a
// line in promtool's input_series notation ("metric{l="v"} 0+10x30": a
// value a minute from time 0). It returns the labels of the alerts firing
// at at (the rule's labels added), sorted.
//
// The storage is the few lines below rather than promqltest's: that
// package's test storage links Prometheus' remote-write clients, and with
// them the AWS, Azure and Google Cloud SDKs, doubling this package's build.
func evalAlert(t *testing.T, r rulefmt.Rule, load string, at time.Duration) []labels.Labels {
	t.Helper()
	db := loadSeries(t, load)
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, Parser: promParser,
	})
	since := map[uint64]time.Duration{}
	var firing []labels.Labels
	for ts := time.Duration(0); ts <= at; ts += time.Minute {
		q, err := engine.NewInstantQuery(context.Background(), db, nil, r.Expr, time.Unix(0, 0).Add(ts))
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatalf("%s at %s: %v", r.Alert, ts, res.Err)
		}
		vec, err := res.Vector()
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		q.Close()
		seen := map[uint64]bool{}
		firing = firing[:0]
		for _, s := range vec {
			lb := labels.NewBuilder(s.Metric)
			lb.Del(model.MetricNameLabel)
			lb.Set(model.AlertNameLabel, r.Alert)
			for k, v := range r.Labels {
				lb.Set(k, v)
			}
			l := lb.Labels()
			h := l.Hash()
			seen[h] = true
			if _, ok := since[h]; !ok {
				since[h] = ts
			}
			if ts-since[h] >= time.Duration(r.For) {
				firing = append(firing, l)
			}
		}
		for h := range since {
			if !seen[h] {
				delete(since, h)
			}
		}
	}
	slices.SortFunc(firing, labels.Compare)
	return firing
}

// loadSeries parses one series a line (parser.ParseSeriesDesc, the
// notation of promtool's input_series) into an in-memory storage.
func loadSeries(t *testing.T, load string) storage.Queryable {
	t.Helper()
	var all []storage.Series
	for _, line := range strings.Split(strings.TrimSpace(load), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		lset, values, err := promParser.ParseSeriesDesc(line)
		if err != nil {
			t.Fatalf("series %q: %v", line, err)
		}
		var samples []chunks.Sample
		for i, v := range values {
			if !v.Omitted {
				samples = append(samples, floatSample{t: (time.Duration(i) * time.Minute).Milliseconds(), f: v.Value})
			}
		}
		all = append(all, storage.NewListSeries(lset, samples))
	}
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range all {
				if slices.IndexFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(s.Labels().Get(m.Name)) }) < 0 {
					out = append(out, s)
				}
			}
			return &seriesSet{series: out, i: -1}
		},
	}}
}

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// otherExporters are the series the dashboard and alerts take from outside
// signerd, with the labels they use.
var otherExporters = map[string][]string{
	// kube-state-metrics
	"kube_deployment_status_replicas_available": {"deployment"},
}

// scrapeLabels are added by Prometheus' scrape (the ServiceMonitor, or
// kubernetes_sd relabelling), not by signerd.
var scrapeLabels = []string{"namespace", "instance", "job", "pod", "service", "endpoint", "container"}

// TestObservabilitySeriesExist runs the signerd binary the image holds
// against a real Vault and the platform emulator, drives real traffic
// through it (gRPC and REST, cache hits, misses and evictions, token
// renewals, a rate-limit refusal, PreVerify until the platform's failures
// open the circuit breaker), then checks every series a dashboard panel or
// alert selects: its name is in /metrics (or is another exporter's, listed
// above), each label it matches on is one the series has, and each value
// it asks for by equality was produced.
func TestObservabilitySeriesExist(t *testing.T) {
	families := driveSignerd(t)

	type use struct{ where, expr string }
	var uses []use
	for name, r := range alertRules(t) {
		uses = append(uses, use{"alert " + name, r.rule.Expr})
	}
	dash := loadDashboard(t)
	for _, p := range dash.panels() {
		if len(p.Targets) == 0 && p.Type != "row" {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			uses = append(uses, use{"panel " + p.Title, grafanaToPromQL(tg.Expr)})
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type == "query" {
			m := regexp.MustCompile(`^label_values\((\w+), *(\w+)\)$`).FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, v.Definition)
				continue
			}
			uses = append(uses, use{"variable " + v.Name, m[1]})
		}
	}

	for _, u := range uses {
		expr, err := promParser.ParseExpr(u.expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", u.where, u.expr, err)
			continue
		}
		selectors := 0
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			selectors++
			checkSelector(t, u.where, vs, families)
			return nil
		})
		if selectors == 0 {
			t.Errorf("%s: selects no series: %q", u.where, u.expr)
		}
	}
}

// series is what /metrics holds of one sample name: its label names and
// the values each had.
type series map[string][]string

// checkSelector checks one selector against /metrics' series.
func checkSelector(t *testing.T, where string, vs *parser.VectorSelector, got map[string]series) {
	t.Helper()
	if labelsOf, ok := otherExporters[vs.Name]; ok {
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel && !slices.Contains(scrapeLabels, m.Name) && !slices.Contains(labelsOf, m.Name) {
				t.Errorf("%s: %s has no label %s (this test's otherExporters)", where, vs.Name, m.Name)
			}
		}
		return
	}
	s, ok := got[vs.Name]
	if !ok {
		t.Errorf("%s: %s is not in signerd's /metrics (nor listed as another exporter's)", where, vs.Name)
		return
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel || slices.Contains(scrapeLabels, m.Name) {
			continue
		}
		values, ok := s[m.Name]
		if !ok {
			t.Errorf("%s: %s has no label %s (it has %v)", where, vs.Name, m.Name, slices.Sorted(maps.Keys(s)))
			continue
		}
		if m.Type == labels.MatchEqual && !slices.Contains(values, m.Value) {
			t.Errorf("%s: %s{%s=%q}: signerd produced %s values %v only", where, vs.Name, m.Name, m.Value, m.Name, values)
		}
		if m.Type == labels.MatchRegexp && !slices.ContainsFunc(values, m.Matches) {
			t.Errorf("%s: %s{%s=~%q} matches none of the values %v signerd produced", where, vs.Name, m.Name, m.Value, values)
		}
	}
}

// grafanaToPromQL replaces the dashboard's variables with what Grafana
// would put there.
func grafanaToPromQL(expr string) string {
	return strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*").Replace(expr)
}

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func (d dashboard) panels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: want a uid, a title and panels", dashboardFile)
	}
	return d
}

// TestDashboardCoversTheIssue: the dashboard shows what an operator needs
// (issue 17's list), each as the series that measures it.
func TestDashboardCoversTheIssue(t *testing.T) {
	var all []string
	for _, p := range loadDashboard(t).panels() {
		for _, tg := range p.Targets {
			all = append(all, tg.Expr)
		}
	}
	joined := strings.Join(all, "\n")
	for what, re := range map[string]string{
		"request rate by RPC and code":       `signerd_grpc_server_handled_total.*by \(grpc_method, grpc_code\)|by \(grpc_method, grpc_code\) \(rate\(signerd_grpc_server_handled_total`,
		"latency by RPC and transport":       `histogram_quantile\(0\.99, sum by \(le, grpc_method, transport\) \(rate\(signerd_grpc_server_handling_seconds_bucket`,
		"cache hit ratio":                    `signerd_secret_cache_lookups_total\{[^}]*outcome=~"hit\|negative_hit"`,
		"cache size":                         `signerd_secret_cache_entries`,
		"Vault latency":                      `signerd_vault_request_duration_seconds_bucket`,
		"Vault errors":                       `signerd_vault_requests_total\{[^}]*code!~"2\.\."`,
		"Vault token renewals":               `signerd_vault_token_renewals_total`,
		"PreVerify upstream latency":         `histogram_quantile\(0\.99, sum by \(le, outcome\) \(rate\(signerd_platform_preverify_duration_seconds_bucket`,
		"breaker state per endpoint":         `max by \(endpoint\) \(signerd_platform_breaker_state\{`,
		"rate-limit rejections":              `signerd_rate_limited_total`,
		"available replicas (no ready ones)": `kube_deployment_status_replicas_available`,
	} {
		if !regexp.MustCompile(re).MatchString(joined) {
			t.Errorf("no panel shows %s (/%s/)", what, re)
		}
	}
}

// driveSignerd starts signerd and sends it the traffic whose metrics the
// dashboard and alerts watch, then returns /metrics by sample name.
func driveSignerd(t *testing.T) map[string]series {
	t.Helper()
	bin := signerdBinary(t) // before the 2 s tokens below: the build takes longer
	ctx := context.Background()
	srv := vaulttest.StartT(t)
	const secret = "0123456789abcdef0123456789abcdef"
	for i := range 4 {
		if err := srv.PutDevice(ctx, "a1Obs", fmt.Sprintf("obs-dev-%02d", i), secret); err != nil {
			t.Fatal(err)
		}
	}
	// AppRole with a 2 s token renewable up to 5 s: renewals, then a
	// re-login, happen while the test runs.
	roleID, secretID, err := srv.AppRole(ctx, "observability", 2*time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	emu := platformtest.New(t)
	emu.AddDevice("a1Obs", "obs-dev-00", secret)

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := pkitest.NewCA(t, "observability test CA")
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	const backendID = "spiffe://signerd.test/observability"
	backendCert := ca.Backend(t, backendID)
	backend := pkitest.ClientTLS(ca.Pool(), &backendCert)
	grpcAddr, httpAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{
		"-grpc-addr", grpcAddr, "-http-addr", httpAddr, "-metrics-addr", metricsAddr,
		"-tls-cert-file", certFile, "-tls-key-file", keyFile, "-client-ca-file", write("ca.pem", string(ca.PEM)),
		"-policy-file", write("policy.yaml", "backends:\n  - identity: "+backendID+"\n    products: [\"*\"]\n    rpcs: [\"*\"]\n"),
		"-audit-log", filepath.Join(dir, "audit.log"),
		"-vault-addr", srv.Addr, "-vault-auth", "approle", "-vault-approle-role-id", roleID,
		"-vault-approle-secret-id-file", write("secret-id", secretID),
		// a1Transit keeps its secrets in Transit, which signerd's policy
		// does not grant here: Vault answers 403.
		"-products", write("products.yaml", "defaults:\n  authBaseUrl: "+emu.URL()+"\nproducts:\n  a1Transit:\n    transit: true\n"),
		"-platform-ca-file", write("platform-ca.pem", string(emu.CertPEM())),
		"-cache-size", "2", "-cache-ttl", "1s", "-rate-limit", "0.001", "-rate-burst", "1", "-preverify-rate-limit", "0",
	}
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, bin, args...)
	cmd.Env = signerdEnv()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("signerd's output:\n%s", logs.String())
		}
	})
	metricsURL := "http://" + metricsAddr + "/metrics"
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(metricsURL); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("signerd exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("signerd's metrics listener never came up\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(backend)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := signerv1.NewSignerServiceClient(conn)
	// Four devices through a two-entry cache, twice each: misses, hits,
	// evictions; one device Vault does not know (a negative entry).
	for range 2 {
		for i := range 4 {
			if _, err := c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Obs", DeviceName: fmt.Sprintf("obs-dev-%02d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, _ = c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Obs", DeviceName: "obs-unknown"})
	// REST, through the gateway (transport="rest").
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: backend}}
	resp, err := httpc.Post("https://"+httpAddr+"/v1/products/a1Obs/devices/"+url.PathEscape("obs-dev-00")+":signMqttConnect",
		"application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST SignMqttConnect: %d %s", resp.StatusCode, body)
	}
	// A caller without a client certificate that carries a device's
	// certificate in the headers TLS-terminating proxies set: signerd takes
	// identity from the TLS handshake only (deploy/README.md, "A way in for
	// devices"), so each is UNAUTHENTICATED (HTTP 401).
	victim := ca.Device(t, "a1Obs", "obs-dev-00")
	victimPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: victim.Certificate[0]}))
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pkitest.ClientTLS(ca.Pool(), nil)}}
	for _, h := range proxyIdentityHeaders(victimPEM, victim.Certificate[0]) {
		req, _ := http.NewRequest(http.MethodPost, "https://"+httpAddr+"/v1/products/a1Obs/devices/obs-dev-00:signMqttConnect", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := anon.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("REST call with %v and no client certificate: %d %s, want 401", slices.Sorted(maps.Keys(h)), resp.StatusCode, b)
		}
	}
	// A device over its budget (one call): RESOURCE_EXHAUSTED, counted in
	// signerd_rate_limited_total.
	dev := ca.Device(t, "a1Obs", "obs-dev-01")
	devConn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(pkitest.ClientTLS(ca.Pool(), &dev))))
	if err != nil {
		t.Fatal(err)
	}
	defer devConn.Close()
	dc := signerv1.NewSignerServiceClient(devConn)
	own := &signerv1.SignMqttConnectRequest{ProductKey: "a1Obs", DeviceName: "obs-dev-01"}
	_, _ = dc.SignMqttConnect(ctx, own)
	_, _ = dc.SignMqttConnect(ctx, own)
	// A device of the Transit product: Vault denies signerd (403).
	_, _ = c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Transit", DeviceName: "obs-transit"})
	// PreVerify: one that succeeds, then devices whose calls the platform
	// answers 503 until the breaker opens (5 failed attempts, 3 per call)
	// and refuses calls without a round trip (the breaker gauge, checked
	// below, says open).
	if _, err := c.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: "a1Obs", DeviceName: "obs-dev-00"}); err != nil {
		t.Fatalf("PreVerify: %v", err)
	}
	emu.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: http.StatusServiceUnavailable})
	for i := 1; i <= 3; i++ {
		_, _ = c.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: "a1Obs", DeviceName: fmt.Sprintf("obs-dev-%02d", i)})
	}
	// Let the token renew, reach its max TTL and be replaced by a login.
	time.Sleep(6 * time.Second)
	// Vault goes away: a device cached within the TTL (1 s) is then served
	// stale; one the two-entry cache no longer holds (obs-dev-00: 02 and
	// 03 came after it) gets UNAVAILABLE, its lookup no answer.
	if _, err := c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Obs", DeviceName: "obs-dev-02"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	srv.Stop()
	if _, err := c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Obs", DeviceName: "obs-dev-02"}); err != nil {
		t.Fatalf("a cached device while Vault is down: %v", err)
	}
	if _, err := c.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Obs", DeviceName: "obs-dev-00"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("an uncached device while Vault is down: %v, want UNAVAILABLE", err)
	}

	resp, err = http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	// The one platform endpoint's breaker, opened above, stays open for
	// the default 30 s: the gauge must say so under the endpoint's URL.
	breakerOpen := false
	for _, m := range fams["signerd_platform_breaker_state"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "endpoint" && l.GetValue() == emu.URL() && m.GetGauge().GetValue() == 2 {
				breakerOpen = true
			}
		}
	}
	if !breakerOpen {
		t.Errorf("/metrics lacks signerd_platform_breaker_state{endpoint=%q} 2: %v", emu.URL(), fams["signerd_platform_breaker_state"])
	}
	out := map[string]series{}
	// add records a sample's name and label names; its label values only
	// if counted, so that an equality on a value must match something
	// signerd really did, not a series pre-created at zero.
	add := func(name string, m *dto.Metric, counted bool, extra ...string) {
		s := out[name]
		if s == nil {
			s = series{}
			out[name] = s
		}
		put := func(k, v string) {
			if !counted {
				if _, ok := s[k]; !ok {
					s[k] = nil
				}
				return
			}
			if !slices.Contains(s[k], v) {
				s[k] = append(s[k], v)
			}
		}
		for _, l := range m.GetLabel() {
			put(l.GetName(), l.GetValue())
		}
		for i := 0; i+1 < len(extra); i += 2 {
			put(extra[i], extra[i+1])
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				counted := m.GetHistogram().GetSampleCount() > 0
				add(name+"_count", m, counted)
				add(name+"_sum", m, counted)
				for _, b := range m.GetHistogram().GetBucket() {
					add(name+"_bucket", m, b.GetCumulativeCount() > 0, "le", formatLe(b.GetUpperBound()))
				}
			case dto.MetricType_COUNTER:
				add(name, m, m.GetCounter().GetValue() > 0)
			default:
				add(name, m, true)
			}
		}
	}
	return out
}

// formatLe writes a bucket bound as the exposition format does.
func formatLe(v float64) string {
	if math.IsInf(v, +1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// proxyIdentityHeaders are the headers TLS-terminating proxies use to pass
// on a client certificate or its verdict, each set as a proxy would, with
// the certificate of a device the caller is not. signerd must trust none.
func proxyIdentityHeaders(certPEM string, der []byte) []map[string]string {
	esc := url.QueryEscape(certPEM)
	return []map[string]string{
		{"X-Forwarded-Client-Cert": `Hash=00;Cert="` + esc + `";Subject="CN=a1Obs.obs-dev-00";URI=aliyun-iot://a1Obs/obs-dev-00`}, // Envoy, Istio
		{"Ssl-Client-Cert": esc, "Ssl-Client-Verify": "SUCCESS"},                                                                  // ingress-nginx auth-tls
		{"X-Ssl-Client-Cert": esc, "X-Ssl-Client-Verify": "SUCCESS", "X-Ssl-Client-S-Dn": "CN=a1Obs.obs-dev-00"},                  // HAProxy, F5
		{"X-Client-Cert": esc, "X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1"},
		{"Client-Cert": ":" + base64.StdEncoding.EncodeToString(der) + ":"}, // RFC 9440
	}
}
