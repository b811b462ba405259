package deploy_test

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path"
	"regexp"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// overlay is a directory operators apply, with what it must render.
type overlay struct {
	name, dir      string
	hpaMin         int32
	image          string
	serviceMonitor bool // the servicemonitor component is included
	spread         bool // pods are spread over nodes and zones
	production     bool // ≥2 replicas, HPA never below 2
	// readyRequiresVault is signerd's -ready-requires-vault as the overlay
	// sets it (true: the flag's default). False needs the vault-alerts
	// component, which then reports a Vault outage instead of readiness.
	readyRequiresVault bool

	// chartValues, for the Helm chart (dir is then the chart): the value
	// files it is rendered with, after its values.yaml.
	chartValues []string
	// apply overrides apply.sh's defaults: the settings a site ran it with,
	// which the manifests must agree with.
	apply map[string]string
	// noNamespace: the Namespace object is not rendered (helm install -n
	// needs the namespace first).
	noNamespace bool
	// approle: signerd logs in to Vault with AppRole, not Kubernetes auth.
	approle bool
	// vaultNamespace is where the NetworkPolicy lets signerd reach Vault
	// (default "vault").
	vaultNamespace string
}

// settings are apply.sh's settings this rendering must agree with.
func (o overlay) settings(defaults map[string]string) map[string]string {
	s := map[string]string{}
	maps.Copy(s, defaults)
	maps.Copy(s, o.apply)
	return s
}

// render renders the overlay (kustomize) or the chart with its values.
func (o overlay) render(t *testing.T) *manifests {
	t.Helper()
	if o.chartValues != nil {
		return decode(t, o.name, renderChart(t, o.dir, cmp.Or(o.apply["K8S_NAMESPACE"], "signerd"), o.chartValues...))
	}
	return render(t, o.dir)
}

var overlays = []overlay{
	{name: "base", dir: "k8s/base", hpaMin: 2, image: "signerd:dev", readyRequiresVault: true},
	{name: "dev", dir: "k8s/overlays/dev", hpaMin: 1, image: "signerd:dev", readyRequiresVault: true},
	{name: "prod", dir: "k8s/overlays/prod", hpaMin: 3, image: "registry.example.com/signerd/signerd:v0.1.0",
		serviceMonitor: true, spread: true, production: true, readyRequiresVault: false},

	// The Helm chart (helm_test.go renders it with Helm's Go library), for
	// each of its value sets: the same checks as the overlays.
	{name: "chart default", dir: chartDir, chartValues: []string{}, hpaMin: 3, image: "registry.example.com/signerd/signerd:v0.1.0",
		serviceMonitor: true, spread: true, production: true, readyRequiresVault: false, noNamespace: true},
	{name: "chart dev", dir: chartDir, chartValues: []string{"ci/dev-values.yaml"}, hpaMin: 1, image: "signerd:dev",
		readyRequiresVault: true, noNamespace: true},
	{name: "chart site", dir: chartDir, chartValues: []string{"ci/site-values.yaml"}, hpaMin: 3,
		image:          "registry.internal:5000/platform/signerd@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		serviceMonitor: true, spread: true, production: true, readyRequiresVault: false,
		apply: map[string]string{"K8S_NAMESPACE": "iot-signing", "ROLE": "iot-signer", "K8S_AUTH_MOUNT": "k8s-prod",
			"KV_MOUNT": "devices-kv", "K8S_AUDIENCE": "vault-prod"},
		vaultNamespace: "secrets"},
	{name: "chart approle", dir: chartDir, chartValues: []string{"ci/approle-values.yaml"}, hpaMin: 3,
		image: "registry.example.com/signerd/signerd:v0.1.0", serviceMonitor: true, spread: true, production: true,
		readyRequiresVault: false, noNamespace: true, approle: true},
}

// manifests is one rendered overlay, every object strictly decoded into
// its k8s.io/api type.
type manifests struct {
	namespaces []*corev1.Namespace
	sa         *corev1.ServiceAccount
	configMaps map[string]*corev1.ConfigMap
	dep        *appsv1.Deployment
	services   map[string]*corev1.Service
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	pdb        *policyv1.PodDisruptionBudget
	np         *networkingv1.NetworkPolicy
	sm         *serviceMonitor
	rule       *prometheusRule
	// The optional ways in for devices (ingress_test.go).
	tlsRoutes    []*gatewayv1.TLSRoute
	ingresses    []*networkingv1.Ingress
	certificates []*certificate
	namespaced   []metav1.ObjectMeta
	// Every Deployment and HPA, for the checks that must hold whatever an
	// overlay adds.
	deployments []*appsv1.Deployment
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor
// the component uses; other fields fail the strict decode.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// prometheusRule is the part of monitoring.coreos.com/v1 PrometheusRule the
// vault-alerts component uses; other fields fail the strict decode.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// build renders a kustomization with kustomize's Go library (the same
// engine as `kubectl apply -k`): no binary, no cluster.
func build(t *testing.T, dir string) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return out
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// render builds dir and strictly decodes every object: a
// misspelt or misplaced field fails here, before any cluster sees it.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	return decode(t, dir, build(t, dir))
}

// decode strictly decodes every object of a multi-document YAML stream
// (kustomize's or the Helm chart's), named dir in errors.
func decode(t *testing.T, dir string, out []byte) *manifests {
	t.Helper()
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{}}
	one := func(kind string, have bool) {
		if have {
			t.Errorf("%s: more than one %s", dir, kind)
		}
	}
	for _, doc := range docSep.Split(string(out), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s: %v\n%s", dir, err, doc)
		}
		var obj any
		var meta *metav1.ObjectMeta
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			obj, meta = o, nil
			m.namespaces = append(m.namespaces, o)
		case "v1 ServiceAccount":
			one(tm.Kind, m.sa != nil)
			m.sa = &corev1.ServiceAccount{}
			obj, meta = m.sa, &m.sa.ObjectMeta
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			obj, meta = o, &o.ObjectMeta
			defer func() { m.configMaps[o.Name] = o }()
		case "v1 Service":
			o := &corev1.Service{}
			obj, meta = o, &o.ObjectMeta
			defer func() { m.services[o.Name] = o }()
		case "apps/v1 Deployment":
			one(tm.Kind, m.dep != nil)
			m.dep = &appsv1.Deployment{}
			obj, meta = m.dep, &m.dep.ObjectMeta
			m.deployments = append(m.deployments, m.dep)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			one(tm.Kind, m.hpa != nil)
			m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
			obj, meta = m.hpa, &m.hpa.ObjectMeta
			m.hpas = append(m.hpas, m.hpa)
		case "policy/v1 PodDisruptionBudget":
			one(tm.Kind, m.pdb != nil)
			m.pdb = &policyv1.PodDisruptionBudget{}
			obj, meta = m.pdb, &m.pdb.ObjectMeta
		case "networking.k8s.io/v1 NetworkPolicy":
			one(tm.Kind, m.np != nil)
			m.np = &networkingv1.NetworkPolicy{}
			obj, meta = m.np, &m.np.ObjectMeta
		case "monitoring.coreos.com/v1 ServiceMonitor":
			one(tm.Kind, m.sm != nil)
			m.sm = &serviceMonitor{}
			obj, meta = m.sm, &m.sm.ObjectMeta
		case "monitoring.coreos.com/v1 PrometheusRule":
			one(tm.Kind, m.rule != nil)
			m.rule = &prometheusRule{}
			obj, meta = m.rule, &m.rule.ObjectMeta
		case "gateway.networking.k8s.io/v1 TLSRoute":
			o := &gatewayv1.TLSRoute{}
			obj, meta = o, &o.ObjectMeta
			m.tlsRoutes = append(m.tlsRoutes, o)
		case "networking.k8s.io/v1 Ingress":
			o := &networkingv1.Ingress{}
			obj, meta = o, &o.ObjectMeta
			m.ingresses = append(m.ingresses, o)
		case "cert-manager.io/v1 Certificate":
			o := &certificate{}
			obj, meta = o, &o.ObjectMeta
			m.certificates = append(m.certificates, o)
		default:
			t.Fatalf("%s: unexpected object %s %s: add it to this test", dir, tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict(doc, obj); err != nil {
			t.Fatalf("%s: %s does not decode strictly into its API type: %v\n%s", dir, tm.Kind, err, doc)
		}
		if meta != nil {
			m.namespaced = append(m.namespaced, *meta)
		}
	}
	for what, missing := range map[string]bool{
		"ServiceAccount": m.sa == nil, "Deployment": m.dep == nil, "HorizontalPodAutoscaler": m.hpa == nil,
		"PodDisruptionBudget": m.pdb == nil, "NetworkPolicy": m.np == nil,
	} {
		if missing {
			t.Fatalf("%s renders no %s", dir, what)
		}
	}
	return m
}

// decodeStrict decodes one YAML document the way the API server does with
// strict field validation: field names are case-sensitive, and unknown or
// duplicate fields are errors. (encoding/json, under sigs.k8s.io/yaml's
// UnmarshalStrict, would take "readOnlyRootFileSystem" for
// readOnlyRootFilesystem.)
func decodeStrict(doc string, obj any) error {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// applyDefaults are the settings deploy/vault/apply.sh uses unless told
// otherwise: the manifests must agree with them.
func applyDefaults(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("vault/apply.sh")
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z0-9_]+)=\$\{([A-Z0-9_]+):-([^}]*)\}$`).FindAllStringSubmatch(string(src), -1) {
		if m[1] == m[2] {
			d[m[1]] = m[3]
		}
	}
	for _, k := range []string{"KV_MOUNT", "ROLE", "K8S_AUTH_MOUNT", "K8S_NAMESPACE", "K8S_SERVICE_ACCOUNT", "K8S_AUDIENCE"} {
		if d[k] == "" {
			t.Fatalf("vault/apply.sh: no default for %s", k)
		}
	}
	return d
}

func (m *manifests) pod() *corev1.PodSpec { return &m.dep.Spec.Template.Spec }

func (m *manifests) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := m.pod().Containers
	for i := range cs {
		if cs[i].Name == "signerd" {
			return &cs[i]
		}
	}
	t.Fatalf("no container named signerd in %v", cs)
	return nil
}

func env(c *corev1.Container) map[string]string {
	e := map[string]string{}
	for _, v := range c.Env {
		e[v.Name] = v.Value
	}
	return e
}

// containerPort resolves a port (number or name) to a port of c.
func containerPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) corev1.ContainerPort {
	t.Helper()
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp
		}
	}
	t.Errorf("port %s is none of the container's ports %v", p.String(), c.Ports)
	return corev1.ContainerPort{}
}

func namedPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	return containerPort(t, c, intstr.FromString(name)).ContainerPort
}

// mountOf returns the volume whose mount holds file.
func (m *manifests) mountOf(t *testing.T, c *corev1.Container, file string) *corev1.Volume {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			for i, v := range m.pod().Volumes {
				if v.Name == vm.Name {
					return &m.pod().Volumes[i]
				}
			}
			t.Fatalf("mount %s names no volume", vm.Name)
		}
	}
	t.Errorf("%s is on no mounted volume (mounts: %v)", file, c.VolumeMounts)
	return nil
}

func selects(sel *metav1.LabelSelector, labels map[string]string) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false // an empty selector selects everything: never what we mean
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labelSet(labels))
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
		return 0
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

func TestManifests(t *testing.T) {
	defaults := applyDefaults(t)
	flags := signerdFlags(t)

	checks := []struct {
		name string
		fn   func(t *testing.T, o overlay, m *manifests, c *corev1.Container)
	}{
		{"namespace", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			ns := o.settings(defaults)["K8S_NAMESPACE"]
			for _, o := range m.namespaced {
				if o.Namespace != ns {
					t.Errorf("%s is in namespace %q, want %q (the Vault role's namespace)", o.Name, o.Namespace, ns)
				}
			}
			if o.noNamespace {
				if len(m.namespaces) != 0 {
					t.Errorf("%d Namespaces rendered, want none", len(m.namespaces))
				}
				return
			}
			if len(m.namespaces) != 1 || m.namespaces[0].Name != ns {
				t.Fatalf("want one Namespace %s, got %d", ns, len(m.namespaces))
			}
			if l := m.namespaces[0].Labels["pod-security.kubernetes.io/enforce"]; l != "restricted" {
				t.Errorf("namespace enforces Pod Security %q, want restricted", l)
			}
		}},
		{"pod security", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			p := m.pod()
			sc := p.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Error("pod: runAsNonRoot is not true")
			}
			if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
				t.Error("pod: runAsUser is not 65532 (distroless nonroot)")
			}
			if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("pod: seccompProfile is not RuntimeDefault")
			}
			if p.HostNetwork || p.HostPID || p.HostIPC {
				t.Error("pod shares a host namespace")
			}
			for _, v := range p.Volumes {
				if v.HostPath != nil {
					t.Errorf("volume %s is a hostPath", v.Name)
				}
			}
			if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
				t.Error("pod: automountServiceAccountToken is not false (signerd needs only the projected Vault token)")
			}
			if m.sa.AutomountServiceAccountToken == nil || *m.sa.AutomountServiceAccountToken {
				t.Error("ServiceAccount: automountServiceAccountToken is not false")
			}
			if sa := o.settings(defaults)["K8S_SERVICE_ACCOUNT"]; p.ServiceAccountName != m.sa.Name || m.sa.Name != sa {
				t.Errorf("pod runs as ServiceAccount %q, the manifest has %q, the Vault role binds %q",
					p.ServiceAccountName, m.sa.Name, sa)
			}
		}},
		{"container security", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			p := m.pod()
			for _, c := range slices.Concat(p.InitContainers, p.Containers) {
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("container %s: no securityContext", c.Name)
					continue
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("container %s is privileged", c.Name)
				}
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					t.Errorf("container %s: capabilities are not drop [ALL] without adds: %+v", c.Name, sc.Capabilities)
				}
				if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot || sc.RunAsUser != nil && *sc.RunAsUser == 0 {
					t.Errorf("container %s may run as root", c.Name)
				}
				if (sc.SeccompProfile == nil && p.SecurityContext.SeccompProfile == nil) ||
					(sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
					t.Errorf("container %s: seccompProfile is not RuntimeDefault", c.Name)
				}
			}
		}},
		{"replicas share the limits", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			// Each replica enforces its share of the per-caller limits; the
			// shares add up to the configured limit at the HPA's minimum
			// and exceed it when scaled out, never fall short of it.
			got := env(c)["SIGNERD_RATE_LIMIT_REPLICAS"]
			if m.hpa.Spec.MinReplicas == nil || got != strconv.Itoa(int(*m.hpa.Spec.MinReplicas)) {
				t.Errorf("SIGNERD_RATE_LIMIT_REPLICAS = %q, want the HPA's minReplicas %d", got, ptrInt(m.hpa.Spec.MinReplicas))
			}
			if p, ok := env(c)["SIGNERD_PREVERIFY_TOKEN_PATH"]; ok && p == "off" {
				t.Error("SIGNERD_PREVERIFY_TOKEN_PATH=off: the replicas would each fetch and hand out their own PreVerify tokens")
			}
		}},
		{"resources", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			p := m.pod()
			for _, c := range slices.Concat(p.InitContainers, p.Containers) {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					lim, hasLim := c.Resources.Limits[r]
					req, hasReq := c.Resources.Requests[r]
					if !hasLim || !hasReq {
						t.Errorf("container %s: %s request and limit must both be set (%v)", c.Name, r, c.Resources)
						continue
					}
					if req.Cmp(lim) > 0 || req.IsZero() {
						t.Errorf("container %s: %s request %s not in (0, limit %s]", c.Name, r, req.String(), lim.String())
					}
				}
				if mem := c.Resources.Limits[corev1.ResourceMemory]; mem.Cmp(resource.MustParse("64Mi")) < 0 {
					t.Errorf("container %s: memory limit %s leaves no room for the secret cache", c.Name, mem.String())
				}
			}
		}},
		{"image", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			if c.Image != o.image {
				t.Errorf("image %q, want %q (set with kustomize images:)", c.Image, o.image)
			}
			if strings.HasSuffix(c.Image, ":latest") || !strings.ContainsAny(path.Base(c.Image), ":@") {
				t.Errorf("image %q is not pinned to a tag or digest", c.Image)
			}
		}},
		{"ports match signerd's listeners", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			e := env(c)
			for name, variable := range map[string]string{"grpc": "SIGNERD_GRPC_ADDR", "http": "SIGNERD_HTTP_ADDR", "metrics": "SIGNERD_METRICS_ADDR"} {
				if got, want := namedPort(t, c, name), portOf(t, e[variable]); got != want || got == 0 {
					t.Errorf("containerPort %s = %d, but %s=%q", name, got, variable, e[variable])
				}
			}
		}},
		{"environment names real flags", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			for _, v := range c.Env {
				name, ok := strings.CutPrefix(v.Name, "SIGNERD_")
				if !ok {
					continue
				}
				flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
				// signerd refuses to start on a SIGNERD_* variable
				// that names no flag.
				if !flags[flag] {
					t.Errorf("%s: signerd has no flag -%s (signerd -h), and refuses to start with it", v.Name, flag)
				}
			}
		}},
		{"probes", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{
				{"startupProbe", c.StartupProbe, "/healthz"},
				{"livenessProbe", c.LivenessProbe, "/healthz"}, // never /readyz: a Vault outage must not restart pods
				{"readinessProbe", c.ReadinessProbe, "/readyz"},
			} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s: missing or not httpGet", p.name)
					continue
				}
				g := p.probe.HTTPGet
				if g.Path != p.path {
					t.Errorf("%s path %q, want %q", p.name, g.Path, p.path)
				}
				if port := containerPort(t, c, g.Port).ContainerPort; port != portOf(t, env(c)["SIGNERD_HTTP_ADDR"]) {
					t.Errorf("%s port %s is not the REST port", p.name, g.Port.String())
				}
			}
			if s := c.StartupProbe; s != nil && s.FailureThreshold*s.PeriodSeconds < 30 {
				t.Errorf("startupProbe allows only %ds for start-up (Vault login included)", s.FailureThreshold*s.PeriodSeconds)
			}
		}},
		{"graceful shutdown", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			raw, ok := env(c)["SIGNERD_SHUTDOWN_TIMEOUT"]
			if !ok {
				t.Fatal("SIGNERD_SHUTDOWN_TIMEOUT is not set: set it, so the grace period can be checked against it")
			}
			drain, err := time.ParseDuration(raw)
			if err != nil {
				t.Fatalf("SIGNERD_SHUTDOWN_TIMEOUT=%q: %v", raw, err)
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds < 1 {
				t.Fatal("no preStop sleep: endpoints would still send traffic to a draining pod")
			}
			sleep := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			grace := m.pod().TerminationGracePeriodSeconds
			if grace == nil || time.Duration(*grace)*time.Second <= sleep+drain {
				t.Errorf("terminationGracePeriodSeconds must exceed preStop sleep %s + shutdown timeout %s", sleep, drain)
			}
		}},
		{"vault auth", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			e := env(c)
			defaults := o.settings(defaults)
			if o.approle {
				checkAppRole(t, m, c, defaults)
				return
			}
			for variable, want := range map[string]string{
				"SIGNERD_VAULT_AUTH":      "kubernetes",
				"SIGNERD_VAULT_K8S_ROLE":  defaults["ROLE"],
				"SIGNERD_VAULT_K8S_MOUNT": defaults["K8S_AUTH_MOUNT"],
				"SIGNERD_VAULT_KV_MOUNT":  defaults["KV_MOUNT"],
			} {
				if e[variable] != want {
					t.Errorf("%s=%q, want %q (deploy/vault/apply.sh)", variable, e[variable], want)
				}
			}
			if !strings.HasPrefix(e["SIGNERD_VAULT_ADDR"], "https://") {
				t.Errorf("SIGNERD_VAULT_ADDR=%q: not TLS", e["SIGNERD_VAULT_ADDR"])
			}
			file := e["SIGNERD_VAULT_K8S_TOKEN_FILE"]
			v := m.mountOf(t, c, file)
			if v == nil || v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ServiceAccountToken == nil {
				t.Fatalf("SIGNERD_VAULT_K8S_TOKEN_FILE=%q is not on a projected service-account token volume", file)
			}
			tok := v.Projected.Sources[0].ServiceAccountToken
			if tok.Audience != defaults["K8S_AUDIENCE"] || tok.Path != path.Base(file) {
				t.Errorf("projected token: audience %q path %q, want audience %q (the Vault role's) path %q",
					tok.Audience, tok.Path, defaults["K8S_AUDIENCE"], path.Base(file))
			}
			if tok.ExpirationSeconds == nil || *tok.ExpirationSeconds < 600 || *tok.ExpirationSeconds > 86400 {
				t.Errorf("projected token lifetime %v: want 600–86400 s", tok.ExpirationSeconds)
			}
		}},
		{"tls from secrets", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			e := env(c)
			for _, variable := range []string{"SIGNERD_TLS_CERT_FILE", "SIGNERD_TLS_KEY_FILE", "SIGNERD_CLIENT_CA_FILE"} {
				v := m.mountOf(t, c, e[variable])
				if v == nil || v.Secret == nil || v.Secret.Optional != nil && *v.Secret.Optional {
					t.Errorf("%s=%q is not on a required Secret volume", variable, e[variable])
				}
			}
			if v := m.mountOf(t, c, e["VAULT_CACERT"]); v == nil || (v.Secret == nil && v.ConfigMap == nil) {
				t.Errorf("VAULT_CACERT=%q is not on a Secret or ConfigMap volume", e["VAULT_CACERT"])
			}
			for _, vm := range c.VolumeMounts {
				if vm.MountPath != "/tmp" && !vm.ReadOnly {
					t.Errorf("mount %s at %s is writable", vm.Name, vm.MountPath)
				}
			}
		}},
		{"config map", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			e := env(c)
			var cm *corev1.ConfigMap
			for variable, key := range map[string]string{"SIGNERD_PRODUCTS": "products.yaml", "SIGNERD_POLICY_FILE": "policy.yaml"} {
				v := m.mountOf(t, c, e[variable])
				if v == nil || v.ConfigMap == nil {
					t.Fatalf("%s=%q is not on a ConfigMap volume", variable, e[variable])
				}
				cm = m.configMaps[v.ConfigMap.Name]
				if cm == nil {
					t.Fatalf("volume %s names ConfigMap %q, which is not rendered", v.Name, v.ConfigMap.Name)
				}
				if path.Base(e[variable]) != key || cm.Data[key] == "" {
					t.Errorf("%s=%q: ConfigMap %s has no key %s", variable, e[variable], cm.Name, key)
				}
			}
			if _, err := signing.ParseProducts([]byte(cm.Data["products.yaml"])); err != nil {
				t.Errorf("products.yaml: %v", err)
			}
			var policy map[string]any
			if err := yaml.Unmarshal([]byte(cm.Data["policy.yaml"]), &policy); err != nil || policy["backends"] == nil {
				t.Errorf("policy.yaml: no backends (%v)", err)
			}
		}},
		{"services", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			want := map[string]struct {
				port        int32
				appProtocol string
			}{
				"signerd-grpc":    {9090, "grpc"},
				"signerd-http":    {8080, "https"},
				"signerd-metrics": {9100, "http"},
			}
			if len(m.services) != len(want) {
				t.Errorf("services %v, want %v", slices.Sorted(mapKeys(m.services)), slices.Sorted(mapKeys(want)))
			}
			for name, w := range want {
				s := m.services[name]
				if s == nil {
					t.Errorf("no Service %s", name)
					continue
				}
				if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, m.dep.Spec.Template.Labels) {
					t.Errorf("Service %s selector %v does not select signerd's pods", name, s.Spec.Selector)
				}
				if len(s.Spec.Ports) != 1 {
					t.Fatalf("Service %s: want one port, got %v", name, s.Spec.Ports)
				}
				p := s.Spec.Ports[0]
				if p.Port != w.port || p.AppProtocol == nil || *p.AppProtocol != w.appProtocol {
					t.Errorf("Service %s: port %d appProtocol %v, want %d %s", name, p.Port, p.AppProtocol, w.port, w.appProtocol)
				}
				if cp := containerPort(t, c, p.TargetPort); cp.ContainerPort != w.port {
					t.Errorf("Service %s targets container port %d, want %d", name, cp.ContainerPort, w.port)
				}
				if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
					t.Errorf("Service %s is %s: expose it through your ingress, not from the base", name, s.Spec.Type)
				}
			}
		}},
		{"prometheus scraping", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			a := m.dep.Spec.Template.Annotations
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" ||
				a["prometheus.io/port"] != strconv.Itoa(int(namedPort(t, c, "metrics"))) {
				t.Errorf("pod scrape annotations %v do not point at the metrics port's /metrics", a)
			}
			if !o.serviceMonitor {
				if m.sm != nil {
					t.Error("ServiceMonitor rendered: it belongs in the optional component only")
				}
				return
			}
			if m.sm == nil {
				t.Fatal("no ServiceMonitor")
			}
			var selected []*corev1.Service
			for _, s := range m.services {
				if selects(&m.sm.Spec.Selector, s.Labels) {
					selected = append(selected, s)
				}
			}
			if len(selected) != 1 || selected[0].Name != "signerd-metrics" {
				t.Fatalf("ServiceMonitor selects %d Services, want only signerd-metrics", len(selected))
			}
			if len(m.sm.Spec.Endpoints) == 0 {
				t.Fatal("ServiceMonitor has no endpoints")
			}
			for _, ep := range m.sm.Spec.Endpoints {
				if ep.Port != selected[0].Spec.Ports[0].Name || ep.Path != "/metrics" {
					t.Errorf("ServiceMonitor endpoint port %q path %q, want %q /metrics", ep.Port, ep.Path, selected[0].Spec.Ports[0].Name)
				}
			}
		}},
		{"replicas and autoscaling", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			h := m.hpa.Spec
			if h.ScaleTargetRef.Kind != "Deployment" || h.ScaleTargetRef.Name != m.dep.Name {
				t.Errorf("HPA scales %s %s, not the Deployment", h.ScaleTargetRef.Kind, h.ScaleTargetRef.Name)
			}
			if h.MinReplicas == nil || *h.MinReplicas != o.hpaMin || h.MaxReplicas <= *h.MinReplicas {
				t.Errorf("HPA replicas %v–%d, want min %d < max", h.MinReplicas, h.MaxReplicas, o.hpaMin)
			}
			cpu := false
			for _, mt := range h.Metrics {
				cpu = cpu || mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil &&
					mt.Resource.Name == corev1.ResourceCPU && mt.Resource.Target.AverageUtilization != nil
			}
			if !cpu {
				t.Error("HPA does not scale on CPU utilization")
			}
			if o.production && (h.MinReplicas == nil || *h.MinReplicas < 2) {
				t.Error("production runs fewer than 2 replicas")
			}
		}},
		{"no replicas where an HPA scales", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			checkReplicasOwnedByHPA(t, m)
		}},
		{"readiness and vault", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			checkReadinessAndVault(t, o, m, c)
		}},
		{"disruption budget", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			p := m.pdb.Spec
			if !selects(p.Selector, m.dep.Spec.Template.Labels) {
				t.Error("PodDisruptionBudget does not select signerd's pods")
			}
			switch {
			case p.MaxUnavailable != nil && p.MinAvailable == nil:
				if p.MaxUnavailable.Type != intstr.Int || p.MaxUnavailable.IntVal < 1 {
					t.Errorf("maxUnavailable %s would block every drain", p.MaxUnavailable.String())
				}
			case p.MinAvailable != nil && p.MaxUnavailable == nil:
				// The HPA may scale down to its minimum.
				if p.MinAvailable.Type != intstr.Int || p.MinAvailable.IntVal >= *m.hpa.Spec.MinReplicas {
					t.Errorf("minAvailable %s would block every drain at %d replicas", p.MinAvailable.String(), *m.hpa.Spec.MinReplicas)
				}
			default:
				t.Error("PodDisruptionBudget needs exactly one of minAvailable and maxUnavailable")
			}
		}},
		{"spread", func(t *testing.T, o overlay, m *manifests, _ *corev1.Container) {
			p := m.pod()
			keys := map[string]bool{}
			for _, c := range p.TopologySpreadConstraints {
				if selects(c.LabelSelector, m.dep.Spec.Template.Labels) {
					keys[c.TopologyKey] = true
				}
			}
			if a := p.Affinity; a != nil && a.PodAntiAffinity != nil {
				for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
					if selects(w.PodAffinityTerm.LabelSelector, m.dep.Spec.Template.Labels) {
						keys[w.PodAffinityTerm.TopologyKey] = true
					}
				}
			}
			if want := o.spread; want && (!keys["kubernetes.io/hostname"] || !keys["topology.kubernetes.io/zone"]) {
				t.Errorf("pods are spread over %v, want nodes and zones", keys)
			}
		}},
		{"network policy", func(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
			checkNetworkPolicy(t, o, m, c)
		}},
	}

	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			m := o.render(t)
			c := m.container(t)
			for _, ch := range checks {
				t.Run(ch.name, func(t *testing.T) {
					ch.fn(t, o, m, c)
				})
			}
		})
	}
}

func mapKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkNetworkPolicy: default deny both ways for signerd's pods; ingress on
// the Services' ports only; egress to Vault (8200), DNS (53 UDP+TCP) and
// public addresses on 443 only.
func checkNetworkPolicy(t *testing.T, o overlay, m *manifests, c *corev1.Container) {
	vaultNS := cmp.Or(o.vaultNamespace, "vault")
	np := m.np.Spec
	pods := m.dep.Spec.Template.Labels
	if !selects(&np.PodSelector, pods) {
		t.Fatal("NetworkPolicy does not select signerd's pods")
	}
	if !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes %v: want Ingress and Egress", np.PolicyTypes)
	}

	servicePorts := map[int32]bool{}
	for _, s := range m.services {
		for _, p := range s.Spec.Ports {
			servicePorts[containerPort(t, c, p.TargetPort).ContainerPort] = true
		}
	}
	ingress := map[int32]bool{}
	for i, r := range np.Ingress {
		if len(r.Ports) == 0 {
			t.Errorf("ingress[%d] allows every port", i)
		}
		for _, p := range r.Ports {
			if p.Port == nil || p.EndPort != nil {
				t.Errorf("ingress[%d]: port range or all ports", i)
				continue
			}
			n := containerPort(t, c, *p.Port).ContainerPort
			if !servicePorts[n] {
				t.Errorf("ingress[%d] allows port %d, which no Service exposes", i, n)
			}
			ingress[n] = true
		}
	}
	for p := range servicePorts {
		if !ingress[p] {
			t.Errorf("Service port %d is not allowed in", p)
		}
	}

	egress := map[string]bool{}
	for i, r := range np.Egress {
		if len(r.Ports) == 0 || len(r.To) == 0 {
			t.Errorf("egress[%d] allows every port or every peer", i)
			continue
		}
		var ports []string
		for _, p := range r.Ports {
			if p.Port == nil || p.Port.Type != intstr.Int || p.Protocol == nil || p.EndPort != nil {
				t.Errorf("egress[%d]: want numbered single ports with protocols", i)
				continue
			}
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port.IntVal, *p.Protocol))
		}
		slices.Sort(ports)
		key := strings.Join(ports, ",")
		egress[key] = true
		switch key {
		case "8200/TCP": // Vault, found by namespace and pod labels
			for _, peer := range r.To {
				if peer.IPBlock != nil || peer.NamespaceSelector == nil || peer.PodSelector == nil ||
					selects(peer.PodSelector, pods) || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != vaultNS {
					t.Errorf("egress[%d] (Vault): peer %+v is not Vault's pods in namespace %s", i, peer, vaultNS)
				}
			}
		case "53/TCP,53/UDP": // cluster DNS
			for _, peer := range r.To {
				if peer.IPBlock != nil || peer.PodSelector == nil || peer.PodSelector.MatchLabels["k8s-app"] != "kube-dns" ||
					peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "kube-system" {
					t.Errorf("egress[%d] (DNS): peer %+v is not kube-dns", i, peer)
				}
			}
		case "443/TCP": // the platform's auth endpoint: public addresses only
			for _, peer := range r.To {
				if peer.IPBlock == nil || peer.PodSelector != nil || peer.NamespaceSelector != nil {
					t.Errorf("egress[%d] (443): peer %+v is not an ipBlock", i, peer)
					continue
				}
				checkPublicOnly(t, peer.IPBlock)
			}
		default:
			t.Errorf("egress[%d] allows %s: only Vault, DNS and the platform's HTTPS endpoint", i, key)
		}
	}
	for _, want := range []string{"8200/TCP", "53/TCP,53/UDP", "443/TCP"} {
		if !egress[want] {
			t.Errorf("no egress rule for %s", want)
		}
	}
}

// checkPublicOnly asserts that an ipBlock cannot reach private, shared
// (CGNAT) or link-local (cloud metadata) addresses.
func checkPublicOnly(t *testing.T, b *networkingv1.IPBlock) {
	t.Helper()
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		t.Fatalf("ipBlock %s: %v", b.CIDR, err)
	}
	var except []netip.Prefix
	for _, e := range b.Except {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			t.Fatalf("ipBlock except %s: %v", e, err)
		}
		except = append(except, p)
	}
	probes := []string{"10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.100.100.200", "fd00::1", "fe80::1"}
	for _, s := range probes {
		a := netip.MustParseAddr(s)
		if cidr.Contains(a) && !slices.ContainsFunc(except, func(p netip.Prefix) bool { return p.Contains(a) }) {
			t.Errorf("egress 443 to ipBlock %s reaches %s", b.CIDR, s)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func ptrInt(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
