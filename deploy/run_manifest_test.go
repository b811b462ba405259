package deploy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/signerd/signerd/internal/vaulttest"
)

// TestManifestRunsSignerd runs the signerd binary the image holds with the
// prod Deployment's own environment and mounted files (the ConfigMap's
// products.yaml and policy.yaml, TLS material where the Secrets are
// mounted) against a real Vault server, then asks it for every path the
// probes, scrape annotations and ServiceMonitor use, the way the kubelet
// and Prometheus would. Only what a test cannot have is replaced:
// listen addresses (ephemeral loopback ports), the Vault address, and
// Vault's Kubernetes auth (token auth here; the role is tested in
// TestVaultApply).
func TestManifestRunsSignerd(t *testing.T) {
	m := render(t, "k8s/overlays/prod")
	c := m.container(t)
	srv := vaulttest.StartT(t)
	ctx := context.Background()
	token, err := srv.Token(ctx, time.Hour, 2*time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}

	// The pod's filesystem: each mount becomes a directory under fsRoot.
	fsRoot := t.TempDir()
	serverCert, serverKey := selfSigned(t, "signerd-http.signerd.svc", "127.0.0.1")
	clientCA, _ := selfSigned(t, "test client CA", "")
	vaultCA, _ := selfSigned(t, "test vault CA", "")
	for _, vm := range c.VolumeMounts {
		dir := filepath.Join(fsRoot, vm.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var v *corev1.Volume
		for i := range m.pod().Volumes {
			if m.pod().Volumes[i].Name == vm.Name {
				v = &m.pod().Volumes[i]
			}
		}
		files := map[string][]byte{}
		switch {
		case v == nil:
			t.Fatalf("mount %s names no volume", vm.Name)
		case v.ConfigMap != nil && m.configMaps[v.ConfigMap.Name] != nil:
			for k, d := range m.configMaps[v.ConfigMap.Name].Data {
				files[k] = []byte(d)
			}
		case v.ConfigMap != nil && v.ConfigMap.Name == "signerd-vault-ca":
			files["ca.crt"] = vaultCA
		case v.Secret != nil && v.Secret.SecretName == "signerd-tls":
			files["tls.crt"], files["tls.key"] = serverCert, serverKey
		case v.Secret != nil && v.Secret.SecretName == "signerd-client-ca":
			files["ca.crt"] = clientCA
		case v.Projected != nil:
			files["token"] = []byte("not-used-with-token-auth")
		case v.EmptyDir != nil:
		default:
			t.Fatalf("volume %s: this test does not know what it holds", v.Name)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}

	addrs := map[string]string{}
	env := signerdEnv()
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s: valueFrom is not handled here", e.Name)
		}
		val := e.Value
		switch e.Name {
		case "SIGNERD_GRPC_ADDR", "SIGNERD_HTTP_ADDR", "SIGNERD_METRICS_ADDR":
			addrs[e.Name] = freeAddr(t)
			val = addrs[e.Name]
		case "SIGNERD_VAULT_ADDR":
			val = srv.Addr
		case "SIGNERD_VAULT_AUTH":
			val = "token"
		default:
			if strings.HasPrefix(val, "/") {
				val = filepath.Join(fsRoot, val)
			}
		}
		env = append(env, e.Name+"="+val)
	}
	env = append(env, "VAULT_TOKEN="+token)

	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, signerdBinary(t))
	cmd.Env = env
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

	// Like the kubelet: HTTPS without verifying the certificate, no client
	// certificate.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	get := func(scheme, addr, path string) (int, string, error) {
		resp, err := client.Get(scheme + "://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	scheme := func(p *corev1.Probe) string { return strings.ToLower(string(p.HTTPGet.Scheme)) }

	// The startup probe, with its own budget.
	sp := c.StartupProbe
	deadline := time.Now().Add(time.Duration(sp.FailureThreshold*sp.PeriodSeconds) * time.Second)
	for {
		code, _, err := get(scheme(sp), addrs["SIGNERD_HTTP_ADDR"], sp.HTTPGet.Path)
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("signerd exited with the manifest's configuration: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("startup probe %s %s still failing after the probe's budget: %d %v", scheme(sp), sp.HTTPGet.Path, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if code, body, err := get(scheme(p), addrs["SIGNERD_HTTP_ADDR"], p.HTTPGet.Path); err != nil || code != http.StatusOK {
			t.Errorf("%s probe %s %s: %d %v %s", name, scheme(p), p.HTTPGet.Path, code, err, body)
		}
	}

	if !signerdFlags(t)["metrics-addr"] {
		t.Log("signerd has no -metrics-addr yet: /metrics not checked")
		return
	}
	paths := []string{m.dep.Spec.Template.Annotations["prometheus.io/path"]}
	for _, ep := range m.sm.Spec.Endpoints {
		paths = append(paths, ep.Path)
	}
	for _, p := range slices.Compact(slices.Sorted(slices.Values(paths))) {
		code, body, err := get(m.dep.Spec.Template.Annotations["prometheus.io/scheme"], addrs["SIGNERD_METRICS_ADDR"], p)
		if err != nil || code != http.StatusOK || !strings.Contains(body, "# TYPE") {
			t.Errorf("GET metrics %s: %d %v", p, code, err)
		}
	}
}

// selfSigned returns a PEM certificate and key, for host (a DNS name) and
// ip when given, or a CA when not.
func selfSigned(t *testing.T, host, ip string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if ip == "" {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames, tmpl.IPAddresses = []string{host}, []net.IP{net.ParseIP(ip)}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k})
}
