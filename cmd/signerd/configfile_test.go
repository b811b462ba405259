package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestConfigFilePrecedence(t *testing.T) {
	file := writeFile(t, "signerd.yaml", "dev: true\ngrpc-addr: 127.0.0.1:7001\nhttp-addr: 127.0.0.1:7002\nlog-level: warn\ncache-size: 5000\n")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantGRPC string
		wantHTTP string
		wantLog  string
	}{
		{"file only", []string{"-config", file}, nil, "127.0.0.1:7001", "127.0.0.1:7002", "warn"},
		{"env wins over file", []string{"-config", file}, map[string]string{"SIGNERD_LOG_LEVEL": "debug"}, "127.0.0.1:7001", "127.0.0.1:7002", "debug"},
		{"flag wins over both", []string{"-config", file, "-grpc-addr", "127.0.0.1:7003"}, map[string]string{"SIGNERD_GRPC_ADDR": "127.0.0.1:7004"}, "127.0.0.1:7003", "127.0.0.1:7002", "warn"},
		{"file named by the environment", nil, map[string]string{"SIGNERD_CONFIG": file}, "127.0.0.1:7001", "127.0.0.1:7002", "warn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, mapEnv(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.grpcAddr != tt.wantGRPC || c.httpAddr != tt.wantHTTP || c.logLevel != tt.wantLog || c.cache.size != 5000 {
				t.Errorf("got grpc %q http %q log %q cache %d; want %q %q %q 5000",
					c.grpcAddr, c.httpAddr, c.logLevel, c.cache.size, tt.wantGRPC, tt.wantHTTP, tt.wantLog)
			}
		})
	}
}

func TestConfigFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unknown setting", "dev: true\ngrpc-adr: x\n", []string{`unknown setting "grpc-adr"`}},
		{"bad value", "dev: true\ncache-size: lots\n", []string{"cache-size", "lots"}},
		{"not YAML", "dev: [\n", []string{"-config"}},
		{"validation still applies", "http-addr: 0.0.0.0:8080\ndev: true\n", []string{"-http-addr", "loopback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]string{"-config", writeFile(t, "c.yaml", tt.content)}, mapEnv(nil), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	good := writeFile(t, "products.yaml", "defaults:\n  region: cn-hangzhou\n")
	bad := writeFile(t, "bad.yaml", "products:\n  a1PK:\n    keepAliveSeconds: 5\n")
	badPolicy := writeFile(t, "policy.yaml", "backends:\n  - identity: x\n")
	tests := []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"good", []string{"-dev", "-products", good, "-check-config"}, nil},
		{"bad products", []string{"-dev", "-products", bad, "-check-config"}, []string{"-products", "keepAliveSeconds"}},
		{"bad policy and products together", []string{"-dev", "-products", bad, "-policy-file", badPolicy, "-check-config"},
			[]string{"keepAliveSeconds", "-policy-file", "products: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, mapEnv(nil), &out, io.Discard)
			if tt.wantErr == nil {
				if err != nil || !strings.Contains(out.String(), "configuration OK") {
					t.Fatalf("run = %v, output %q; want OK", err, out.String())
				}
				return
			}
			if err == nil {
				t.Fatal("check passed")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
