package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/internal/mqtttest"
	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// The devices of the MQTT end-to-end tests; every secret is in Vault and
// registered with the test broker (and the emulated auth endpoint).
const (
	mqttPK  = "a1MqttPK"
	gwPK    = "a1GwPK"
	subPK   = "a1SubPK"
	otherPK = "a1OtherPK"
)

func mqttSecret(pk, dn string) string { return "s3cr3t-" + pk + "-" + dn + "-0123456789abcdef" }

var mqttDevices = [][2]string{
	{mqttPK, "dev-0001"}, {mqttPK, "dev-0002"},
	{gwPK, "gw-0001"}, {gwPK, "gw-0002"},
	{subPK, "sub-0001"}, {subPK, "sub-0002"}, {subPK, "sub-0003"}, {subPK, "sub-0009"},
	{otherPK, "sub-0001"},
}

// mqttPolicy: one backend with every RPC; gateway devices may call
// SignSubDeviceLogin; gw-0001 owns every a1SubPK device, gw-0002 only
// sub-0009.
const mqttPolicy = `deviceRpcs: [SignMqttConnect, PreVerify, SignSubDeviceLogin]
backends:
  - identity: spiffe://signerd.test/fleet/provisioner
    products: ["*"]
    rpcs: ["*"]
gateways:
  - gateway: a1GwPK/gw-0001
    subDevices: ["a1SubPK/*"]
  - gateway: a1GwPK/gw-0002
    subDevices: ["a1SubPK/sub-0009"]
`

// mqttFixture is signerd (real binary, TLS, real Vault) whose products
// point at the test broker, and the emulated auth endpoint for PreVerify.
type mqttFixture struct {
	p        *proc // p.tls is the backend's client configuration
	broker   *mqtttest.Broker
	emu      *platformtest.Server
	ca       *pkitest.CA
	backend  signerv1.SignerServiceClient
	auditLog string
}

func startMQTTFixture(t *testing.T) *mqttFixture {
	t.Helper()
	ctx := context.Background()
	vault := vaulttest.StartT(t)
	ca := pkitest.NewCA(t, "signerd mqtt e2e CA")
	broker := mqtttest.Start(t, mqtttest.WithCA(ca))
	emu := platformtest.New(t)
	for _, d := range mqttDevices {
		if err := vault.PutDevice(ctx, d[0], d[1], mqttSecret(d[0], d[1])); err != nil {
			t.Fatal(err)
		}
		broker.AddDevice(d[0], d[1], mqttSecret(d[0], d[1]))
		emu.AddDevice(d[0], d[1], mqttSecret(d[0], d[1]))
	}
	for _, sub := range []string{"sub-0001", "sub-0002", "sub-0003"} {
		broker.AddTopology(gwPK, "gw-0001", subPK, sub)
	}
	broker.AddTopology(gwPK, "gw-0002", subPK, "sub-0009")
	broker.AddTopology(gwPK, "gw-0002", subPK, "sub-0001") // the platform would allow it; signerd's policy does not
	broker.TrustPlatform(emu)
	tcpPort, tlsPort, wssPort := broker.Ports()
	emu.SetMQTT("127.0.0.1", tlsPort) // PreVerify answers point at the broker too

	dir := t.TempDir()
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	products := writeFile(t, "products.yaml", fmt.Sprintf(
		"defaults:\n  host: 127.0.0.1\n  tcpPort: %d\n  tlsPort: %d\n  wssPort: %d\n  authBaseUrl: %s\n",
		tcpPort, tlsPort, wssPort, emu.URL()))
	auditLog := filepath.Join(dir, "audit.log")
	p := startSignerd(t,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off",
		"-tls-cert-file", certFile, "-tls-key-file", keyFile,
		"-client-ca-file", writeFile(t, "ca.pem", string(ca.PEM)),
		"-policy-file", writeFile(t, "policy.yaml", mqttPolicy), "-audit-log", auditLog,
		"-vault-addr", vault.Addr, "-vault-token-file", writeFile(t, "vault-token", vault.RootToken),
		"-products", products, "-platform-ca-file", writeFile(t, "platform-ca.pem", string(emu.CertPEM())),
		"-rate-limit", "0", "-preverify-rate-limit", "0")
	backend := ca.Backend(t, "spiffe://signerd.test/fleet/provisioner")
	p.tls = pkitest.ClientTLS(ca.Pool(), &backend)
	return &mqttFixture{p: p, broker: broker, emu: emu, ca: ca, backend: p.grpcClient(t), auditLog: auditLog}
}

// deviceClient is an HTTPS client presenting pk/dn's certificate.
func (f *mqttFixture) deviceClient(t *testing.T, pk, dn string) *http.Client {
	t.Helper()
	cert := f.ca.Device(t, pk, dn)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: pkitest.ClientTLS(f.ca.Pool(), &cert)}, Timeout: guard}
}

// rest posts body to the route verb of pk/dn and decodes a 200 answer into
// out; otherwise it returns the HTTP status and body as an error.
func (f *mqttFixture) rest(c *http.Client, pk, dn, verb string, body any, out proto.Message) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	u := "https://" + f.p.httpAddr + "/v1/products/" + url.PathEscape(pk) + "/devices/" + url.PathEscape(dn) + ":" + verb
	resp, err := c.Post(u, "application/json", strings.NewReader(string(b)))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("POST %s: HTTP %d: %s", u, resp.StatusCode, data)
	}
	return resp.StatusCode, protojson.Unmarshal(data, out)
}

// conn is the CONNECT of a SignMqttConnect answer.
func (f *mqttFixture) conn(r *signerv1.SignMqttConnectResponse) mqtttest.Conn {
	return mqtttest.Conn{
		URI: r.GetUri(), ClientID: r.GetClientId(), Username: r.GetUsername(), Password: r.GetPassword(),
		KeepAlive: time.Duration(r.GetKeepAliveSeconds()) * time.Second, CleanSession: r.GetCleanSession(),
		TLS: f.broker.ClientTLS(),
	}
}

var (
	mqttTransports = []signerv1.Transport{
		signerv1.Transport_TRANSPORT_TCP, signerv1.Transport_TRANSPORT_TLS, signerv1.Transport_TRANSPORT_WEBSOCKET_TLS,
	}
	mqttMethods = []signerv1.SignMethod{
		signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256, signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1, signerv1.SignMethod_SIGN_METHOD_HMAC_MD5,
	}
)

// TestE2EMQTT proves signerd's answers on the wire: a real MQTT client
// (paho) connects to a broker that checks logins as the platform does, with
// credentials from the real binary backed by a real Vault, for every
// transport and sign method, over REST as the device and gRPC as a
// backend; and the broker refuses tampered or misused answers.
func TestE2EMQTT(t *testing.T) {
	ctx := context.Background()
	f := startMQTTFixture(t)
	dev := f.deviceClient(t, mqttPK, "dev-0001")
	topic := "/" + mqttPK + "/dev-0001/user/update"
	var passwords []string

	for _, tr := range mqttTransports {
		for _, m := range mqttMethods {
			for _, via := range []string{"REST as the device", "gRPC as a backend"} {
				t.Run(fmt.Sprintf("%s/%s/%s", tr, m, via), func(t *testing.T) {
					var r signerv1.SignMqttConnectResponse
					if via == "REST as the device" {
						if _, err := f.rest(dev, mqttPK, "dev-0001", "signMqttConnect",
							map[string]string{"transport": tr.String(), "signMethod": m.String()}, &r); err != nil {
							t.Fatal(err)
						}
					} else {
						g, err := f.backend.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{
							ProductKey: mqttPK, DeviceName: "dev-0001", Transport: tr, SignMethod: m})
						if err != nil {
							t.Fatal(err)
						}
						proto.Merge(&r, g)
					}
					passwords = append(passwords, r.GetPassword())
					cl, err := mqtttest.Connect(f.conn(&r))
					if err != nil {
						t.Fatalf("CONNECT with %v: %v; broker: %+v", r.GetUri(), err, last(f.broker.Logins()))
					}
					defer cl.Disconnect(100)
					if err := mqtttest.RoundTrip(cl, topic, []byte(t.Name())); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}

	// Negative cases: the broker refuses, and for the reason meant.
	answer := func(t *testing.T, dn string, tr signerv1.Transport) *signerv1.SignMqttConnectResponse {
		t.Helper()
		r, err := f.backend.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: mqttPK, DeviceName: dn, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	refused := []struct {
		name   string
		conn   func(t *testing.T) mqtttest.Conn
		reason string
	}{
		{"tampered password", func(t *testing.T) mqtttest.Conn {
			c := f.conn(answer(t, "dev-0001", signerv1.Transport_TRANSPORT_TLS))
			c.Password = flipHex(c.Password)
			return c
		}, "password does not match"},
		{"another device's answer", func(t *testing.T) mqtttest.Conn {
			c := f.conn(answer(t, "dev-0002", signerv1.Transport_TRANSPORT_TLS))
			c.Username = "dev-0001&" + mqttPK // dev-0002's password presented as dev-0001
			return c
		}, "password does not match"},
		{"TCP answer (securemode 3) over TLS", func(t *testing.T) mqtttest.Conn {
			c := f.conn(answer(t, "dev-0001", signerv1.Transport_TRANSPORT_TCP))
			c.URI = "mqtts://" + f.broker.TLSAddr()
			return c
		}, "securemode"},
		{"TLS answer (securemode 2) over TCP", func(t *testing.T) mqtttest.Conn {
			c := f.conn(answer(t, "dev-0001", signerv1.Transport_TRANSPORT_TLS))
			c.URI = "tcp://" + f.broker.TCPAddr()
			return c
		}, "securemode"},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			c := tc.conn(t)
			n := len(f.broker.Logins())
			cl, err := mqtttest.Connect(c)
			if err == nil {
				cl.Disconnect(0)
				t.Fatal("the broker accepted the CONNECT")
			}
			if !mqtttest.Refused(err) {
				t.Fatalf("CONNECT failed with %v, want a refused CONNACK", err)
			}
			ls := f.broker.Logins()[n:]
			if len(ls) != 1 || ls[0].Accepted || !strings.Contains(ls[0].Reason, tc.reason) {
				t.Errorf("broker verdicts %+v, want one refusal mentioning %q", ls, tc.reason)
			}
		})
	}
	p := f.p
	p.stop(t, syscall.SIGTERM)
	logs := p.logs()
	for _, d := range mqttDevices {
		if strings.Contains(logs, mqttSecret(d[0], d[1])) {
			t.Errorf("logs contain the secret of %s/%s", d[0], d[1])
		}
	}
	for _, pw := range passwords {
		if strings.Contains(logs, pw) {
			t.Error("logs contain a returned password")
		}
	}
}

// TestE2EMQTTPreVerify: PreVerify through the real binary against the
// emulated auth endpoint, then an MQTT CONNECT with username iotId and
// password iotToken over TLS, which the broker accepts only for a pair the
// platform issued.
func TestE2EMQTTPreVerify(t *testing.T) {
	ctx := context.Background()
	f := startMQTTFixture(t)
	dev := f.deviceClient(t, mqttPK, "dev-0001")
	var rest signerv1.PreVerifyResponse
	if _, err := f.rest(dev, mqttPK, "dev-0001", "preVerify", map[string]string{}, &rest); err != nil {
		t.Fatal(err)
	}
	grpcAns, err := f.backend.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: mqttPK, DeviceName: "dev-0002"})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*signerv1.PreVerifyResponse{"REST as the device": &rest, "gRPC as a backend": grpcAns} {
		t.Run(name, func(t *testing.T) {
			if want := "mqtts://" + f.broker.TLSAddr(); r.GetUri() != want {
				t.Fatalf("uri %q, want the broker's %q", r.GetUri(), want)
			}
			c := mqtttest.Conn{URI: r.GetUri(), ClientID: r.GetClientId(), Username: r.GetUsername(), Password: r.GetPassword(), TLS: f.broker.ClientTLS()}
			cl, err := mqtttest.Connect(c)
			if err != nil {
				t.Fatalf("CONNECT with iotId/iotToken: %v; broker: %+v", err, last(f.broker.Logins()))
			}
			defer cl.Disconnect(100)
			l := last(f.broker.Logins())
			if l.Auth != "token" || l.Device.ProductKey != mqttPK {
				t.Errorf("broker verdict %+v, want a token login of the device", l)
			}
			topic := "/" + l.Device.ProductKey + "/" + l.Device.DeviceName + "/user/update"
			if err := mqtttest.RoundTrip(cl, topic, []byte("after pre-verification")); err != nil {
				t.Fatal(err)
			}
			// The token is no good on plain TCP, nor with a changed token.
			for what, bad := range map[string]mqtttest.Conn{
				"plain TCP": {URI: "tcp://" + f.broker.TCPAddr(), ClientID: c.ClientID, Username: c.Username, Password: c.Password},
				"tampered":  {URI: c.URI, ClientID: c.ClientID, Username: c.Username, Password: flipHex(c.Password), TLS: c.TLS},
			} {
				if cl, err := mqtttest.Connect(bad); !mqtttest.Refused(err) {
					if cl != nil {
						cl.Disconnect(0)
					}
					t.Errorf("%s: %v, want a refused CONNACK", what, err)
				}
			}
		})
	}
}

// TestE2EMQTTSubDevices: a gateway logs its sub-devices in with
// SignSubDeviceLogin answers (as the gateway over REST and as a backend
// over gRPC), for each method, one and several at a time; the broker checks
// every sign with the sub-device's secret and answers 200. A gateway asking
// for a sub-device the policy does not assign to it gets PERMISSION_DENIED.
func TestE2EMQTTSubDevices(t *testing.T) {
	ctx := context.Background()
	f := startMQTTFixture(t)
	gw := f.deviceClient(t, gwPK, "gw-0001")

	var connect signerv1.SignMqttConnectResponse
	if _, err := f.rest(gw, gwPK, "gw-0001", "signMqttConnect", map[string]string{}, &connect); err != nil {
		t.Fatal(err)
	}
	cl, err := mqtttest.Connect(f.conn(&connect))
	if err != nil {
		t.Fatalf("gateway CONNECT: %v", err)
	}
	defer cl.Disconnect(100)

	var signs []string
	for _, m := range mqttMethods {
		for _, n := range []int{1, 3} {
			for _, via := range []string{"REST as the gateway", "gRPC as a backend"} {
				t.Run(fmt.Sprintf("%s/%d/%s", m, n, via), func(t *testing.T) {
					var subs []*signerv1.SubDevice
					var body []map[string]string
					for i := 1; i <= n; i++ {
						dn := fmt.Sprintf("sub-%04d", i)
						subs = append(subs, &signerv1.SubDevice{ProductKey: subPK, DeviceName: dn})
						body = append(body, map[string]string{"productKey": subPK, "deviceName": dn})
					}
					var r signerv1.SignSubDeviceLoginResponse
					if via == "REST as the gateway" {
						if _, err := f.rest(gw, gwPK, "gw-0001", "signSubDeviceLogin",
							map[string]any{"subDevices": body, "signMethod": m.String()}, &r); err != nil {
							t.Fatal(err)
						}
					} else {
						g, err := f.backend.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{
							ProductKey: gwPK, DeviceName: "gw-0001", SubDevices: subs, SignMethod: m})
						if err != nil {
							t.Fatal(err)
						}
						proto.Merge(&r, g)
					}
					for _, p := range r.GetParams() {
						signs = append(signs, p.GetSign())
					}
					out, err := mqtttest.Request(cl, r.GetTopic(), r.GetReplyTopic(), []byte(r.GetPayload()))
					if err != nil {
						t.Fatal(err)
					}
					var reply struct {
						ID      string `json:"id"`
						Code    int    `json:"code"`
						Message string `json:"message"`
					}
					if err := json.Unmarshal(out, &reply); err != nil || reply.Code != mqtttest.CodeSuccess {
						t.Fatalf("reply on %s: %s (%v); want code 200", r.GetReplyTopic(), out, err)
					}
					var sent struct{ ID string }
					if err := json.Unmarshal([]byte(r.GetPayload()), &sent); err != nil || reply.ID != sent.ID {
						t.Errorf("reply id %q, want the request's %q", reply.ID, sent.ID)
					}
					for i := 1; i <= n; i++ {
						if !f.broker.Online(subPK, fmt.Sprintf("sub-%04d", i)) {
							t.Errorf("sub-%04d not online", i)
						}
					}
				})
			}
		}
	}

	// Denied: the policy, not the platform's topology, decides.
	denied := []struct {
		name    string
		client  *http.Client
		gateway string
		subs    []map[string]string
	}{
		{"another gateway's sub-device", f.deviceClient(t, gwPK, "gw-0002"), "gw-0002",
			[]map[string]string{{"productKey": subPK, "deviceName": "sub-0001"}}},
		{"one unassigned among assigned", gw, "gw-0001",
			[]map[string]string{{"productKey": subPK, "deviceName": "sub-0001"}, {"productKey": otherPK, "deviceName": "sub-0001"}}},
		{"for another gateway", gw, "gw-0002",
			[]map[string]string{{"productKey": subPK, "deviceName": "sub-0009"}}},
		{"a plain device", f.deviceClient(t, mqttPK, "dev-0001"), "dev-0001",
			[]map[string]string{{"productKey": subPK, "deviceName": "sub-0001"}}},
	}
	for _, tc := range denied {
		t.Run("denied/"+tc.name, func(t *testing.T) {
			pk := gwPK
			if tc.gateway == "dev-0001" {
				pk = mqttPK
			}
			var r signerv1.SignSubDeviceLoginResponse
			code, err := f.rest(tc.client, pk, tc.gateway, "signSubDeviceLogin", map[string]any{"subDevices": tc.subs}, &r)
			if code != http.StatusForbidden || !strings.Contains(fmt.Sprint(err), `"code":7`) {
				t.Errorf("HTTP %d, %v; want 403 PERMISSION_DENIED", code, err)
			}
			if len(r.GetParams()) != 0 {
				t.Errorf("a denied call answered params: %v", r.GetParams())
			}
		})
	}
	_, err = f.backend.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: "gw-0002",
		SubDevices: []*signerv1.SubDevice{{ProductKey: subPK, DeviceName: "sub-0002"}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("backend for an unassigned sub-device: %v, want PERMISSION_DENIED", err)
	}

	f.p.stop(t, syscall.SIGTERM)
	audit, err := os.ReadFile(f.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(audit), "may not sign sub-device "+subPK+"/sub-0001 for gateway "+gwPK+"/gw-0002") {
		t.Errorf("no audit record names the refused sub-device:\n%s", audit)
	}
	logs := f.p.logs() + string(audit)
	for _, d := range mqttDevices {
		if strings.Contains(logs, mqttSecret(d[0], d[1])) {
			t.Errorf("logs or audit contain the secret of %s/%s", d[0], d[1])
		}
	}
	for _, s := range signs {
		if strings.Contains(logs, s) {
			t.Error("logs or audit contain a sub-device sign")
		}
	}
}

func last[T any](s []T) T {
	var zero T
	if len(s) == 0 {
		return zero
	}
	return s[len(s)-1]
}

// flipHex changes the first hex digit of s.
func flipHex(s string) string {
	if s == "" {
		return "0"
	}
	d, _ := strconv.ParseUint(s[:1], 16, 8)
	return strconv.FormatUint((d+1)%16, 16) + s[1:]
}

// TestE2EExampleDevice runs examples/device against signerd and the test
// broker: it holds only its client certificate, gets its CONNECT
// parameters over REST, publishes; when its connection is forced offline
// (the same device logging in elsewhere) it fetches fresh parameters,
// reconnects and finishes.
func TestE2EExampleDevice(t *testing.T) {
	ctx := context.Background()
	f := startMQTTFixture(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "device")
	build := exec.Command(goTool(), "build", "-o", bin, "../../examples/device")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/device: %v\n%s", err, out)
	}
	cert := f.ca.Device(t, mqttPK, "dev-0001")
	certFile, keyFile := pkitest.WriteFiles(t, dir, "device", cert)
	caFile := writeFile(t, "ca.pem", string(f.ca.PEM))

	const count = 3
	cmd := exec.Command(bin, "-signerd", "https://"+f.p.httpAddr, "-cert", certFile, "-key", keyFile,
		"-ca", caFile, "-broker-ca", caFile, "-transport", "wss", "-sign-method", "hmacsha1",
		"-interval", "300ms", "-count", strconv.Itoa(count))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	topic := "/" + mqttPK + "/dev-0001/user/update"
	published := func() int {
		n := 0
		for _, m := range f.broker.Published() {
			if m.Topic == topic && strings.Contains(string(m.Payload), `"seq"`) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(guard)
	for published() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the example published nothing; its output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The same device logs in elsewhere: the platform (and the broker)
	// force the example's connection offline.
	r, err := f.backend.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: mqttPK, DeviceName: "dev-0001",
		Transport: signerv1.Transport_TRANSPORT_TCP})
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := mqtttest.Connect(f.conn(r))
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Disconnect(0)

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the example exited with %v; its output:\n%s", err, out.String())
		}
	case <-time.After(guard):
		t.Fatalf("the example did not finish; its output:\n%s", out.String())
	}
	t.Logf("the example's output:\n%s", out.String())
	if n := published(); n < count {
		t.Errorf("broker received %d messages, want at least %d", n, count)
	}
	if !strings.Contains(out.String(), "fetching fresh parameters") {
		t.Errorf("the example did not report refreshing after losing its connection:\n%s", out.String())
	}
	// Two logins of the example, each with parameters signerd issued for
	// that connection: different clientIds (timestamps), both over WSS.
	var wss []string
	for _, l := range f.broker.Logins() {
		if l.Accepted && l.Listener == mqtttest.ListenerWSS && l.Device.DeviceName == "dev-0001" {
			wss = append(wss, l.ClientID)
		}
	}
	if len(wss) < 2 || wss[0] == wss[len(wss)-1] {
		t.Errorf("example logins over WSS: %q, want two with fresh parameters", wss)
	}
	if strings.Contains(out.String(), r.GetPassword()) || strings.Contains(out.String(), mqttSecret(mqttPK, "dev-0001")) {
		t.Error("the example printed a credential")
	}
}

// goTool is the go command that built this test.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}
