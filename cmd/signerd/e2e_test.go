package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/internal/vectors"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// signerdBin is the binary built once by TestMain.
var signerdBin string

// guard bounds how long a test waits for the binary before killing it. It
// only turns a hang into a failure; nothing asserts how fast anything is.
const guard = 2 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "signerd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	signerdBin = filepath.Join(dir, "signerd")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", signerdBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building signerd:", err)
		return 1
	}
	code := m.Run()
	haCluster.Close(code != 0)
	return code
}

// hermeticEnv is the test's environment without SIGNERD_ and VAULT_
// settings, so that a Vault configured in the environment cannot turn a
// test of a start-up error into a running server.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) && !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a running signerd.
type proc struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string

	// tls, when set, is the client TLS configuration for both transports.
	tls *tls.Config

	mu       sync.Mutex
	stderr   []string      // lines
	newLine  chan struct{} // signalled after a line is added
	readDone chan struct{}
	waited   bool
}

// find returns the first JSON log line for which match is true.
func (p *proc) find(match func(map[string]any) bool) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.stderr {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && match(m) {
			return m
		}
	}
	return nil
}

// waitLog waits for a log line for which match is true.
func (p *proc) waitLog(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timer := time.NewTimer(guard)
	defer timer.Stop()
	for {
		if m := p.find(match); m != nil {
			return m
		}
		select {
		case <-p.newLine:
		case <-p.readDone:
			if m := p.find(match); m != nil {
				return m
			}
			t.Fatalf("signerd exited without logging %s; stderr:\n%s", what, p.logs())
		case <-timer.C:
			t.Fatalf("signerd did not log %s within %v; stderr:\n%s", what, guard, p.logs())
		}
	}
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

// logLines returns the JSON log lines, failing the test on any line that is
// not a JSON object.
func (p *proc) logLines(t *testing.T) []map[string]any {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.stderr {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %q", l)
			continue
		}
		out = append(out, m)
	}
	return out
}

// hasLog reports whether a log line has message msg.
func (p *proc) hasLog(t *testing.T, msg string) bool {
	t.Helper()
	for _, m := range p.logLines(t) {
		if m["msg"] == msg {
			return true
		}
	}
	return false
}

// startSignerd runs the binary with args and waits for its "listening" log
// line. The process is killed when the test ends, unless stop ended it.
func startSignerd(t *testing.T, args ...string) *proc {
	t.Helper()
	return startSignerdEnv(t, nil, args...)
}

// startSignerdEnv is startSignerd with extra environment variables.
func startSignerdEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(signerdBin, args...)
	cmd.Env = append(hermeticEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, newLine: make(chan struct{}, 1), readDone: make(chan struct{})}
	go func() {
		defer close(p.readDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr = append(p.stderr, sc.Text())
			p.mu.Unlock()
			select {
			case p.newLine <- struct{}{}:
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		if !p.waited {
			_ = cmd.Process.Kill()
			<-p.readDone
			_ = cmd.Wait()
		}
	})

	m := p.waitLog(t, `"listening"`, func(m map[string]any) bool { return m["msg"] == "listening" })
	p.grpcAddr, _ = m["grpc"].(string)
	p.httpAddr, _ = m["http"].(string)
	for name, addr := range map[string]string{"grpc": p.grpcAddr, "http": p.httpAddr} {
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Fatalf("listening line has %s address %q, want 127.0.0.1 with a bound port; stderr:\n%s", name, addr, p.logs())
		}
	}
	return p
}

// stop sends sig and checks that signerd exits with status 0 and logs
// "stopped".
func (p *proc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t, sig.String())
}

// exited reports whether signerd has closed its stderr, that is exited.
func (p *proc) exited() bool {
	select {
	case <-p.readDone:
		return true
	default:
		return false
	}
}

// waitExit waits for signerd to exit after sig and checks that it exits
// with status 0 and logs "stopped".
func (p *proc) waitExit(t *testing.T, sig string) {
	t.Helper()
	kill := time.AfterFunc(guard, func() { _ = p.cmd.Process.Kill() })
	defer kill.Stop()
	<-p.readDone
	err := p.cmd.Wait()
	p.waited = true
	if err != nil {
		t.Errorf("signerd exited with %v after %v, want status 0; stderr:\n%s", err, sig, p.logs())
	}
	if !p.hasLog(t, "stopped") {
		t.Errorf("signerd did not log \"stopped\" after %v; stderr:\n%s", sig, p.logs())
	}
}

func (p *proc) grpcClient(t *testing.T) signerv1.SignerServiceClient {
	t.Helper()
	creds := insecure.NewCredentials()
	if p.tls != nil {
		creds = credentials.NewTLS(p.tls)
	}
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return signerv1.NewSignerServiceClient(conn)
}

// postREST posts body to the signing route of pk/dn and decodes the answer.
func (p *proc) postREST(t *testing.T, pk, dn, body string) (*signerv1.SignMqttConnectResponse, error) {
	t.Helper()
	u := p.baseURL() + "/v1/products/" + url.PathEscape(pk) + "/devices/" + url.PathEscape(dn) + ":signMqttConnect"
	return postURLWith(p.httpClient(), u, body)
}

func (p *proc) baseURL() string {
	if p.tls != nil {
		return "https://" + p.httpAddr
	}
	return "http://" + p.httpAddr
}

func (p *proc) httpClient() *http.Client {
	if p.tls == nil {
		return http.DefaultClient
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: p.tls}}
}

func postURL(u, body string) (*signerv1.SignMqttConnectResponse, error) {
	return postURLWith(http.DefaultClient, u, body)
}

func postURLWith(c *http.Client, u, body string) (*signerv1.SignMqttConnectResponse, error) {
	resp, err := c.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: status %d, body %s", u, resp.StatusCode, b)
	}
	var r signerv1.SignMqttConnectResponse
	if err := protojson.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("POST %s: answer %s: %w", u, b, err)
	}
	return &r, nil
}

var (
	signMethods = map[string]signerv1.SignMethod{
		"hmacsha256": signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256,
		"hmacsha1":   signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1,
		"hmacmd5":    signerv1.SignMethod_SIGN_METHOD_HMAC_MD5,
	}
	secureModes = map[int]signerv1.Transport{
		2: signerv1.Transport_TRANSPORT_TLS,
		3: signerv1.Transport_TRANSPORT_TCP,
	}
)

// vectorRequest is the API request for one known-answer case.
func vectorRequest(t *testing.T, c vectors.Case) *signerv1.SignMqttConnectRequest {
	t.Helper()
	m, ok := signMethods[c.Input.SignMethod]
	if !ok {
		t.Fatalf("vector has unknown signMethod %q", c.Input.SignMethod)
	}
	tr, ok := secureModes[c.Input.SecureMode]
	if !ok {
		t.Fatalf("vector has unknown secureMode %d", c.Input.SecureMode)
	}
	req := &signerv1.SignMqttConnectRequest{
		ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName,
		ClientId: c.Input.ClientID, SignMethod: m, Transport: tr,
	}
	if c.Input.Timestamp == "" {
		req.OmitTimestamp = true
	} else {
		ts, err := strconv.ParseInt(c.Input.Timestamp, 10, 64)
		if err != nil {
			t.Fatalf("vector timestamp %q: %v", c.Input.Timestamp, err)
		}
		req.TimestampMs = proto.Int64(ts)
	}
	return req
}

// restBody is req as the REST body, with the API's camelCase JSON names.
func restBody(t *testing.T, req *signerv1.SignMqttConnectRequest) string {
	t.Helper()
	body := map[string]any{
		"clientId":   req.GetClientId(),
		"signMethod": req.GetSignMethod().String(),
		"transport":  req.GetTransport().String(),
	}
	if req.TimestampMs != nil {
		body["timestampMs"] = strconv.FormatInt(req.GetTimestampMs(), 10)
	}
	if req.GetOmitTimestamp() {
		body["omitTimestamp"] = true
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// devSecretsFile writes the vectors' devices as a -dev-secrets file.
func devSecretsFile(t *testing.T, cs []vectors.Case) string {
	t.Helper()
	list := make([]secrets.DevEntry, 0, len(cs))
	for _, c := range cs {
		list = append(list, secrets.DevEntry{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName, DeviceSecret: c.Input.DeviceSecret})
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "secrets.json", string(b))
}

func TestE2EVectors(t *testing.T) {
	cs := vectors.MustLoad()
	if len(cs) != 60 {
		t.Fatalf("vectors: got %d cases, want 60", len(cs))
	}
	products := writeFile(t, "products.yaml", "defaults:\n  region: cn-hangzhou\n")
	p := startSignerd(t, "-dev", "-dev-secrets", devSecretsFile(t, cs), "-products", products,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")
	client := p.grpcClient(t)

	var passwords []string
	for i, c := range cs {
		req := vectorRequest(t, c)
		g, err := client.SignMqttConnect(context.Background(), req)
		if err != nil {
			t.Errorf("case %d: gRPC: %v", i, err)
			continue
		}
		r, err := p.postREST(t, c.Input.ProductKey, c.Input.DeviceName, restBody(t, req))
		if err != nil {
			t.Errorf("case %d: REST: %v", i, err)
			continue
		}
		for transport, got := range map[string]*signerv1.SignMqttConnectResponse{"gRPC": g, "REST": r} {
			if got.GetClientId() != c.Expect.ClientID || got.GetUsername() != c.Expect.Username || got.GetPassword() != c.Expect.Password {
				t.Errorf("case %d: %s answer = %q, %q, %q; want %q, %q, %q", i, transport,
					got.GetClientId(), got.GetUsername(), got.GetPassword(), c.Expect.ClientID, c.Expect.Username, c.Expect.Password)
			}
			if want := c.Input.ProductKey + ".iot-as-mqtt.cn-hangzhou.aliyuncs.com"; got.GetHost() != want {
				t.Errorf("case %d: %s host = %q, want %q (from -products)", i, transport, got.GetHost(), want)
			}
		}
		passwords = append(passwords, g.GetPassword(), r.GetPassword())
	}
	p.stop(t, syscall.SIGTERM)

	if !p.hasLog(t, "dev store loaded") {
		t.Errorf("no \"dev store loaded\" line; stderr:\n%s", p.logs())
	}
	logs := p.logs()
	if !strings.Contains(logs, "INSECURE DEV MODE") {
		t.Errorf("no insecure dev mode warning; stderr:\n%s", logs)
	}
	for _, c := range cs {
		if strings.Contains(logs, c.Input.DeviceSecret) {
			t.Errorf("logs contain the device secret of %s/%s", c.Input.ProductKey, c.Input.DeviceName)
		}
	}
	for _, pw := range passwords {
		if strings.Contains(logs, pw) {
			t.Errorf("logs contain the returned password %q", pw)
		}
	}
}

var curlURL = regexp.MustCompile(`curl .*?(http://\S+:signMqttConnect) -d '(\{\})'`)

func TestE2EDemoDevice(t *testing.T) {
	p := startSignerd(t, "-dev", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")

	// The curl line in the log works as printed.
	m := p.waitLog(t, "a curl example", func(m map[string]any) bool {
		msg, _ := m["msg"].(string)
		return strings.Contains(msg, "curl")
	})
	curl := curlURL.FindStringSubmatch(m["msg"].(string))
	if curl == nil {
		t.Fatalf("curl example %q does not match %v", m["msg"], curlURL)
	}
	if want := "http://" + p.httpAddr + "/v1/products/a1DemoProduct/devices/demo-device-01:signMqttConnect"; curl[1] != want {
		t.Errorf("curl URL = %q, want %q", curl[1], want)
	}
	r, err := postURL(curl[1], curl[2])
	if err != nil {
		t.Fatalf("the logged curl example fails: %v", err)
	}
	if r.GetUsername() != "demo-device-01&a1DemoProduct" || r.GetPassword() == "" {
		t.Errorf("demo answer: username %q, password %q; want demo-device-01&a1DemoProduct and a password", r.GetUsername(), r.GetPassword())
	}
	g, err := p.grpcClient(t).SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{
		ProductKey: "a1DemoProduct", DeviceName: "demo-device-01", TimestampMs: proto.Int64(1),
	})
	if err != nil {
		t.Fatalf("gRPC for the demo device: %v", err)
	}
	if !strings.HasPrefix(g.GetClientId(), "a1DemoProduct.demo-device-01|securemode=2,signmethod=hmacsha256,timestamp=1|") {
		t.Errorf("demo client id = %q", g.GetClientId())
	}
	// Only the demo device exists.
	if _, err := p.postREST(t, "a1DemoProduct", "demo-device-02", "{}"); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("another device: %v, want 404", err)
	}
	p.stop(t, syscall.SIGINT)

	logs := p.logs()
	for _, pw := range []string{r.GetPassword(), g.GetPassword()} {
		if strings.Contains(logs, pw) {
			t.Errorf("logs contain the returned password %q", pw)
		}
	}
	if !strings.Contains(logs, "INSECURE DEV MODE") {
		t.Errorf("no insecure dev mode warning; stderr:\n%s", logs)
	}
}

func TestE2EStartupErrors(t *testing.T) {
	const secret = "d0n0tl0gth1ss3cr3t0123456789abcd"
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	badEntries := write("bad-entries.json", `[{"productKey":"a1PK","deviceName":"a|b","deviceSecret":"`+secret+`"},`+
		`{"productKey":"a1PK","deviceName":"dev-002","deviceSecret":""}]`)
	notJSON := write("not.json", `{"productKey":"a1PK","deviceName":"dev-001","deviceSecret":"`+secret+`"}`)
	badProducts := write("bad-products.yaml", "products:\n  a1PK:\n    keepAliveSeconds: 5\n")
	loopback := []string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"}

	tests := []struct {
		name string
		args []string
		// want are substrings of stderr.
		want []string
	}{
		{name: "no dev and no TLS or caller authentication", args: nil, want: []string{"signerd:", "-tls-cert-file", "-client-ca-file"}},
		{name: "no dev and no Vault", args: []string{"-insecure", "-jwks-file", "/nonexistent", "-jwt-issuer", "x"}, want: []string{"signerd:", "-vault"}},
		{name: "dev on all interfaces", args: []string{"-dev", "-http-addr", "0.0.0.0:0"}, want: []string{"signerd:", "-http-addr", "loopback"}},
		{name: "dev secrets without dev", args: []string{"-dev-secrets", badEntries}, want: []string{"signerd:", "-dev-secrets"}},
		{name: "missing dev secrets file", args: append([]string{"-dev", "-dev-secrets", filepath.Join(dir, "missing.json")}, loopback...),
			want: []string{"signerd:", "-dev-secrets", "missing.json"}},
		{name: "dev secrets not an array", args: append([]string{"-dev", "-dev-secrets", notJSON}, loopback...),
			want: []string{"signerd:", "-dev-secrets", "JSON array"}},
		{name: "bad dev secrets entries", args: append([]string{"-dev", "-dev-secrets", badEntries}, loopback...),
			want: []string{"signerd:", "entry 0", "deviceName", "entry 1", "deviceSecret is empty"}},
		{name: "bad products file", args: append([]string{"-dev", "-products", badProducts}, loopback...),
			want: []string{"signerd:", "-products", "keepAliveSeconds"}},
		{name: "bad log level", args: []string{"-dev", "-log-level", "chatty"}, want: []string{"signerd:", "-log-level"}},
		{name: "unknown flag", args: []string{"-grpc-adr", "127.0.0.1:0"}, want: []string{"-grpc-adr: no such flag; did you mean -grpc-addr?", "signerd -h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			cmd := exec.CommandContext(ctx, signerdBin, tc.args...)
			cmd.Env = hermeticEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("signerd %q still running after %v; stderr:\n%s", tc.args, guard, stderr.String())
			}
			if err == nil || cmd.ProcessState.ExitCode() <= 0 {
				t.Errorf("signerd %q: %v, want a non-zero exit status", tc.args, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("signerd %q: stderr does not contain %q:\n%s", tc.args, w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), secret) || strings.Contains(stdout.String(), secret) {
				t.Errorf("signerd %q printed a device secret:\n%s", tc.args, stderr.String())
			}
			if strings.Contains(stderr.String(), `"msg":"listening"`) {
				t.Errorf("signerd %q started listening:\n%s", tc.args, stderr.String())
			}
		})
	}
}

func TestE2EVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, signerdBin, "-version")
	cmd.Env = hermeticEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("signerd -version: %v; stderr:\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(string(out), "signerd ") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("signerd -version printed %q, want one line starting with \"signerd \"", out)
	}
}
