package deploy_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/signerd/signerd/metrics"
	"github.com/signerd/signerd/secrets"
)

// TestEveryOverlayIsTested: each directory under k8s/overlays is in
// overlays, so that a new overlay cannot skip TestManifests' checks (the
// HPA and readiness rules among them).
func TestEveryOverlayIsTested(t *testing.T) {
	dirs, err := filepath.Glob("k8s/overlays/*/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no overlays under k8s/overlays")
	}
	for _, k := range dirs {
		dir := filepath.ToSlash(filepath.Dir(k))
		if !slices.ContainsFunc(overlays, func(o overlay) bool { return o.dir == dir }) {
			t.Errorf("%s is not in this package's overlays list: add it", dir)
		}
	}
}

// checkReplicasOwnedByHPA: a Deployment an HPA scales must not set
// spec.replicas, or every `kubectl apply` resets the count the HPA chose
// (and a scaled-out deployment drops back under load).
func checkReplicasOwnedByHPA(t *testing.T, m *manifests) {
	t.Helper()
	for _, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		found := false
		for _, d := range m.deployments {
			if ref.Kind != "Deployment" || ref.Name != d.Name || (ref.APIVersion != "" && ref.APIVersion != "apps/v1") {
				continue
			}
			found = true
			if d.Spec.Replicas != nil {
				t.Errorf("Deployment %s sets spec.replicas %d, but HPA %s scales it: every apply would reset the HPA's count",
					d.Name, *d.Spec.Replicas, h.Name)
			}
		}
		if !found {
			t.Errorf("HPA %s scales %s %s, which is not rendered", h.Name, ref.Kind, ref.Name)
		}
	}
}

// checkReadinessAndVault: where readiness does not follow Vault (prod), a
// Vault outage keeps the pods in their Services, so the cached devices are
// served; then alerts on signerd's Vault metrics must report the outage,
// on metric names and labels signerd really exports.
func checkReadinessAndVault(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
	t.Helper()
	got := true // the flag's default
	if raw, ok := env(c)["SIGNERD_READY_REQUIRES_VAULT"]; ok {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			t.Fatalf("SIGNERD_READY_REQUIRES_VAULT=%q: %v", raw, err)
		}
		got = b
	}
	if got != o.readyRequiresVault {
		t.Errorf("ready-requires-vault is %t, want %t (deploy/README.md, \"Readiness and Vault\")", got, o.readyRequiresVault)
	}
	if got {
		return
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("readiness must stay on /readyz (it still reports start-up and drain)")
	}
	if m.rule == nil {
		t.Fatal("readiness does not follow Vault, but no PrometheusRule alerts on Vault (components/vault-alerts)")
	}
	exported := exportedSeries(t)
	alerts := map[string]string{}
	for _, g := range m.rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = r.Expr
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.For == "" {
				t.Errorf("rule %q: want alert, for, severity and summary", r.Alert)
			}
			checkExprSeries(t, r.Alert, r.Expr, exported)
		}
	}
	// Each way Vault can fail signerd has its alert.
	for alert, series := range map[string]*regexp.Regexp{
		"SignerdVaultUnavailable":      regexp.MustCompile(`signerd_vault_requests_total\{code=~"error\|5\.\."\}`),
		"SignerdServingStaleSecrets":   regexp.MustCompile(`signerd_secret_cache_lookups_total\{outcome="stale"\}`),
		"SignerdVaultPermissionDenied": regexp.MustCompile(`signerd_vault_requests_total\{code=~"401\|403"\}`),
	} {
		if expr, ok := alerts[alert]; !ok || !series.MatchString(expr) {
			t.Errorf("alert %s: missing or not on %s (expr %q)", alert, series, expr)
		}
	}
}

var (
	seriesSel = regexp.MustCompile(`(signerd_[a-z0-9_]+)(?:\{([^}]*)\})?`)
	matcher   = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
)

// checkExprSeries: every signerd series an expression selects exists with
// the labels it matches on, and every label value it asks for equality with
// is one signerd produces.
func checkExprSeries(t *testing.T, alert, expr string, exported map[string]map[string][]string) {
	t.Helper()
	sels := seriesSel.FindAllStringSubmatch(expr, -1)
	if len(sels) == 0 {
		t.Errorf("alert %s: selects no signerd series: %q", alert, expr)
	}
	for _, sel := range sels {
		labels, ok := exported[sel[1]]
		if !ok {
			t.Errorf("alert %s: signerd exports no %s (metrics/metrics.go)", alert, sel[1])
			continue
		}
		for _, mt := range matcher.FindAllStringSubmatch(sel[2], -1) {
			values, ok := labels[mt[1]]
			if !ok {
				t.Errorf("alert %s: %s has no label %s", alert, sel[1], mt[1])
				continue
			}
			if mt[2] == "=" && !slices.Contains(values, mt[3]) {
				t.Errorf("alert %s: %s{%s=%q}: signerd produces %s values %v only", alert, sel[1], mt[1], mt[3], mt[1], values)
			}
			if mt[2] == "=~" {
				re, err := regexp.Compile("^(?:" + mt[3] + ")$")
				if err != nil {
					t.Errorf("alert %s: %s: %v", alert, mt[0], err)
				} else if !slices.ContainsFunc(values, re.MatchString) {
					t.Errorf("alert %s: %s matches none of the values %v signerd produced", alert, mt[0], values)
				}
			}
		}
	}
}

// exportedSeries drives signerd's own metrics through the code that feeds
// them in signerd (a secrets.Cache whose backend fails, the instrumented
// Vault transport, answered 403 and unreachable) and returns each metric
// family with the values seen per label.
func exportedSeries(t *testing.T) map[string]map[string][]string {
	t.Helper()
	m := metrics.New()
	ctx := context.Background()

	// A cached device whose backend then fails past the TTL: "stale".
	now := time.Unix(1_700_000_000, 0)
	store := &flakyStore{}
	cache, err := secrets.NewCache(store, secrets.CacheConfig{
		TTL: time.Minute, MaxStale: time.Hour, Now: func() time.Time { return now }, Observe: m.CacheObserve,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := secrets.DeviceID{ProductKey: "a1", DeviceName: "d"}
	if _, err := cache.Lookup(ctx, id); err != nil {
		t.Fatal(err)
	}
	store.fail = true
	now = now.Add(2 * time.Minute)
	if _, err := cache.Lookup(ctx, id); err != nil {
		t.Fatalf("stale lookup: %v", err)
	}

	// The Vault transport: no answer, and a 403.
	for _, rt := range []http.RoundTripper{
		roundTripper(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") }),
		roundTripper(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusForbidden, Body: http.NoBody, Request: r}, nil
		}),
		roundTripper(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: r}, nil
		}),
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://vault.invalid/v1/iot/data/devices/a1/d", nil)
		if resp, err := m.VaultTransport(rt).RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}

	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	for _, f := range families {
		labels := map[string][]string{}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if !slices.Contains(labels[l.GetName()], l.GetValue()) {
					labels[l.GetName()] = append(labels[l.GetName()], l.GetValue())
				}
			}
		}
		out[f.GetName()] = labels
	}
	return out
}

type flakyStore struct{ fail bool }

func (s *flakyStore) Lookup(context.Context, secrets.DeviceID) (secrets.Secret, error) {
	if s.fail {
		return secrets.Secret{}, secrets.ErrUnavailable
	}
	return secrets.NewSecret([]byte("s")), nil
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
