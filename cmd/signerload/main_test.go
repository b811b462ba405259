package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
)

func TestCheckLocal(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9090": true, "127.0.0.2:1": true, "[::1]:9090": true, "localhost:80": true,
		"10.0.0.1:9090": false, "0.0.0.0:9090": false, "example.com:443": false, "[2001:db8::1]:1": false,
	} {
		if err := checkLocalAddr("-addr", addr, false); (err == nil) != ok {
			t.Errorf("checkLocalAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
		if err := checkLocalAddr("-addr", addr, true); err != nil {
			t.Errorf("checkLocalAddr(%q, allowRemote) = %v", addr, err)
		}
	}
	for u, ok := range map[string]bool{
		"http://127.0.0.1:8200": true, "https://localhost:8080/": true, "https://[::1]:8080": true,
		"https://vault.example.com": false, "ftp://127.0.0.1": false, "127.0.0.1:8200": false,
	} {
		if err := checkLocalURL("-url", u, false); (err == nil) != ok {
			t.Errorf("checkLocalURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

func TestFleet(t *testing.T) {
	f := fleet{product: "a1SignerLoad", seed: "s"}
	if f.name(42) != "dev-0000042" {
		t.Errorf("name(42) = %q", f.name(42))
	}
	a, b := f.secret(1), f.secret(2)
	if len(a) != 32 || bytes.Equal(a, b) || !bytes.Equal(a, f.secret(1)) {
		t.Errorf("secrets: %q, %q: want 32 characters, stable, one per device", a, b)
	}
	if g := (fleet{product: "a1SignerLoad", seed: "t"}); bytes.Equal(g.secret(1), a) {
		t.Error("another seed gives the same secret")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for valid
	}{
		{[]string{"-d", "1s"}, ""},
		{[]string{"-d", "0"}, "-d, -count"},
		{[]string{"-unique", "-warmup", "1s"}, "-warmup"},
		{[]string{"-max-duration", "2h"}, "-max-duration"},
		{[]string{"-d", "11m"}, "more than -max-duration"},
		{[]string{"-c", "0"}, "-c 0"},
		{[]string{"-method", "sha512"}, "-method"},
		{[]string{"-product", "a1/x"}, "-product"},
	} {
		fs, o := loadFlags("grpc", io.Discard)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := o.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	fs, o := loadFlags("grpc", io.Discard)
	_ = fs.Parse([]string{"-unique", "-n", "2500", "-batch", "1000"})
	if err := o.validate(); err != nil || o.count != 3 {
		t.Errorf("-unique -n 2500 -batch 1000: count %d, %v; want 3 calls", o.count, err)
	}
}

// TestAgainstSignerd runs the load modes against an in-process server
// wired as signerd -dev, with every answer verified (-verify).
func TestAgainstSignerd(t *testing.T) {
	const devices = 50
	f := fleet{product: "a1SignerLoad", seed: "signerload"}
	mem := secrets.NewMemory()
	for i := range devices {
		mem.Put(secrets.DeviceID{ProductKey: f.product, DeviceName: f.name(i)}, f.secret(i))
	}
	policy, err := auth.NewPolicy()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv, err := server.New(server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: log,
		Service:       service.New(mem, service.WithLogger(log), service.WithAuthorizer(auth.NewAuthorizer(policy))),
		Authenticator: auth.NewAuthenticator(auth.Authenticator{AllowAnonymous: true}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	dir := t.TempDir()
	grpcAddr, httpURL := srv.GRPCAddr().String(), "http://"+srv.HTTPAddr().String()
	n := strconv.Itoa(devices)
	// The server runs in this process: its CPU is this process's.
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		label      string
		args       []string
		reqs, sign int64
	}{
		{"grpc", []string{"grpc", "-plaintext", "-addr", grpcAddr, "-n", n, "-count", "300", "-d", "0", "-verify", "-c", "4", "-server-pid", pid}, 300, 300},
		{"rest", []string{"rest", "-plaintext", "-url", httpURL, "-n", n, "-count", "300", "-d", "0", "-verify", "-c", "4", "-server-pid", pid}, 300, 300},
		{"batch", []string{"grpc", "-plaintext", "-addr", grpcAddr, "-n", n, "-unique", "-batch", "10", "-d", "0", "-verify"}, 5, 50},
		{"hmac", []string{"hmac", "-n", n, "-count", "1000", "-d", "0"}, 1000, 1000},
	} {
		t.Run(tc.label, func(t *testing.T) {
			file := filepath.Join(dir, tc.label+".json")
			var stdout, stderr bytes.Buffer
			args := append(tc.args, "-label", tc.label, "-json", file)
			if rc := run(args, &stdout, &stderr); rc != 0 {
				t.Fatalf("rc %d\n%s%s", rc, stdout.String(), stderr.String())
			}
			var r Result
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.Requests != tc.reqs || r.OK != tc.reqs || r.Signs != tc.sign || len(r.Errors)+len(r.ItemErrors) > 0 {
				t.Errorf("requests %d ok %d signs %d errors %v %v; want %d requests, %d signs, no errors\n%s",
					r.Requests, r.OK, r.Signs, r.Errors, r.ItemErrors, tc.reqs, tc.sign, stdout.String())
			}
			if r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 {
				t.Errorf("latency %+v", r.Latency)
			}
			if measured := slices.Contains(tc.args, "-server-pid"); measured != (r.ServerPID == os.Getpid() && r.ServerCPU > 0) {
				t.Errorf("server CPU: pid %d, %.1f µs per sign; want it measured: %v", r.ServerPID, r.ServerCPU, measured)
			}
		})
	}

	// A wrong secret seed: every answer is a mismatch, and the run fails.
	var stdout bytes.Buffer
	if rc := run([]string{"grpc", "-plaintext", "-addr", grpcAddr, "-n", n, "-count", "20", "-d", "0", "-verify", "-secret-seed", "other"}, &stdout, io.Discard); rc == 0 || !strings.Contains(stdout.String(), "MISMATCH 20") {
		t.Errorf("wrong seed: rc %d, output:\n%s", rc, stdout.String())
	}
	// An unknown device: errors counted by code.
	stdout.Reset()
	run([]string{"rest", "-plaintext", "-url", httpURL, "-n", "1", "-device-offset", "500", "-count", "5", "-d", "0"}, &stdout, io.Discard)
	if !strings.Contains(stdout.String(), "NotFound (HTTP 404) 5") {
		t.Errorf("unknown device over REST:\n%s", stdout.String())
	}

	stdout.Reset()
	if rc := run([]string{"report", filepath.Join(dir, "grpc.json"), filepath.Join(dir, "hmac.json")}, &stdout, io.Discard); rc != 0 {
		t.Fatalf("report: rc %d", rc)
	}
	for _, want := range []string{"| run |", "| grpc |", "| hmac |", "machine time per sign, hmac", "÷ one HMAC"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestStopsByItself: a duration-bound run ends on time, even when every
// request fails.
func TestStopsByItself(t *testing.T) {
	start := time.Now()
	var stdout bytes.Buffer
	// Nothing listens on this port: every request fails fast.
	rc := run([]string{"grpc", "-plaintext", "-addr", "127.0.0.1:1", "-d", "300ms", "-c", "2", "-timeout", "100ms"}, &stdout, io.Discard)
	if rc == 0 {
		t.Errorf("rc 0 with no server")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s, want about 300ms", d)
	}
	if rc := run([]string{"grpc", "-addr", "10.1.2.3:9090", "-d", "1s"}, io.Discard, io.Discard); rc == 0 {
		t.Error("a non-loopback address was accepted")
	}
}

// TestReportTargets: report divides each run's server CPU per sign by the
// hmac run's, and checks issue 15's targets, all from the runs' results.
func TestReportTargets(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, r := range []Result{
		{Label: labelHMAC, Mode: "hmac", SignRate: 1e6, ClientCPU: 1},
		{Label: labelTransitRoot, Mode: "transit", SignRate: 3000},
		{Label: labelTransit, Mode: "transit", SignRate: 1000},
		{Label: labelGRPCWarm, Mode: "grpc", SignRate: 20000, ServerPID: 1, ServerCPU: 30},
		{Label: labelRESTWarm, Mode: "rest", SignRate: 8000, ServerPID: 1, ServerCPU: 75},
		{Label: labelRESTJWT, Mode: "rest", SignRate: 9000, ServerPID: 1, ServerCPU: 60},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, r.Label+".json")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	var stdout bytes.Buffer
	if rc := run(append([]string{"report"}, files...), &stdout, io.Discard); rc != 0 {
		t.Fatalf("report: rc %d", rc)
	}
	for _, want := range []string{
		"| 75.0µs | 75× |",
		"| 1.0µs | 1× |",
		"| signerd CPU per warm sign ÷ one HMAC, REST (TLS + JWT) ≤ 80.00× | 60.00× | met |",
		"| signerd CPU per warm sign ÷ one HMAC, REST (mTLS) ≤ 70.00× | 75.00× | missed: 1.07× the bound |",
		"| signerd CPU per warm sign ÷ one HMAC, gRPC (mTLS) ≤ 40.00× | 30.00× | met |",
		"| REST (JWT) / Vault Transit (root token) throughput ≥ 3.00× | 3.00× | met |",
		"| gRPC / Vault Transit (root token) throughput ≥ 6.00× | 6.67× | met |",
		"| REST (JWT) / Vault Transit (least-privilege token) throughput ≥ 3.00× | 9.00× | met |",
		"- signerd warm REST (JWT) / transit-root throughput: 3.00×",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestToken: the token mode's JWKS verifies its token, as signerd would.
func TestToken(t *testing.T) {
	dir := t.TempDir()
	jwks, tok := filepath.Join(dir, "jwks.json"), filepath.Join(dir, "token")
	var stdout bytes.Buffer
	if rc := run([]string{"token", "-jwks", jwks, "-out", tok, "-issuer", "https://iss.test", "-subject", "loadgen"}, &stdout, io.Discard); rc != 0 {
		t.Fatalf("token: rc %d", rc)
	}
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{JWKSFile: jwks, Issuer: "https://iss.test", Audience: "signerd"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := readToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(raw)
	if err != nil || id.Name != "loadgen" || id.Method != "jwt" {
		t.Errorf("Verify = %+v, %v; want backend loadgen by jwt", id, err)
	}
	if strings.Contains(stdout.String(), raw) {
		t.Error("token mode printed the token")
	}
	if fi, err := os.Stat(tok); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
