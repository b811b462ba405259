package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	for _, tc := range []struct {
		label      string
		args       []string
		reqs, sign int64
	}{
		{"grpc", []string{"grpc", "-plaintext", "-addr", grpcAddr, "-n", n, "-count", "300", "-d", "0", "-verify", "-c", "4"}, 300, 300},
		{"rest", []string{"rest", "-plaintext", "-url", httpURL, "-n", n, "-count", "300", "-d", "0", "-verify", "-c", "4"}, 300, 300},
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
	for _, want := range []string{"| run |", "| grpc |", "| hmac |", "machine time per sign, hmac"} {
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
