package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/mqtttest"
	"github.com/signerd/signerd/internal/pkitest"
)

// TestE2EDeviceC builds examples/device-c (the system C compiler, libcurl,
// libmosquitto, cJSON; scripts/cdeps.sh installs them) and runs it against
// the real signerd binary backed by a real Vault and the test broker. The
// program holds only its certificate and key; the test checks the broker
// accepted its login and received its Alink property report, and that the
// DeviceSecret is neither in its output nor anywhere in its memory, read
// from /proc/PID/mem while it holds its connection. The same dump must
// contain the password the program received: that is what shows the dump
// holds the program's data, so that the secret's absence means something.
func TestE2EDeviceC(t *testing.T) {
	f := startMQTTFixture(t)
	dir := t.TempDir()
	bin := buildDeviceC(t, dir)
	caFile := writeFile(t, "ca.pem", string(f.ca.PEM))
	const pk = mqttPK

	cases := []struct {
		name, dn, transport, method string
		listener                    string
		newHash                     func() hash.Hash
		signerd                     string // signerd's base URL
	}{
		{"tls hmacsha256", "dev-0001", "tls", "hmacsha256", mqtttest.ListenerTLS, sha256.New, "https://" + f.p.httpAddr},
		{"tcp hmacsha1", "dev-0002", "tcp", "hmacsha1", mqtttest.ListenerTCP, sha1.New, "https://" + f.p.httpAddr},
		{"tls hmacmd5, base URL with a slash", "dev-0002", "tls", "hmacmd5", mqtttest.ListenerTLS, md5.New, "https://" + f.p.httpAddr + "/"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certFile, keyFile := pkitest.WriteFiles(t, t.TempDir(), "device", f.ca.Device(t, pk, tc.dn))
			temperature := fmt.Sprintf("%d.25", 20+i)
			logins, published := len(f.broker.Logins()), len(f.broker.Published())
			d := startDeviceC(t, bin, "--signerd", tc.signerd, "--cert", certFile, "--key", keyFile,
				"--ca", caFile, "--broker-ca", caFile, "--product-key", pk, "--device-name", tc.dn,
				"--transport", tc.transport, "--sign-method", tc.method, "--temperature", temperature, "--hold")
			d.waitFor(t, "holding;")

			// The broker's side: one accepted login of this device on
			// the listener asked for, and the report.
			var login mqtttest.Login
			for _, l := range f.broker.Logins()[logins:] {
				if !l.Accepted {
					t.Errorf("the broker refused a login: %+v", l)
				}
				login = l
			}
			if login.Listener != tc.listener || login.Auth != "sign" || login.Device != (mqtttest.Device{ProductKey: pk, DeviceName: tc.dn}) {
				t.Fatalf("broker's last login %+v, want a signed login of %s/%s on %s", login, pk, tc.dn, tc.listener)
			}
			topic := "/sys/" + pk + "/" + tc.dn + "/thing/event/property/post"
			checkReport(t, f.broker, published, topic, temperature)

			// The program's side: its memory while it holds its connection.
			dump := d.memory(t)
			secret := mqttSecret(pk, tc.dn)
			password := expectedPassword(t, tc.newHash, secret, login.ClientID, pk, tc.dn)
			if !bytes.Contains(dump, []byte(password)) {
				t.Fatalf("the memory dump (%d bytes) lacks the password the program logged in with: it does not show the program's data", len(dump))
			}
			if !bytes.Contains(dump, []byte(login.ClientID)) {
				t.Errorf("the memory dump lacks the clientId %q", login.ClientID)
			}
			for form, s := range secretForms(secret) {
				if bytes.Contains(dump, []byte(s)) {
					t.Errorf("the program's memory holds the DeviceSecret (%s)", form)
				}
			}

			out := d.stop(t)
			t.Logf("device-c's output:\n%s", out)
			for what, s := range map[string]string{"the password": password, "the DeviceSecret": secret} {
				if strings.Contains(out, s) {
					t.Errorf("device-c printed %s", what)
				}
			}
		})
	}

	// signerd, not the program, decides whose login it gets: a device
	// asking for another device's is refused, and the program says why.
	t.Run("another device's login", func(t *testing.T) {
		certFile, keyFile := pkitest.WriteFiles(t, t.TempDir(), "device", f.ca.Device(t, pk, "dev-0002"))
		cmd := exec.Command(bin, "--signerd", "https://"+f.p.httpAddr, "--cert", certFile, "--key", keyFile,
			"--ca", caFile, "--broker-ca", caFile, "--product-key", pk, "--device-name", "dev-0001")
		out, err := cmd.CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), "HTTP 403") {
			t.Errorf("exit %d, output:\n%s\nwant exit 1 and signerd's HTTP 403", code, out)
		}
	})

	// Bad flags are refused before anything is sent, naming the flag.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--transport", "wss"}, "--transport"},
		{[]string{"--sign-method", "sha256"}, "--sign-method"},
		{[]string{"--temperature", "warm"}, "--temperature"},
		{[]string{"--device-name", strings.Repeat("d", 33)}, "--device-name"},
	} {
		t.Run("flag "+tc.want, func(t *testing.T) {
			args := append([]string{"--signerd", "https://" + f.p.httpAddr, "--cert", "c", "--key", "k",
				"--product-key", pk, "--device-name", "dev-0001"}, tc.args...)
			out, err := exec.Command(bin, args...).CombinedOutput()
			if code := exitCode(err); code != 2 || !strings.Contains(string(out), tc.want) {
				t.Errorf("%q: exit %d, output:\n%s\nwant exit 2 naming %s", tc.args, code, out, tc.want)
			}
		})
	}
}

// TestDeviceCRefusesBadAnswers: device-c reads signerd's answer into
// fixed buffers; an answer with a field missing, of the wrong type, out of
// range or too long for its buffer, or a body too long for the answer
// buffer, is refused naming the field, and nothing is sent to a broker.
// The answers come from a stand-in for signerd that requires the device's
// certificate, as signerd does; signerd itself never sends these.
func TestDeviceCRefusesBadAnswers(t *testing.T) {
	ca := pkitest.NewCA(t, "device-c answers CA")
	dir := t.TempDir()
	bin := buildDeviceC(t, dir)
	certFile, keyFile := pkitest.WriteFiles(t, dir, "device", ca.Device(t, mqttPK, "dev-0001"))
	caFile := writeFile(t, "ca.pem", string(ca.PEM))
	// A listener nobody should reach: the program must stop before it.
	broker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	var dialed atomic.Int32
	go func() {
		for {
			c, err := broker.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(broker.Addr().String())

	good := map[string]any{
		"host": "127.0.0.1", "port": json.Number(port), "uri": "tcp://127.0.0.1:" + port,
		"clientId": "a1MqttPK.dev-0001|securemode=3,signmethod=hmacsha256,timestamp=1700000000000|",
		"username": "dev-0001&a1MqttPK", "password": strings.Repeat("ab", 32), "keepAliveSeconds": 60,
	}
	with := func(k string, v any) string {
		m := maps.Clone(good)
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cases := []struct{ name, body, want string }{
		{"password missing", with("password", nil), "password missing"},
		{"password a number", with("password", 12), "password missing or not a string"},
		{"password empty", with("password", ""), "password missing"},
		{"password longer than its buffer", with("password", strings.Repeat("a", 80)), "password is 80 bytes"},
		{"clientId longer than its buffer", with("clientId", strings.Repeat("c", 200)), "clientId is 200 bytes"},
		{"username longer than its buffer", with("username", strings.Repeat("u", 80)), "username is 80 bytes"},
		{"host longer than its buffer", with("host", strings.Repeat("h", 256)), "host is 256 bytes"},
		{"port out of range", with("port", 70000), "port missing or not an integer"},
		{"port a string", with("port", port), "port missing or not an integer"},
		{"port a fraction", with("port", 1883.5), "port missing or not an integer"},
		{"keep-alive below the platform's", with("keepAliveSeconds", 10), "keepAliveSeconds missing or not an integer in [30, 1200]"},
		{"not JSON", "password=x", "not a JSON object"},
		{"a JSON array", "[]", "not a JSON object"},
		{"longer than the answer buffer", with("padding", strings.Repeat("p", 5000)), "Failed writing received data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/v1/products/"+mqttPK+"/devices/dev-0001:signMqttConnect" {
					http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, tc.body)
			}))
			srv.TLS = &tls.Config{
				Certificates: []tls.Certificate{ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true})},
				ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS12,
			}
			srv.StartTLS()
			defer srv.Close()
			out, err := exec.Command(bin, "--signerd", srv.URL, "--cert", certFile, "--key", keyFile, "--ca", caFile,
				"--product-key", mqttPK, "--device-name", "dev-0001", "--transport", "tcp").CombinedOutput()
			if code := exitCode(err); code != 1 || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, tc.want)
			}
		})
	}
	// The good answer does reach the listener: the cases above were refused
	// for their field, not for something all share.
	t.Run("the good answer", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, with("host", "127.0.0.1"))
		}))
		srv.TLS = &tls.Config{
			Certificates: []tls.Certificate{ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true})},
			ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS12,
		}
		srv.StartTLS()
		defer srv.Close()
		out, _ := exec.Command(bin, "--signerd", srv.URL, "--cert", certFile, "--key", keyFile, "--ca", caFile,
			"--product-key", mqttPK, "--device-name", "dev-0001", "--transport", "tcp").CombinedOutput()
		if dialed.Load() != 1 {
			t.Errorf("the listener saw %d connections, want 1 (the good answer's); output:\n%s", dialed.Load(), out)
		}
	})
}

// buildDeviceC builds the program with its Makefile into dir.
func buildDeviceC(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "device-c")
	out, err := exec.Command("make", "-C", "../../examples/device-c", "OUT="+bin).CombinedOutput()
	if err != nil {
		t.Fatalf("building examples/device-c (scripts/cdeps.sh installs what it needs): %v\n%s", err, out)
	}
	return bin
}

// deviceC is a running device-c.
type deviceC struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	lines  chan string
	exited chan error
}

func startDeviceC(t *testing.T, bin string, args ...string) *deviceC {
	t.Helper()
	d := &deviceC{cmd: exec.Command(bin, args...), lines: make(chan string, 64), exited: make(chan error, 1)}
	r, w := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = w, w
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		s := bufio.NewScanner(r)
		for s.Scan() {
			d.mu.Lock()
			d.out.WriteString(s.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.lines <- s.Text():
			default:
			}
		}
	}()
	go func() {
		err := d.cmd.Wait()
		_ = w.Close()
		<-read // all output is in d.out
		d.exited <- err
	}()
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	return d
}

func (d *deviceC) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// waitFor waits for a line of output containing s.
func (d *deviceC) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(guard)
	for {
		select {
		case l := <-d.lines:
			if strings.Contains(l, s) {
				return
			}
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("device-c exited (%v) before %q; its output:\n%s", err, s, d.output())
		case <-timeout:
			t.Fatalf("device-c did not print %q within %v; its output:\n%s", s, guard, d.output())
		}
	}
}

// memory reads every readable mapping of the running program through
// /proc/PID/mem: heap, stack, the libraries' data, the TLS libraries'
// buffers. Mappings the kernel will not let us read ([vvar], guard pages)
// are skipped; the password check shows the rest was read.
func (d *deviceC) memory(t *testing.T) []byte {
	t.Helper()
	pid := d.cmd.Process.Pid
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var dump bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(maps)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[1][0] != 'r' {
			continue
		}
		from, to, ok := strings.Cut(fields[0], "-")
		if !ok {
			t.Fatalf("/proc/%d/maps: %q", pid, line)
		}
		start, err1 := strconv.ParseUint(from, 16, 64)
		end, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			t.Fatalf("/proc/%d/maps: %q", pid, line)
		}
		buf := make([]byte, end-start)
		n, _ := mem.ReadAt(buf, int64(start))
		dump.Write(buf[:n])
	}
	return dump.Bytes()
}

// stop sends SIGTERM, expects a clean exit and returns the output.
func (d *deviceC) stop(t *testing.T) string {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("device-c exited with %v after SIGTERM; its output:\n%s", err, d.output())
		}
	case <-time.After(guard):
		t.Fatalf("device-c still running %v after SIGTERM; its output:\n%s", guard, d.output())
	}
	return d.output()
}

// checkReport waits for the property report on topic among the broker's
// messages from index since on: Alink JSON with the temperature given.
// Waits, because mochi records a QoS 1 message after it sends the PUBACK
// the program stops waiting at.
func checkReport(t *testing.T, b *mqtttest.Broker, since int, topic, temperature string) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		for _, m := range b.Published()[since:] {
			if m.Topic != topic {
				continue
			}
			var r struct {
				ID      string `json:"id"`
				Version string `json:"version"`
				Method  string `json:"method"`
				Params  struct {
					Temperature json.Number `json:"temperature"`
				} `json:"params"`
			}
			dec := json.NewDecoder(bytes.NewReader(m.Payload))
			dec.UseNumber()
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("report %s: %v", m.Payload, err)
			}
			if r.ID == "" || r.Version != "1.0" || r.Method != "thing.event.property.post" || r.Params.Temperature.String() != temperature {
				t.Errorf("report %s, want Alink thing.event.property.post with temperature %s", m.Payload, temperature)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker received nothing on %s within %v", topic, guard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectedPassword is the CONNECT password for clientId, computed here from
// the platform's rule so that the test knows what to look for in the dump
// (the broker has already accepted that login, so a wrong rule here fails
// the dump check loudly rather than passing it).
func expectedPassword(t *testing.T, newHash func() hash.Hash, secret, clientID, pk, dn string) string {
	t.Helper()
	id, ext, ok := strings.Cut(clientID, "|")
	if !ok {
		t.Fatalf("clientId %q has no extension", clientID)
	}
	var ts string
	for _, kv := range strings.Split(strings.Trim(ext, "|"), ",") {
		if v, ok := strings.CutPrefix(kv, "timestamp="); ok {
			ts = v
		}
	}
	if ts == "" {
		t.Fatalf("clientId %q has no timestamp", clientID)
	}
	mac := hmac.New(newHash, []byte(secret))
	mac.Write([]byte("clientId" + id + "deviceName" + dn + "productKey" + pk + "timestamp" + ts))
	return hex.EncodeToString(mac.Sum(nil))
}

// secretForms are the ways a secret could sit in memory.
func secretForms(secret string) map[string]string {
	return map[string]string{
		"raw":       secret,
		"lower hex": hex.EncodeToString([]byte(secret)),
		"upper hex": strings.ToUpper(hex.EncodeToString([]byte(secret))),
		"base64":    base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64url": base64.RawURLEncoding.EncodeToString([]byte(secret)),
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := err.(*exec.ExitError); ok {
		return e.ExitCode()
	}
	return -1
}
