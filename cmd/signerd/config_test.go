package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// basics are the config fields of listeners, dev mode and logging (the
// Vault and cache settings have their own tests).
type basics struct {
	grpcAddr, httpAddr             string
	dev                            bool
	devSecrets, products, logLevel string
	shutdownTimeout                time.Duration
	version                        bool
}

func basicsOf(c config) basics {
	return basics{
		grpcAddr: c.grpcAddr, httpAddr: c.httpAddr, dev: c.dev, devSecrets: c.devSecrets,
		products: c.products, logLevel: c.logLevel, shutdownTimeout: c.shutdownTimeout, version: c.version,
	}
}

// prodAuth is the least a non-dev start needs besides Vault: TLS and a
// way to authenticate callers.
var prodAuth = []string{"-tls-cert-file", "s.crt", "-tls-key-file", "s.key", "-client-ca-file", "ca.pem"}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want basics
	}{
		{
			name: "production defaults",
			args: prodAuth,
			want: basics{grpcAddr: ":9090", httpAddr: ":8080", logLevel: "info", shutdownTimeout: 15 * time.Second},
		},
		{
			name: "dev defaults to loopback",
			args: []string{"-dev"},
			want: basics{grpcAddr: "127.0.0.1:9090", httpAddr: "127.0.0.1:8080", dev: true, logLevel: "info", shutdownTimeout: 15 * time.Second},
		},
		{
			name: "dev on ephemeral loopback ports",
			args: []string{"-dev", "-grpc-addr", "127.0.0.1:0", "-http-addr", "[::1]:0", "-dev-secrets", "s.json"},
			want: basics{grpcAddr: "127.0.0.1:0", httpAddr: "[::1]:0", dev: true, devSecrets: "s.json", logLevel: "info", shutdownTimeout: 15 * time.Second},
		},
		{
			name: "dev on localhost",
			args: []string{"-dev", "-grpc-addr", "localhost:9999"},
			want: basics{grpcAddr: "localhost:9999", httpAddr: "127.0.0.1:8080", dev: true, logLevel: "info", shutdownTimeout: 15 * time.Second},
		},
		{
			name: "environment when the flag is absent",
			args: []string{"-dev"},
			env:  map[string]string{"SIGNERD_GRPC_ADDR": "127.0.0.1:7000", "SIGNERD_LOG_LEVEL": "debug", "SIGNERD_SHUTDOWN_TIMEOUT": "3s"},
			want: basics{grpcAddr: "127.0.0.1:7000", httpAddr: "127.0.0.1:8080", dev: true, logLevel: "debug", shutdownTimeout: 3 * time.Second},
		},
		{
			name: "flag wins over environment",
			args: []string{"-dev", "-grpc-addr", "127.0.0.1:7001"},
			env:  map[string]string{"SIGNERD_GRPC_ADDR": "127.0.0.1:7000"},
			want: basics{grpcAddr: "127.0.0.1:7001", httpAddr: "127.0.0.1:8080", dev: true, logLevel: "info", shutdownTimeout: 15 * time.Second},
		},
		{
			name: "boolean from environment",
			env:  map[string]string{"SIGNERD_DEV": "true", "SIGNERD_DEV_SECRETS": "s.json", "SIGNERD_PRODUCTS": "p.yaml"},
			want: basics{grpcAddr: "127.0.0.1:9090", httpAddr: "127.0.0.1:8080", dev: true, devSecrets: "s.json", products: "p.yaml", logLevel: "info", shutdownTimeout: 15 * time.Second},
		},
		{
			name: "flag -dev=false wins over SIGNERD_DEV",
			args: append([]string{"-dev=false"}, prodAuth...),
			env:  map[string]string{"SIGNERD_DEV": "true"},
			want: basics{grpcAddr: ":9090", httpAddr: ":8080", logLevel: "info", shutdownTimeout: 15 * time.Second},
		},
		{
			name: "version",
			args: []string{"-version"},
			// -version needs no other setting and validates none.
			want: basics{logLevel: "info", shutdownTimeout: 15 * time.Second, version: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, mapEnv(tc.env), io.Discard)
			if err != nil {
				t.Fatalf("parseConfig(%q, %v) error: %v", tc.args, tc.env, err)
			}
			if b := basicsOf(got); b != tc.want {
				t.Errorf("parseConfig(%q, %v) =\n %+v\nwant\n %+v", tc.args, tc.env, b, tc.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		// want are substrings of the error; notWant must not appear.
		want    []string
		notWant []string
	}{
		{name: "dev on all interfaces (HTTP)", args: []string{"-dev", "-http-addr", "0.0.0.0:8080"},
			want: []string{"-http-addr", "0.0.0.0:8080", "loopback"}, notWant: []string{"-grpc-addr"}},
		{name: "dev on all interfaces (gRPC, empty host)", args: []string{"-dev", "-grpc-addr", ":9090"},
			want: []string{"-grpc-addr", "loopback"}, notWant: []string{"-http-addr"}},
		{name: "dev on an IPv6 wildcard", args: []string{"-dev", "-grpc-addr", "[::]:9090"}, want: []string{"-grpc-addr"}},
		{name: "dev on a LAN address from the environment", args: []string{"-dev"}, env: map[string]string{"SIGNERD_HTTP_ADDR": "192.168.1.10:8080"},
			want: []string{"-http-addr", "192.168.1.10:8080"}},
		{name: "dev on a host name", args: []string{"-dev", "-http-addr", "example.com:8080"}, want: []string{"-http-addr"}},
		{name: "dev address without a port", args: []string{"-dev", "-http-addr", "127.0.0.1"}, want: []string{"-http-addr"}},
		{name: "bad log level", args: []string{"-log-level", "loud"}, want: []string{"-log-level", "loud"}},
		{name: "bad log level from the environment", env: map[string]string{"SIGNERD_LOG_LEVEL": "loud"}, want: []string{"-log-level", "loud"}},
		{name: "dev secrets without dev", args: []string{"-dev-secrets", "s.json"}, want: []string{"-dev-secrets", "-dev"}},
		{name: "zero shutdown timeout", args: []string{"-shutdown-timeout", "0s"}, want: []string{"-shutdown-timeout"}},
		{name: "bad boolean in the environment", env: map[string]string{"SIGNERD_DEV": "yes please"}, want: []string{"SIGNERD_DEV"}},
		{name: "bad duration in the environment", env: map[string]string{"SIGNERD_SHUTDOWN_TIMEOUT": "soon"}, want: []string{"SIGNERD_SHUTDOWN_TIMEOUT"}},
		{name: "unknown flag", args: []string{"-grpc-adr", "x"}, want: []string{"grpc-adr"}},
		{name: "stray argument", args: []string{"-dev", "serve"}, want: []string{"serve"}},
		{name: "no replicas", args: append([]string{"-rate-limit-replicas", "0"}, prodAuth...), want: []string{"-rate-limit-replicas 0"}},
		{name: "negative replicas from the environment", args: prodAuth, env: map[string]string{"SIGNERD_RATE_LIMIT_REPLICAS": "-3"},
			want: []string{"-rate-limit-replicas -3"}},
		{name: "token path without the device name", args: append([]string{"-preverify-token-path", "tokens/{productKey}"}, prodAuth...),
			want: []string{"-preverify-token-path", "{deviceName}"}},
		{name: "token path among the device secrets", args: append([]string{"-preverify-token-path", "devices/t/{productKey}/{deviceName}"}, prodAuth...),
			want: []string{"-preverify-token-path", "apart from the device secrets"}},
		{name: "every problem at once", args: []string{"-dev", "-http-addr", "0.0.0.0:1", "-grpc-addr", "10.0.0.1:2", "-log-level", "x"},
			want: []string{"-http-addr", "-grpc-addr", "-log-level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, mapEnv(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("parseConfig(%q, %v) = %+v, want an error", tc.args, tc.env, got)
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

func TestParseConfigHelp(t *testing.T) {
	var out strings.Builder
	_, err := parseConfig([]string{"-h"}, mapEnv(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseConfig(-h) error = %v, want flag.ErrHelp", err)
	}
	for _, w := range []string{"SIGNERD_GRPC_ADDR", "-dev-secrets", "-products", "-http-addr"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage does not mention %s:\n%s", w, out.String())
		}
	}
}

func mapEnv(m map[string]string) map[string]string { return m }

// TestReplicaSettings: the replica count and token path from flags and
// the environment the manifests set.
func TestReplicaSettings(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		replicas  int
		tokenPath string
	}{
		{"defaults", prodAuth, nil, 1, "preverify-tokens/{productKey}/{deviceName}"},
		{"from the environment", prodAuth, map[string]string{"SIGNERD_RATE_LIMIT_REPLICAS": "3", "SIGNERD_PREVERIFY_TOKEN_PATH": "off"}, 3, "off"},
		{"flags", append([]string{"-rate-limit-replicas", "5", "-preverify-token-path", "tok/{deviceName}/{productKey}"}, prodAuth...), nil, 5, "tok/{deviceName}/{productKey}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, mapEnv(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got.sec.rateLimitReplicas != tc.replicas || got.preVerifyTokenPath != tc.tokenPath {
				t.Errorf("replicas %d, token path %q; want %d, %q", got.sec.rateLimitReplicas, got.preVerifyTokenPath, tc.replicas, tc.tokenPath)
			}
		})
	}
}

// TestPerReplica: n replicas' shares add up to the fleet-wide rate, and
// to at least the burst.
func TestPerReplica(t *testing.T) {
	tests := []struct {
		rate      float64
		burst, n  int
		wantRate  float64
		wantBurst int
	}{
		{1, 10, 1, 1, 10},
		{1, 10, 0, 1, 10},
		{3, 9, 3, 1, 3},
		{2000, 4000, 3, 2000.0 / 3, 1334},
		{1, 5, 3, 1.0 / 3, 2},
		{1, 1, 3, 1.0 / 3, 1}, // at least 1, or nothing would pass
		{0, 0, 3, 0, 0},       // unlimited stays unlimited
	}
	for _, tc := range tests {
		r, b, _ := perReplica(tc.rate, tc.burst, tc.n)
		if r != tc.wantRate || b != tc.wantBurst {
			t.Errorf("perReplica(%v, %d, %d) = %v, %d; want %v, %d", tc.rate, tc.burst, tc.n, r, b, tc.wantRate, tc.wantBurst)
		}
		if n := max(tc.n, 1); tc.rate > 0 && (r*float64(n) < tc.rate*0.999999 || b*n < tc.burst) {
			t.Errorf("perReplica(%v, %d, %d): %d shares of %v/s, %d fall short of the fleet-wide limit", tc.rate, tc.burst, tc.n, n, r, b)
		}
	}
}
