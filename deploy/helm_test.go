package deploy_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// chartDir is the Helm chart, relative to this package.
const chartDir = "helm/signerd"

// chartKubeVersion is the oldest Kubernetes the chart supports (the preStop
// sleep action): it renders and lints against that.
var chartKubeVersion = chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"}

// chartValues reads value files (relative to the chart) the way `helm -f a
// -f b` does: later files win.
func chartValues(t *testing.T, dir string, files ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range slices.Backward(files) {
		v, err := chartutil.ReadValuesFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vals = chartutil.CoalesceTables(vals, v.AsMap())
	}
	return vals
}

// renderChartValues renders the chart as `helm template signerd DIR -n ns`
// with vals over its values.yaml: values.schema.json is applied, as at
// install. It returns the manifests as one YAML stream.
func renderChartValues(dir, ns string, vals map[string]any) ([]byte, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartKubeVersion
	if ok := chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()); !ok {
		return nil, fmt.Errorf("chart's kubeVersion %q excludes %s", ch.Metadata.KubeVersion, caps.KubeVersion)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "signerd", Namespace: ns, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		if !strings.HasSuffix(name, ".yaml") || strings.TrimSpace(stripComments(body)) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, body)
	}
	return []byte(out.String()), nil
}

var commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)

func stripComments(s string) string { return commentLine.ReplaceAllString(s, "") }

func renderChart(t *testing.T, dir, ns string, files ...string) []byte {
	t.Helper()
	out, err := renderChartValues(dir, ns, chartValues(t, dir, files...))
	if err != nil {
		t.Fatalf("helm template %s %v: %v", dir, files, err)
	}
	return out
}

// chartValueSets are the chart's value files under ci/ (the convention
// `ct lint` follows); each must be one of TestManifests' renderings.
func chartValueSets(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no value sets in %s/ci (%v)", chartDir, err)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(chartDir, f)
	}
	return files
}

// TestEveryChartValueSetIsTested: a value set added under ci/ cannot skip
// TestManifests' checks.
func TestEveryChartValueSetIsTested(t *testing.T) {
	for _, f := range chartValueSets(t) {
		if !slices.ContainsFunc(overlays, func(o overlay) bool { return slices.Contains(o.chartValues, f) }) {
			t.Errorf("%s/%s is in no entry of this package's overlays list: add it", chartDir, f)
		}
	}
}

// TestChartLint is `helm lint --strict` for the defaults and every value
// set: no error and no warning (an INFO, such as "icon is recommended", is
// allowed).
func TestChartLint(t *testing.T) {
	for _, f := range append([]string{""}, chartValueSets(t)...) {
		t.Run(cmpOr(f, "defaults"), func(t *testing.T) {
			var vals map[string]any
			if f != "" {
				vals = chartValues(t, chartDir, f)
			}
			l := lint.AllWithKubeVersion(chartDir, vals, "signerd", &chartKubeVersion)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestChartSchemaRefuses: values.schema.json (or the chart's own checks)
// refuses each wrong value at install, with an error naming the value.
func TestChartSchemaRefuses(t *testing.T) {
	cases := []struct {
		name, values string
		want         string // in the error
	}{
		{"unknown key (a typo, or replicas the HPA owns)", "replicaCount: 3", "replicaCount"},
		{"digest not sha256", "image: {digest: 'sha256:abc'}", "image/digest"},
		{"no tag and no digest", "image: {tag: ''}", "image"},
		{"tag with a colon", "image: {tag: 'v1:2'}", "image/tag"},
		{"pull policy", "image: {pullPolicy: Sometimes}", "image/pullPolicy"},
		{"Vault over plain HTTP", "vault: {address: 'http://vault.vault.svc:8200'}", "vault/address"},
		{"Vault auth method", "vault: {auth: {method: token}}", "vault/auth/method"},
		{"approle without its secret", "vault: {auth: {method: approle, approle: {roleId: r}}}", "secretIdSecret"},
		{"approle without a role id", "vault: {auth: {method: approle, approle: {secretIdSecret: s}}}", "roleId"},
		{"token lifetime too short", "vault: {auth: {kubernetes: {tokenExpirationSeconds: 60}}}", "tokenExpirationSeconds"},
		{"empty role", "vault: {auth: {kubernetes: {role: ''}}}", "vault/auth/kubernetes/role"},
		{"secret name", "tls: {serverSecret: 'Signerd_TLS'}", "tls/serverSecret"},
		{"memory limit missing", "resources: {limits: {memory: null}}", "resources/limits"},
		{"cpu quantity", "resources: {requests: {cpu: 'lots'}}", "resources/requests/cpu"},
		{"no replicas", "autoscaling: {minReplicas: 0}", "autoscaling/minReplicas"},
		{"max not above min", "autoscaling: {minReplicas: 5, maxReplicas: 5}", "maxReplicas must be more than"},
		{"PDB blocking drains", "podDisruptionBudget: {maxUnavailable: 0}", "podDisruptionBudget/maxUnavailable"},
		{"Vault peers empty (deny all, or worse)", "networkPolicy: {vault: {peers: []}}", "networkPolicy/vault/peers"},
		{"Vault peer that allows everything", "networkPolicy: {vault: {peers: [{}]}}", "networkPolicy/vault/peers/0"},
		{"Vault peer: every namespace", "networkPolicy: {vault: {peers: [{namespaceSelector: {}}]}}", "networkPolicy/vault/peers/0/namespaceSelector"},
		{"monitoring namespace", "networkPolicy: {monitoringNamespace: 'Monitoring!'}", "networkPolicy/monitoringNamespace"},
		{"log level", "logLevel: verbose", "logLevel"},
		{"no alerts while readiness ignores Vault", "prometheusRule: {enabled: false}", "prometheusRule/enabled"},
		{"no products", "products: {products: null}", "products"},
		{"backend without rpcs", "policy: {backends: [{identity: x, products: ['*']}]}", "rpcs"},
		{"scrape interval", "serviceMonitor: {interval: often}", "serviceMonitor/interval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(c.values))
			if err != nil {
				t.Fatal(err)
			}
			_, err = renderChartValues(chartDir, "signerd", vals)
			if err == nil {
				t.Fatalf("%s: rendered; want it refused", c.values)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error does not name %q:\n%v", c.values, c.want, err)
			}
		})
	}
	// Every value set the chart ships passes the schema: a too strict
	// schema would fail here, not at a user's install.
	for _, f := range append([]string{""}, chartValueSets(t)...) {
		if f == "" {
			if _, err := renderChartValues(chartDir, "signerd", nil); err != nil {
				t.Errorf("defaults: %v", err)
			}
			continue
		}
		if _, err := renderChartValues(chartDir, "signerd", chartValues(t, chartDir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestChartMatchesKustomizeProd: the chart's defaults render the objects
// of deploy/k8s/overlays/prod, field for field. The only differences
// allowed are ones that carry no security meaning, removed by normalize:
// Helm's bookkeeping labels (instance, version, managed-by, chart), the
// config checksum annotation, kustomize's content hash in the ConfigMap's
// name, the order of name-keyed lists, and the ConfigMap's YAML comments.
// The Namespace, which `helm install -n` needs before the chart, is
// compared from the rendering with namespace.create=true.
func TestChartMatchesKustomizeProd(t *testing.T) {
	want := normalizedObjects(t, "kustomize prod", build(t, "k8s/overlays/prod"))
	got := normalizedObjects(t, "chart", renderChart(t, chartDir, "signerd"))
	withNS := normalizedObjects(t, "chart namespace.create", mustRender(t, map[string]any{"namespace": map[string]any{"create": true}}))
	const ns = "Namespace/signerd"
	if _, ok := got[ns]; ok {
		t.Errorf("the chart's defaults render %s: helm install -n signerd would fail on it", ns)
	}
	got[ns] = withNS[ns]
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		if !ok || g == nil {
			t.Errorf("%s: in the kustomize prod overlay, not in the chart", k)
			continue
		}
		for _, d := range diff(k, want[k], g) {
			t.Error(d)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: rendered by the chart, not by the kustomize prod overlay", k)
		}
	}
}

func mustRender(t *testing.T, vals map[string]any) []byte {
	t.Helper()
	out, err := renderChartValues(chartDir, "signerd", vals)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// normalizedObjects decodes each object strictly into its API type (the
// same types as TestManifests), re-encodes it (so "2" and 2, 0440 and 288
// compare equal), and strips what carries no security meaning. Keyed by
// Kind/name.
func normalizedObjects(t *testing.T, what string, out []byte) map[string]any {
	t.Helper()
	m := decode(t, what, out) // strict decoding, one error per bad field
	var objs []any
	for _, o := range m.namespaces {
		objs = append(objs, o)
	}
	for _, o := range m.configMaps {
		objs = append(objs, o)
	}
	for _, o := range m.services {
		objs = append(objs, o)
	}
	objs = append(objs, m.sa, m.dep, m.hpa, m.pdb, m.np)
	if m.sm != nil {
		objs = append(objs, m.sm)
	}
	if m.rule != nil {
		objs = append(objs, m.rule)
	}
	// kustomize's ConfigMap name carries a content hash (signerd-config-
	// 5f2h...); references to it are compared by the base name.
	renames := map[string]string{}
	for name := range m.configMaps {
		if strings.HasPrefix(name, "signerd-config-") {
			renames[name] = "signerd-config"
		}
	}
	res := map[string]any{}
	for _, o := range objs {
		js, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(js, &v); err != nil {
			t.Fatal(err)
		}
		meta, _ := v["metadata"].(map[string]any)
		kind, _ := v["kind"].(string)
		if kind == "ConfigMap" {
			// The files' content, not their comments or layout.
			data, _ := v["data"].(map[string]any)
			for k, raw := range data {
				var parsed any
				if err := yaml.Unmarshal([]byte(raw.(string)), &parsed); err != nil {
					t.Fatalf("%s: ConfigMap key %s: %v", what, k, err)
				}
				data[k] = parsed
			}
		}
		n := normalize(v, renames)
		name, _ := meta["name"].(string)
		if r, ok := renames[name]; ok {
			name = r
		}
		res[kind+"/"+name] = n
	}
	return res
}

// helmOnlyLabels are labels Helm charts carry by convention and kustomize
// does not (or, part-of, not on what the overlay's components add):
// bookkeeping, no selector depends on them alone.
var helmOnlyLabels = []string{"app.kubernetes.io/instance", "app.kubernetes.io/part-of", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}

func normalize(v any, renames map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			switch k {
			case "labels", "matchLabels", "selector":
				if l, ok := e.(map[string]any); ok {
					l = maps.Clone(l)
					for _, h := range helmOnlyLabels {
						delete(l, h)
					}
					e = l
				}
			case "annotations":
				if a, ok := e.(map[string]any); ok {
					a = maps.Clone(a)
					delete(a, "checksum/config")
					e = a
				}
			case "creationTimestamp":
				continue
			}
			n := normalize(e, renames)
			if m, ok := n.(map[string]any); ok && len(m) == 0 {
				continue // an empty map and an absent one mean the same
			}
			out[k] = n
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e, renames)
		}
		// Name-keyed lists (env, volumes, mounts, ports, containers): their
		// order has no meaning.
		if slices.IndexFunc(out, func(e any) bool { m, ok := e.(map[string]any); return !ok || m["name"] == nil }) < 0 {
			sort.SliceStable(out, func(i, j int) bool {
				return fmt.Sprint(out[i].(map[string]any)["name"]) < fmt.Sprint(out[j].(map[string]any)["name"])
			})
		}
		return out
	case string:
		if r, ok := renames[x]; ok {
			return r
		}
		return x
	default:
		return x
	}
}

// diff lists every path where a and b differ.
func diff(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(mergeKeys(am, bm))) {
			av, ain := am[k]
			bv, bin := bm[k]
			switch {
			case !bin:
				out = append(out, fmt.Sprintf("%s.%s: kustomize %s, chart has none", path, k, show(av)))
			case !ain:
				out = append(out, fmt.Sprintf("%s.%s: chart %s, kustomize has none", path, k, show(bv)))
			default:
				out = append(out, diff(path+"."+k, av, bv)...)
			}
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(a, b) {
		return []string{fmt.Sprintf("%s: kustomize %s, chart %s", path, show(a), show(b))}
	}
	return nil
}

func mergeKeys(a, b map[string]any) map[string]bool {
	k := map[string]bool{}
	for x := range a {
		k[x] = true
	}
	for x := range b {
		k[x] = true
	}
	return k
}

func show(v any) string {
	js, _ := json.Marshal(v)
	return string(js)
}

// checkAppRole: with AppRole, the secret id comes from a required Secret
// and no ServiceAccount token is projected into the pod at all.
func checkAppRole(t *testing.T, m *manifests, c *corev1.Container, settings map[string]string) {
	t.Helper()
	e := env(c)
	if e["SIGNERD_VAULT_AUTH"] != "approle" || e["SIGNERD_VAULT_APPROLE_ROLE_ID"] == "" {
		t.Errorf("SIGNERD_VAULT_AUTH=%q role id %q: want approle with a role id", e["SIGNERD_VAULT_AUTH"], e["SIGNERD_VAULT_APPROLE_ROLE_ID"])
	}
	if e["SIGNERD_VAULT_KV_MOUNT"] != settings["KV_MOUNT"] {
		t.Errorf("SIGNERD_VAULT_KV_MOUNT=%q, want %q", e["SIGNERD_VAULT_KV_MOUNT"], settings["KV_MOUNT"])
	}
	for k := range e {
		if strings.HasPrefix(k, "SIGNERD_VAULT_K8S_") {
			t.Errorf("%s set with AppRole", k)
		}
	}
	file := e["SIGNERD_VAULT_APPROLE_SECRET_ID_FILE"]
	v := m.mountOf(t, c, file)
	if v == nil || v.Secret == nil || (v.Secret.Optional != nil && *v.Secret.Optional) {
		t.Fatalf("SIGNERD_VAULT_APPROLE_SECRET_ID_FILE=%q is not on a required Secret volume", file)
	}
	for _, vol := range m.pod().Volumes {
		if vol.Projected != nil {
			t.Errorf("volume %s projects a token: AppRole needs none", vol.Name)
		}
	}
}
