package deploy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// certificate is the part of cert-manager.io/v1 Certificate the
// cert-manager component uses; any other field fails the strict decode.
// (cert-manager's own Go module brings controller-runtime and its
// dependencies along for a handful of fields.)
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName string `json:"secretName"`
		IssuerRef  struct {
			Group string `json:"group,omitempty"`
			Kind  string `json:"kind,omitempty"`
			Name  string `json:"name"`
		} `json:"issuerRef"`
		CommonName string   `json:"commonName,omitempty"`
		DNSNames   []string `json:"dnsNames,omitempty"`
		Usages     []string `json:"usages,omitempty"`
		PrivateKey *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		Duration    *metav1.Duration `json:"duration,omitempty"`
		RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
	} `json:"spec"`
}

// TestDeviceIngress renders the prod overlay with each way in for devices
// (testdata/ingress-*: the Gateway API TLSRoute or the ingress-nginx
// passthrough Ingress, each with cert-manager's Certificate), decodes
// every object strictly, and checks that the route keeps the device's TLS
// unopened up to signerd's REST Service, and that the Certificate is the
// one signerd mounts and names every host devices and backends use.
func TestDeviceIngress(t *testing.T) {
	for _, tc := range []struct {
		dir                 string
		tlsRoutes, ingresss int
	}{
		{"testdata/ingress-gateway", 1, 0},
		{"testdata/ingress-nginx", 0, 1},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			m := render(t, tc.dir)
			if len(m.tlsRoutes) != tc.tlsRoutes || len(m.ingresses) != tc.ingresss || len(m.certificates) != 1 {
				t.Fatalf("%d TLSRoutes, %d Ingresses, %d Certificates; want %d, %d, 1",
					len(m.tlsRoutes), len(m.ingresses), len(m.certificates), tc.tlsRoutes, tc.ingresss)
			}
			http := m.services["signerd-http"]
			if http == nil {
				t.Fatal("no Service signerd-http")
			}
			var hosts []string
			for _, r := range m.tlsRoutes {
				hosts = append(hosts, checkTLSRoute(t, r, http)...)
			}
			for _, in := range m.ingresses {
				hosts = append(hosts, checkPassthroughIngress(t, in, http)...)
			}
			checkCertificate(t, m, m.certificates[0], hosts)
		})
	}
}

// checkTLSRoute: a TLSRoute (always passthrough: the Gateway API's route
// for TLS it does not terminate) attached to a named listener, by
// hostname, to signerd-http's port. Returns its hostnames.
func checkTLSRoute(t *testing.T, r *gatewayv1.TLSRoute, svc *corev1.Service) []string {
	t.Helper()
	if len(r.Spec.ParentRefs) == 0 {
		t.Error("TLSRoute has no parentRefs: it attaches to no Gateway")
	}
	for _, p := range r.Spec.ParentRefs {
		if p.Kind != nil && *p.Kind != "Gateway" || p.SectionName == nil || *p.SectionName == "" {
			t.Errorf("TLSRoute parent %+v: want a Gateway's named (Passthrough) listener", p)
		}
	}
	if len(r.Spec.Hostnames) == 0 {
		t.Error("TLSRoute has no hostnames: SNI routing needs one")
	}
	var hosts []string
	for _, h := range r.Spec.Hostnames {
		if strings.Contains(string(h), "*") {
			t.Errorf("TLSRoute hostname %s: a wildcard would route any SNI to signerd", h)
		}
		hosts = append(hosts, string(h))
	}
	if len(r.Spec.Rules) != 1 || len(r.Spec.Rules[0].BackendRefs) != 1 {
		t.Fatalf("TLSRoute: want one rule with one backend, got %+v", r.Spec.Rules)
	}
	b := r.Spec.Rules[0].BackendRefs[0]
	if b.Kind != nil && *b.Kind != "Service" || b.Group != nil && *b.Group != "" || string(b.Name) != svc.Name ||
		b.Namespace != nil || b.Port == nil || int32(*b.Port) != svc.Spec.Ports[0].Port {
		t.Errorf("TLSRoute backend %+v: want Service %s port %d in the route's namespace", b, svc.Name, svc.Spec.Ports[0].Port)
	}
	return hosts
}

// nginxTerminating are ingress-nginx annotations that only mean something
// when nginx opens the connection: next to ssl-passthrough they are a sign
// someone expects nginx to check or forward client certificates.
var nginxTerminating = []string{"auth-tls-", "backend-protocol", "proxy-ssl-", "configuration-snippet", "server-snippet"}

// checkPassthroughIngress: ingress-nginx passes the TLS connection through
// to signerd-http (no TLS section, nothing that implies termination).
// Returns its hosts.
func checkPassthroughIngress(t *testing.T, in *networkingv1.Ingress, svc *corev1.Service) []string {
	t.Helper()
	if in.Annotations["nginx.ingress.kubernetes.io/ssl-passthrough"] != "true" {
		t.Error("Ingress: nginx.ingress.kubernetes.io/ssl-passthrough is not \"true\": nginx would terminate the device's TLS")
	}
	for k := range in.Annotations {
		for _, bad := range nginxTerminating {
			if strings.HasPrefix(k, "nginx.ingress.kubernetes.io/"+bad) {
				t.Errorf("Ingress annotation %s: means nothing with passthrough, and suggests nginx terminates TLS", k)
			}
		}
	}
	if in.Spec.IngressClassName == nil || *in.Spec.IngressClassName != "nginx" {
		t.Errorf("Ingress class %v: want nginx", in.Spec.IngressClassName)
	}
	if len(in.Spec.TLS) > 0 {
		t.Error("Ingress has a tls: section: with passthrough the certificate is signerd's own")
	}
	var hosts []string
	for _, r := range in.Spec.Rules {
		if r.Host == "" || strings.Contains(r.Host, "*") {
			t.Errorf("Ingress rule host %q: passthrough routes by SNI, it needs an exact host", r.Host)
		}
		hosts = append(hosts, r.Host)
		if r.HTTP == nil || len(r.HTTP.Paths) != 1 {
			t.Fatalf("Ingress rule %s: want one path", r.Host)
		}
		b := r.HTTP.Paths[0].Backend.Service
		if b == nil || b.Name != svc.Name || (b.Port.Name != svc.Spec.Ports[0].Name && b.Port.Number != svc.Spec.Ports[0].Port) {
			t.Errorf("Ingress backend %+v: want Service %s port %s", b, svc.Name, svc.Spec.Ports[0].Name)
		}
	}
	return hosts
}

// checkCertificate: cert-manager writes the Secret the pods mount as their
// server certificate; its names cover the Services' in-cluster names and
// the device hosts; it is a server certificate with a fresh key at each
// renewal, renewed well before it expires.
func checkCertificate(t *testing.T, m *manifests, c *certificate, deviceHosts []string) {
	t.Helper()
	e := env(m.container(t))
	v := m.mountOf(t, m.container(t), e["SIGNERD_TLS_CERT_FILE"])
	if v == nil || v.Secret == nil || v.Secret.SecretName != c.Spec.SecretName {
		t.Errorf("Certificate writes Secret %q, but the pods' server certificate comes from %+v", c.Spec.SecretName, v)
	}
	if c.Spec.IssuerRef.Name == "" || !slices.Contains([]string{"Issuer", "ClusterIssuer"}, c.Spec.IssuerRef.Kind) {
		t.Errorf("Certificate issuerRef %+v: want an Issuer or ClusterIssuer", c.Spec.IssuerRef)
	}
	want := slices.Clone(deviceHosts)
	for _, name := range []string{"signerd-http", "signerd-grpc"} {
		s := m.services[name]
		if s == nil {
			t.Fatalf("no Service %s", name)
		}
		want = append(want, fmt.Sprintf("%s.%s.svc", s.Name, s.Namespace))
	}
	for _, h := range want {
		if !slices.Contains(c.Spec.DNSNames, h) {
			t.Errorf("Certificate dnsNames %v lack %s", c.Spec.DNSNames, h)
		}
	}
	if !slices.Contains(c.Spec.Usages, "server auth") || slices.Contains(c.Spec.Usages, "client auth") {
		t.Errorf("Certificate usages %v: want server auth, not client auth", c.Spec.Usages)
	}
	if c.Spec.PrivateKey == nil || c.Spec.PrivateKey.RotationPolicy != "Always" {
		t.Error("Certificate privateKey.rotationPolicy is not Always: a renewal would keep the old key")
	}
	if c.Spec.Duration == nil || c.Spec.RenewBefore == nil || c.Spec.RenewBefore.Duration < 24*time.Hour ||
		c.Spec.RenewBefore.Duration >= c.Spec.Duration.Duration {
		t.Errorf("Certificate duration %v renewBefore %v: want a renewal at least a day before expiry", c.Spec.Duration, c.Spec.RenewBefore)
	}
}
