package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
)

func TestParseConfigSecurityErrors(t *testing.T) {
	vaultOK := []string{"-vault-addr", "http://127.0.0.1:8200"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		// want are substrings of the error; notWant must not appear.
		want    []string
		notWant []string
	}{
		{name: "cert without key", args: []string{"-tls-cert-file", "s.crt", "-client-ca-file", "ca.pem"},
			want: []string{"-tls-cert-file and -tls-key-file"}},
		{name: "key without cert", args: []string{"-tls-key-file", "s.key", "-insecure", "-jwks-file", "j.json", "-jwt-issuer", "x"},
			want: []string{"-tls-cert-file and -tls-key-file"}},
		{name: "cert without key from the environment", args: []string{"-client-ca-file", "ca.pem"}, env: map[string]string{"SIGNERD_TLS_CERT_FILE": "s.crt"},
			want: []string{"-tls-key-file"}},
		{name: "no TLS outside dev", args: []string{"-jwks-file", "j.json", "-jwt-issuer", "x"},
			want: []string{"-tls-cert-file", "-insecure"}},
		{name: "no caller authentication outside dev", args: []string{"-tls-cert-file", "s.crt", "-tls-key-file", "s.key"},
			want: []string{"-client-ca-file or -jwks-file"}},
		{name: "no caller authentication even with -insecure", args: []string{"-insecure"},
			want: []string{"-client-ca-file or -jwks-file"}, notWant: []string{"-tls-cert-file"}},
		{name: "nothing at all", args: nil, want: []string{"-tls-cert-file", "-client-ca-file or -jwks-file"}},
		{name: "JWKS file without issuer", args: []string{"-tls-cert-file", "s.crt", "-tls-key-file", "s.key", "-jwks-file", "j.json"},
			want: []string{"-jwt-issuer"}, notWant: []string{"-client-ca-file or"}},
		{name: "JWKS URL without issuer", args: []string{"-insecure", "-jwks-url", "https://issuer.test/jwks"},
			want: []string{"-jwt-issuer"}},
		{name: "JWKS without audience", args: []string{"-insecure", "-jwks-file", "j.json", "-jwt-issuer", "x", "-jwt-audience", ""},
			want: []string{"-jwt-audience"}},
		{name: "JWKS file and URL", args: []string{"-insecure", "-jwks-file", "j.json", "-jwks-url", "https://issuer.test/jwks", "-jwt-issuer", "x"},
			want: []string{"-jwks-file and -jwks-url"}},
		{name: "client CA without TLS", args: []string{"-insecure", "-client-ca-file", "ca.pem"},
			want: []string{"-client-ca-file", "TLS"}},
		{name: "client CA without TLS from the environment", args: []string{"-insecure"}, env: map[string]string{"SIGNERD_CLIENT_CA_FILE": "ca.pem"},
			want: []string{"-client-ca-file", "TLS"}},
		{name: "TLS with dev", args: []string{"-dev", "-tls-cert-file", "s.crt", "-tls-key-file", "s.key"},
			want: []string{"-tls-cert-file", "-dev"}},
		{name: "client CA with dev", args: []string{"-dev", "-client-ca-file", "ca.pem"},
			want: []string{"-client-ca-file", "-dev"}},
		{name: "negative rate", args: append([]string{"-rate-limit", "-1"}, prodAuth...), want: []string{"-rate-limit"}},
		{name: "rate without burst", args: append([]string{"-rate-limit", "5", "-rate-burst", "0"}, prodAuth...), want: []string{"-rate-burst"}},
		{name: "backend rate without burst", args: append([]string{"-backend-rate-limit", "5", "-backend-rate-burst", "0"}, prodAuth...),
			want: []string{"-backend-rate-burst"}},
		{name: "PreVerify rate without burst", args: append([]string{"-preverify-rate-limit", "5", "-preverify-rate-burst", "0"}, prodAuth...),
			want: []string{"-preverify-rate-burst"}},
		{name: "negative in-flight cap", args: append([]string{"-max-in-flight", "-1"}, prodAuth...), want: []string{"-max-in-flight"}},
		{name: "CN separator that a productKey could hold", args: append([]string{"-device-cn-separator", "1"}, prodAuth...), want: []string{"-device-cn-separator"}},
		{name: "device URI scheme in capitals", args: append([]string{"-device-uri-scheme", "ALIYUN-IOT"}, prodAuth...), want: []string{"-device-uri-scheme"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string(nil), tc.args...), vaultOK...)
			got, err := parseConfig(args, mapEnv(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("parseConfig(%q, %v) = %+v, want an error", args, tc.env, got.sec)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q contains %q", err, w)
				}
			}
		})
	}
}

func TestParseConfigSecurity(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want securityFlags
	}{
		{name: "mTLS", args: prodAuth, want: securityFlags{tlsCert: "s.crt", tlsKey: "s.key", clientCA: "ca.pem"}},
		{name: "JWT behind a TLS proxy", args: []string{"-insecure", "-jwks-url", "https://issuer.test/jwks", "-jwt-issuer", "https://issuer.test"},
			want: securityFlags{insecure: true, jwksURL: "https://issuer.test/jwks", jwtIssuer: "https://issuer.test"}},
		{name: "from the environment", env: map[string]string{"SIGNERD_TLS_CERT_FILE": "e.crt", "SIGNERD_TLS_KEY_FILE": "e.key",
			"SIGNERD_JWKS_FILE": "j.json", "SIGNERD_JWT_ISSUER": "iss", "SIGNERD_JWT_AUDIENCE": "aud"},
			want: securityFlags{tlsCert: "e.crt", tlsKey: "e.key", jwksFile: "j.json", jwtIssuer: "iss", jwtAudience: "aud"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, mapEnv(tc.env), io.Discard)
			if err != nil {
				t.Fatalf("parseConfig(%q, %v): %v", tc.args, tc.env, err)
			}
			s := got.sec
			if tc.want.jwtAudience == "" {
				tc.want.jwtAudience = "signerd" // the default
			}
			if s.insecure != tc.want.insecure || s.tlsCert != tc.want.tlsCert || s.tlsKey != tc.want.tlsKey || s.clientCA != tc.want.clientCA ||
				s.jwksFile != tc.want.jwksFile || s.jwksURL != tc.want.jwksURL || s.jwtIssuer != tc.want.jwtIssuer || s.jwtAudience != tc.want.jwtAudience {
				t.Errorf("parseConfig(%q, %v).sec = %+v, want %+v", tc.args, tc.env, s, tc.want)
			}
			if s.deviceURIScheme != "aliyun-iot" || s.deviceCNSep != "" {
				t.Errorf("device identity defaults: scheme %q, CN separator %q; want aliyun-iot and none", s.deviceURIScheme, s.deviceCNSep)
			}
		})
	}
}

// TestE2EDeviceMTLS runs the binary with TLS and a client CA against a real
// Vault: a device gets its own credentials over HTTPS and is denied another
// device's (403), a caller without a client certificate gets 401, a backend
// batch is authorized per item, and the audit file has a record for each.
func TestE2EDeviceMTLS(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.StartT(t)
	const pk, other = "a1E2EProd", "b2E2EProd"
	secrets := map[[2]string]string{
		{pk, "dev:0001@lab"}: "e2e0secret0one0000000000000000001",
		{pk, "dev:0002@lab"}: "e2e0secret0two0000000000000000002",
		{other, "dev-0003"}:  "e2e0secret0three00000000000000003",
	}
	for id, s := range secrets {
		if err := srv.PutDevice(ctx, id[0], id[1], s); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	ca := pkitest.NewCA(t, "e2e CA")
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	caFile := writeFile(t, "ca.pem", string(ca.PEM))
	const backendID = "spiffe://signerd.test/fleet/prov-a"
	policy := writeFile(t, "policy.yaml", "backends:\n  - identity: "+backendID+"\n    products: ["+pk+"]\n    rpcs: [SignMqttConnect, BatchSignMqttConnect]\n")
	auditFile := filepath.Join(dir, "audit.log")
	p := startSignerd(t, "-tls-cert-file", certFile, "-tls-key-file", keyFile, "-client-ca-file", caFile,
		"-policy-file", policy, "-audit-log", auditFile,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off",
		"-vault-addr", srv.Addr, "-vault-token-file", writeFile(t, "vault-token", srv.RootToken))

	client := func(cert *tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: pkitest.ClientTLS(ca.Pool(), cert)}}
	}
	post := func(c *http.Client, path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := c.Post("https://"+p.httpAddr+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("POST %s: HTTP %d, body not JSON: %v", path, resp.StatusCode, err)
		}
		return resp.StatusCode, m
	}
	signPath := func(pk, dn string) string {
		return "/v1/products/" + url.PathEscape(pk) + "/devices/" + url.PathEscape(dn) + ":signMqttConnect"
	}
	devCert := ca.Device(t, pk, "dev:0001@lab")
	dev := client(&devCert)
	var passwords []string

	code, m := post(dev, signPath(pk, "dev:0001@lab"), "{}")
	if code != http.StatusOK || m["username"] != "dev:0001@lab&"+pk {
		t.Errorf("own credentials: HTTP %d, %v; want 200 for dev:0001@lab", code, m)
	}
	if pw, _ := m["password"].(string); pw != "" {
		passwords = append(passwords, pw)
	}
	for _, target := range [][2]string{{pk, "dev:0002@lab"}, {other, "dev-0003"}, {pk, "dev:0009@lab"}} {
		if code, m := post(dev, signPath(target[0], target[1]), "{}"); code != http.StatusForbidden {
			t.Errorf("device asking for %s/%s: HTTP %d, %v; want 403", target[0], target[1], code, m)
		}
	}
	anon := client(nil)
	if code, m := post(anon, signPath(pk, "dev:0001@lab"), "{}"); code != http.StatusUnauthorized {
		t.Errorf("no client certificate: HTTP %d, %v; want 401", code, m)
	}
	wrong := pkitest.NewCA(t, "wrong CA").Device(t, pk, "dev:0001@lab")
	if code, m := post(client(&wrong), signPath(pk, "dev:0001@lab"), "{}"); code != http.StatusUnauthorized {
		t.Errorf("certificate of another CA: HTTP %d, %v; want 401", code, m)
	}
	// A backend's batch: its own product's item signed, the other denied.
	beCert := ca.Backend(t, backendID)
	code, m = post(client(&beCert), "/v1/devices:batchSignMqttConnect",
		`{"requests":[{"productKey":"`+pk+`","deviceName":"dev:0002@lab"},{"productKey":"`+other+`","deviceName":"dev-0003"}]}`)
	results, _ := m["results"].([]any)
	if code != http.StatusOK || len(results) != 2 {
		t.Fatalf("backend batch: HTTP %d, %v", code, m)
	}
	first, _ := results[0].(map[string]any)
	second, _ := results[1].(map[string]any)
	resp0, _ := first["response"].(map[string]any)
	err1, _ := second["error"].(map[string]any)
	if resp0["username"] != "dev:0002@lab&"+pk || second["response"] != nil || err1["code"] != float64(7) {
		t.Errorf("backend batch results = %v, want the granted item signed and the other PERMISSION_DENIED (7)", results)
	}
	if pw, _ := resp0["password"].(string); pw != "" {
		passwords = append(passwords, pw)
	}
	p.stop(t, syscall.SIGTERM)

	// The audit file: one record per call, one per batch item.
	f, err := os.Open(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type rec struct{ caller, outcome, pk, dn string }
	var got []rec
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line not JSON: %q", sc.Text())
		}
		s := func(k string) string { v, _ := r[k].(string); return v }
		if s("transport") != "rest" || s("request_id") == "" {
			t.Errorf("audit record %v: want transport rest and a request id", r)
		}
		got = append(got, rec{s("caller"), s("outcome"), s("product_key"), s("device_name")})
	}
	devName := "device:" + pk + "/dev:0001@lab"
	want := []rec{
		{devName, "issued", pk, "dev:0001@lab"},
		{devName, "denied", pk, "dev:0002@lab"},
		{devName, "denied", other, "dev-0003"},
		{devName, "denied", pk, "dev:0009@lab"},
		{"unauthenticated", "denied", pk, "dev:0001@lab"},
		{"unauthenticated", "denied", pk, "dev:0001@lab"},
		{"backend:" + backendID, "issued", pk, "dev:0002@lab"},
		{"backend:" + backendID, "denied", other, "dev-0003"},
	}
	if len(got) != len(want) {
		t.Fatalf("audit file has %d records, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("audit record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	raw, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	all := p.logs() + string(raw)
	for id, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("logs contain the secret of %s/%s", id[0], id[1])
		}
	}
	for _, pw := range passwords {
		if strings.Contains(all, pw) {
			t.Error("logs contain a returned password")
		}
	}
	if strings.Contains(all, srv.RootToken) {
		t.Error("logs contain the Vault token")
	}
}
