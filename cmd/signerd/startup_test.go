package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConfigErrorsAllAtOnce gives one configuration with problems in every
// source and stage (command line, environment, -config file, cross-flag
// checks, every file start-up reads, the Vault token's source) and checks
// that one run reports each of them, naming the flag, variable or file and
// key, and saying what was wanted.
func TestConfigErrorsAllAtOnce(t *testing.T) {
	products := writeFile(t, "products.yaml", "defaults:\n  keepAliveSeconds: 5\n  bogus: 1\n")
	policy := writeFile(t, "policy.yaml", "backends:\n  - identity: x\n    products: [\"*\"]\n    wat: 1\nzzz: 2\n")
	jwks := writeFile(t, "jwks.json", "not json")
	platformCA := writeFile(t, "ca.pem", "no certificate here")
	cfgFile := writeFile(t, "signerd.yaml", "cache-sise: 10\ncache-ttl: forever\n")
	args := []string{
		"-rate-limit", "abc", "-rate-burst", "1.5", "-grpc-adr", ":1",
		"-config", cfgFile, "-products", products, "-policy-file", policy,
		"-jwks-file", jwks, "-platform-ca-file", platformCA, "-insecure",
	}
	env := map[string]string{
		"SIGNERD_SHUTDOWN_TIMEOUT": "soon",
		"SIGNERD_GRCP_ADDR":        ":9090",
		"SIGNERD_VERY_WRONG":       "1",
		"SIGNERD_VAULT_BIN":        "/not/a/setting/but/allowed",
	}
	err := run(context.Background(), args, env, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run succeeded")
	}
	for _, want := range []string{
		// command line, every bad flag, with what was wanted
		`-rate-limit: "abc" is not a number (want e.g. 1)`,
		`-rate-burst: "1.5" is not a whole number (want e.g. 10)`,
		`-grpc-adr: no such flag; did you mean -grpc-addr?`,
		// environment
		`SIGNERD_SHUTDOWN_TIMEOUT: "soon" is not a duration`,
		`SIGNERD_GRCP_ADDR: not a signerd setting; did you mean SIGNERD_GRPC_ADDR?`,
		`SIGNERD_VERY_WRONG: not a signerd setting (`,
		// -config file
		`unknown setting "cache-sise"`, `did you mean cache-size?`,
		`cache-ttl: "forever" is not a duration`,
		// cross-flag checks
		"-jwt-issuer: required",
		// files: every problem of each
		`unknown field "defaults.bogus"`, "keepAliveSeconds 5 is outside",
		`unknown field "backends[0].wat"`, `unknown field "zzz"`,
		"-jwks-file:",
		"-platform-ca-file " + platformCA + ": no PEM certificate found",
		// the Vault token's source
		"no Vault token",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "SIGNERD_VAULT_BIN") {
		t.Errorf("SIGNERD_VAULT_BIN (a test script variable) reported:\n%v", err)
	}
	if strings.Contains(err.Error(), "parse error") {
		t.Errorf("error has the flag package's bare \"parse error\":\n%v", err)
	}
}

// TestDuplicateKeysRefused: every YAML file signerd reads refuses a key
// given twice (YAML readers otherwise keep the last one, so a policy's
// second "products:" would silently replace its first), naming the key.
func TestDuplicateKeysRefused(t *testing.T) {
	for _, tc := range []struct{ flag, file, content string }{
		{"-products", "products.yaml", "defaults:\n  keepAliveSeconds: 60\n  keepAliveSeconds: 90\n"},
		{"-policy-file", "policy.yaml", "backends:\n  - identity: spiffe://t/a\n    products: [a1PK]\n    products: [\"*\"]\n    rpcs: [\"*\"]\n"},
		{"-platforms", "platforms.yaml", "huawei:\n  host: a.example.com\n  host: b.example.com\n"},
		{"-config", "signerd.yaml", "cache-size: 10\ncache-size: 20\n"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			args := []string{"-dev", "-check-config", tc.flag, writeFile(t, tc.file, tc.content)}
			err := run(context.Background(), args, map[string]string{}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "already") {
				t.Errorf("%s with a duplicate key: %v, want it refused", tc.flag, err)
			}
		})
	}
}

func TestUnknownEnvironmentVariables(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string // substring of the error; "" means no error
		notWant string
	}{
		{"typo", map[string]string{"SIGNERD_LOG_LEVLE": "debug"}, "SIGNERD_LOG_LEVLE: not a signerd setting; did you mean SIGNERD_LOG_LEVEL?", ""},
		{"no near name", map[string]string{"SIGNERD_FOO": "1"}, "SIGNERD_FOO: not a signerd setting (", "did you mean"},
		{"lower case", map[string]string{"SIGNERD_log_level": "debug"}, "SIGNERD_log_level: not a signerd setting; did you mean SIGNERD_LOG_LEVEL?", ""},
		{"dashes", map[string]string{"SIGNERD_LOG-LEVEL": "debug"}, "SIGNERD_LOG-LEVEL: not a signerd setting", ""},
		{"empty unknown is still unknown", map[string]string{"SIGNERD_GRPC_ADR": ""}, "SIGNERD_GRPC_ADR", ""},
		{"script variables", map[string]string{"SIGNERD_VAULT_BIN": "/x", "SIGNERD_CACHE_DIR": "/y"}, "", ""},
		{"other prefixes", map[string]string{"SIGNERDX": "1", "VAULT_ADDR": "http://x"}, "", ""},
		{"known", map[string]string{"SIGNERD_LOG_LEVEL": "debug", "SIGNERD_GRPC_REFLECTION": "false"}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]string{"-dev"}, tc.env, io.Discard)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.want == "":
				return
			case err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q does not contain %q", err, tc.want)
			case tc.notWant != "" && strings.Contains(err.Error(), tc.notWant):
				t.Errorf("error %q contains %q", err, tc.notWant)
			}
		})
	}
}

// TestCheckConfigAgreesWithStart runs -check-config and the real start on
// the same configurations. Where the check fails, the start fails with the
// same report; where it passes, the start gets as far as what the check
// says it did not check (Vault, here unreachable), and no further problem.
func TestCheckConfigAgreesWithStart(t *testing.T) {
	tc := newTLSFixture(t)
	dir := t.TempDir()
	token := writeFile(t, "token", "s.not-a-real-token")
	empty := writeFile(t, "empty", "")
	notPEM := writeFile(t, "ca.pem", "not PEM")
	authURL := writeFile(t, "products.yaml", "defaults:\n  authBaseUrl: http://iot-auth.example\n")
	base := append(append([]string{}, tc.args...),
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off",
		"-vault-addr", "http://127.0.0.1:1", "-vault-timeout", "200ms")
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		checkFail string // substring of the check's error; "" means it passes
	}{
		{"token file", []string{"-vault-token-file", token}, nil, ""},
		{"token in the environment", nil, map[string]string{"VAULT_TOKEN": "s.x"}, ""},
		{"no token anywhere", nil, nil, "no Vault token"},
		{"missing token file", []string{"-vault-token-file", filepath.Join(dir, "missing")}, nil, "-vault-token-file"},
		{"empty token file", []string{"-vault-token-file", empty}, nil, "-vault-token-file " + empty + ": file is empty"},
		{"platform CA not PEM", []string{"-vault-token-file", token, "-platform-ca-file", notPEM}, nil, "-platform-ca-file"},
		{"approle secret id file missing", []string{"-vault-auth", "approle", "-vault-approle-role-id", "r",
			"-vault-approle-secret-id-file", filepath.Join(dir, "missing")}, nil, "-vault-approle-secret-id-file"},
		{"kubernetes token file missing", []string{"-vault-auth", "kubernetes", "-vault-k8s-role", "r",
			"-vault-k8s-token-file", filepath.Join(dir, "missing")}, nil, "-vault-k8s-token-file"},
		// Start-up steps that need no network are build's, so the check
		// finds their problems too.
		{"device path template", []string{"-vault-token-file", token, "-vault-kv-path", "devices/{deviceName}"}, nil, "-vault-kv-path"},
		{"platform endpoint not https", []string{"-vault-token-file", token, "-products", authURL}, nil, "base URL must use https"},
		{"listen address without a port", []string{"-vault-token-file", token, "-grpc-addr", "localhost"}, nil, `-grpc-addr "localhost"`},
		{"audit log directory missing", []string{"-vault-token-file", token, "-audit-log", filepath.Join(dir, "no", "audit.log")}, nil, "-audit-log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{}, base...), tt.args...)
			var out bytes.Buffer
			checkErr := run(context.Background(), append(args, "-check-config"), tt.env, &out, io.Discard)
			startErr := run(context.Background(), args, tt.env, io.Discard, io.Discard)
			if startErr == nil {
				t.Fatal("start succeeded against an unreachable Vault")
			}
			if tt.checkFail != "" {
				if checkErr == nil || !strings.Contains(checkErr.Error(), tt.checkFail) {
					t.Fatalf("check = %v, want an error containing %q", checkErr, tt.checkFail)
				}
				if startErr.Error() != checkErr.Error() {
					t.Errorf("start and check disagree:\nstart: %v\ncheck: %v", startErr, checkErr)
				}
				return
			}
			if checkErr != nil {
				t.Fatalf("check failed: %v", checkErr)
			}
			for _, want := range []string{"configuration OK", "not checked", "Vault at http://127.0.0.1:1"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("check output lacks %q:\n%s", want, out.String())
				}
			}
			// The start fails only where the check said it could not look.
			if !strings.Contains(startErr.Error(), "vault login at http://127.0.0.1:1") {
				t.Errorf("start failed for a reason the check should have found: %v", startErr)
			}
		})
	}
}

// TestE2EDevTryLine runs the curl command -dev logs, with and without a
// -dev-secrets file: it must name a device the store has, so that the
// command answers 200.
func TestE2EDevTryLine(t *testing.T) {
	secretsFile := writeFile(t, "secrets.json", `[{"productKey":"a1FromFile","deviceName":"file-dev-01","deviceSecret":"s3cret"}]`)
	moduleFile := writeFile(t, "module.json", `[{"platform":"azure","productKey":"file-hub","deviceName":"file-dev-01","module":"m1","key":"a2V5LWJ5dGVzLWtleS1ieXRlcw=="}]`)
	onenetFile := writeFile(t, "onenet.json", `[{"platform":"onenet","productKey":"FromFile01","deviceName":"file-dev-01","key":"a2V5LWJ5dGVzLWtleS1ieXRlcw=="}]`)
	for name, extra := range map[string][]string{
		"demo device":           nil,
		"from a file":           {"-dev-secrets", secretsFile},
		"an Azure module first": {"-dev-secrets", moduleFile},
		"a OneNET device first": {"-dev-secrets", onenetFile},
	} {
		t.Run(name, func(t *testing.T) {
			p := startSignerd(t, append([]string{"-dev", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off"}, extra...)...)
			line := p.waitLog(t, "the try line", func(m map[string]any) bool {
				s, _ := m["msg"].(string)
				return strings.HasPrefix(s, "try: curl")
			})
			m := tryURL.FindStringSubmatch(line["msg"].(string))
			if m == nil {
				t.Fatalf("try line %q has no POST URL", line["msg"])
			}
			if extra != nil && !strings.Contains(m[1], "/devices/file-dev-01:") {
				t.Errorf("try line %q does not name the file's device", m[1])
			}
			if _, err := postURL(m[1], m[2]); err != nil {
				t.Errorf("the logged command fails: %v", err)
			}
		})
	}
}

var tryURL = regexp.MustCompile(`curl -s -X POST (\S+) -d '(\{[^']*\})'`)

func TestReflectionDefault(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{[]string{"-dev"}, nil, true},
		{[]string{"-dev", "-grpc-reflection=false"}, nil, false},
		{[]string{"-dev"}, map[string]string{"SIGNERD_GRPC_REFLECTION": "false"}, false},
		{prodAuth, nil, false},
		{append([]string{"-grpc-reflection"}, prodAuth...), nil, true},
		{prodAuth, map[string]string{"SIGNERD_GRPC_REFLECTION": "true"}, true},
		// The -config file is a source like the others: its setting is
		// not overridden by the -dev default.
		{[]string{"-dev", "-config", writeFile(t, "r.yaml", "grpc-reflection: false\n")}, nil, false},
		{append([]string{"-config", writeFile(t, "r.yaml", "grpc-reflection: true\n")}, prodAuth...), nil, true},
	}
	for _, tc := range tests {
		c, err := parseConfig(tc.args, tc.env, io.Discard)
		if err != nil {
			t.Fatalf("parseConfig(%q, %v): %v", tc.args, tc.env, err)
		}
		if c.reflection != tc.want {
			t.Errorf("parseConfig(%q, %v).reflection = %v, want %v", tc.args, tc.env, c.reflection, tc.want)
		}
	}
}

// TestEveryBadValueSaysWhatIsWanted sets every non-string flag to a value
// it cannot take, from each source, and checks that each error names the
// flag or variable and says what was wanted: never the flag package's bare
// "parse error".
func TestEveryBadValueSaysWhatIsWanted(t *testing.T) {
	var c config
	fs := newFlagSet(&c)
	var args []string
	env := map[string]string{}
	var cfgFile strings.Builder
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if _, isString := f.Value.(flag.Getter).Get().(string); isString {
			return
		}
		names = append(names, f.Name)
		args = append(args, "-"+f.Name+"=bogus")
		env[envName(f.Name)] = "bogus"
		fmt.Fprintf(&cfgFile, "%s: bogus\n", f.Name)
	})
	if len(names) < 10 {
		t.Fatalf("only %d non-string flags found", len(names))
	}
	for source, parse := range map[string]func() error{
		"command line": func() error { _, err := parseConfig(args, nil, io.Discard); return err },
		"environment":  func() error { _, err := parseConfig(nil, env, io.Discard); return err },
		"config file": func() error {
			_, err := parseConfig([]string{"-config", writeFile(t, "c.yaml", cfgFile.String())}, nil, io.Discard)
			return err
		},
	} {
		t.Run(source, func(t *testing.T) {
			err := parse()
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, name := range names {
				prefix := map[string]string{"command line": "-" + name + ": ", "environment": envName(name) + ": ", "config file": name + ": "}[source]
				found := false
				for _, l := range lines {
					if i := strings.Index(l, prefix); i >= 0 && (source != "config file" || strings.HasPrefix(l, "-config ")) {
						found = true
						if !strings.Contains(l[i:], `"bogus" is not a`) || !strings.Contains(l[i:], "want") {
							t.Errorf("%s: %q does not say what was wanted", name, l)
						}
					}
				}
				if !found {
					t.Errorf("no error for %s from the %s:\n%v", name, source, err)
				}
			}
			if strings.Contains(err.Error(), "parse error") {
				t.Errorf("bare \"parse error\" in:\n%v", err)
			}
		})
	}
}
