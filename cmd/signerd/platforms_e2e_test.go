package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/internal/mqtttest"
	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// The devices of the other platforms' end-to-end test. Their keys are
// random per run, written to Vault at the default locations and given to
// the test broker, which checks each platform's login with its own
// implementation.
const (
	e2eHub       = "e2e-hub"
	e2eGroupHub  = "grp-hub"
	e2eDevice    = "dev-01"
	e2eModule    = "mod-1"
	e2eGroupDev  = "grp-dev-1"
	e2eIDScope   = "0ne00000A0A"
	e2eGroup     = "grp1"
	e2eTencentPK = "E2EPRD0001"
	e2eTencentDN = "dev_01"
	e2eHuaweiID  = "e2eprod_dev01"
	e2eHuaweiHst = "iot-mqtts.e2e.test"
	e2eOneNETPK  = "E2EPRD01"
	e2eOneNETDN  = "dev-01"
)

// e2ePlatforms is the -platforms file of the test.
var e2ePlatforms = fmt.Sprintf(`azure:
  hubs:
    %s:
      dpsGroup: {idScope: %s, group: %s}
  dps:
    %s:
      groups:
        - {name: %s, registrations: ["grp-*"]}
huawei:
  host: %s
`, e2eGroupHub, e2eIDScope, e2eGroup, e2eIDScope, e2eGroup, e2eHuaweiHst)

// platformFixture is signerd (the real binary, TLS, a real Vault) serving
// every platform, and the test broker that checks their logins.
type platformFixture struct {
	p         *proc
	broker    *mqtttest.Broker
	ca        *pkitest.CA
	backend   signerv1.SignerServiceClient
	auditLog  string
	keys      []string // every key in Vault, as stored: none may leak
	clock     *atomic.Int64
	vault     *vaulttest.Server
	token     string // signerd's Vault token
	onenetKey string
}

func randomKeyB64(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func startPlatformFixture(t *testing.T) *platformFixture {
	t.Helper()
	ctx := context.Background()
	vault := vaulttest.StartT(t)
	ca := pkitest.NewCA(t, "signerd platforms e2e CA")
	clock := &atomic.Int64{}
	clock.Store(time.Now().Unix())
	broker := mqtttest.Start(t, mqtttest.WithCA(ca), mqtttest.WithClock(func() time.Time { return time.Unix(clock.Load(), 0) }))
	f := &platformFixture{broker: broker, ca: ca, clock: clock, vault: vault}

	kv := vault.Client.KVv2("iot")
	put := func(path, field, value string) {
		t.Helper()
		if _, err := kv.Put(ctx, path, map[string]any{field: value}); err != nil {
			t.Fatal(err)
		}
		f.keys = append(f.keys, value)
	}
	devKey, modKey, groupKey := randomKeyB64(t, 32), randomKeyB64(t, 32), randomKeyB64(t, 64)
	put("azure/"+e2eHub+"/devices/"+e2eDevice, "primaryKey", devKey)
	put("azure/"+e2eHub+"/devices/"+e2eDevice+"/modules/"+e2eModule, "primaryKey", modKey)
	put("azure-dps/"+e2eIDScope+"/groups/"+e2eGroup, "primaryKey", groupKey)
	broker.AddAzureDevice(e2eHub+".azure-devices.net", e2eDevice, "", devKey)
	broker.AddAzureDevice(e2eHub+".azure-devices.net", e2eDevice, e2eModule, modKey)
	broker.AddAzureHubGroup(e2eGroupHub+".azure-devices.net", groupKey, e2eGroupDev)
	broker.AddAzureDPSGroup(e2eIDScope, groupKey, e2eGroupDev)

	tencentKey := randomKeyB64(t, 16)
	put("tencent/"+e2eTencentPK+"/"+e2eTencentDN, "devicePsk", tencentKey)
	broker.AddTencentDevice(e2eTencentPK, e2eTencentDN, tencentKey)

	huaweiSecret := "huawei-secret-" + randomKeyB64(t, 9)
	put("huawei/devices/"+e2eHuaweiID, "secret", huaweiSecret)
	broker.AddHuaweiDevice(e2eHuaweiID, huaweiSecret)

	onenetKey := randomKeyB64(t, 32)
	put("onenet/"+e2eOneNETPK+"/"+e2eOneNETDN, "deviceKey", onenetKey)
	broker.AddOneNETDevice(e2eOneNETPK, e2eOneNETDN, onenetKey)

	// A key that is not base64, for the FAILED_PRECONDITION answer.
	put("onenet/"+e2eOneNETPK+"/bad-key", "deviceKey", "not*base64*key-0001")

	// signerd reads with the shipped least-privilege policy
	// (deploy/vault/policy.hcl), not the root token: a platform whose key
	// paths the policy forgot fails here.
	f.token, f.onenetKey = "signerd-e2e-"+strings.TrimRight(randomKeyB64(t, 12), "="), onenetKey
	f.token = strings.NewReplacer("+", "a", "/", "b").Replace(f.token)
	if err := f.createToken(ctx); err != nil {
		t.Fatal(err)
	}
	token := f.token
	dir := t.TempDir()
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	f.auditLog = filepath.Join(dir, "audit.log")
	f.p = startSignerd(t,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off",
		"-tls-cert-file", certFile, "-tls-key-file", keyFile,
		"-client-ca-file", writeFile(t, "ca.pem", string(ca.PEM)),
		"-policy-file", writeFile(t, "policy.yaml", `backends:
  - identity: spiffe://signerd.test/fleet/provisioner
    products: ["*:*"]
    rpcs: ["*"]
  - identity: spiffe://signerd.test/fleet/alibaba-only
    products: ["*"]
    rpcs: ["*"]
`), "-audit-log", f.auditLog,
		"-vault-addr", vault.Addr, "-vault-token-file", writeFile(t, "vault-token", token),
		"-platforms", writeFile(t, "platforms.yaml", e2ePlatforms),
		"-rate-limit", "0")
	backend := ca.Backend(t, "spiffe://signerd.test/fleet/provisioner")
	f.p.tls = pkitest.ClientTLS(ca.Pool(), &backend)
	f.backend = f.p.grpcClient(t)
	return f
}

// createToken makes signerd's token with the shipped policy, under an id
// the test chose, so that a restarted (empty) dev server can be given the
// same token again.
func (f *platformFixture) createToken(ctx context.Context) error {
	_, err := f.vault.Client.Auth().Token().CreateWithContext(ctx, &vaultapi.TokenCreateRequest{
		ID: f.token, Policies: []string{"signerd"}, TTL: "2h", NoParent: true})
	return err
}

// deviceClient is an HTTPS client presenting a certificate with uri.
func (f *platformFixture) deviceClient(t *testing.T, uri string) *http.Client {
	t.Helper()
	cert := f.ca.Issue(t, pkitest.Options{CommonName: "device", URIs: []string{uri}})
	return &http.Client{Transport: &http.Transport{TLSClientConfig: pkitest.ClientTLS(f.ca.Pool(), &cert)}, Timeout: guard}
}

// post posts body to path and returns the status, the decoded answer of a
// 200 and the raw body.
func (f *platformFixture) post(t *testing.T, c *http.Client, path, body string) (int, *signerv1.SignMqttConnectResponse, []byte) {
	t.Helper()
	resp, err := c.Post("https://"+f.p.httpAddr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, raw
	}
	var out signerv1.SignMqttConnectResponse
	if err := protojson.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %v: %s", path, err, raw)
	}
	return resp.StatusCode, &out, raw
}

// connect logs in to the broker's listener with the answer's credentials.
func (f *platformFixture) connect(r *signerv1.SignMqttConnectResponse, listener string, password string) error {
	cl, err := mqtttest.Connect(mqtttest.Conn{
		URI: f.broker.URI(listener), ClientID: r.GetClientId(), Username: r.GetUsername(), Password: password,
		KeepAlive: time.Duration(r.GetKeepAliveSeconds()) * time.Second, CleanSession: r.GetCleanSession(),
		TLS: f.broker.ClientTLS(),
	})
	if err == nil {
		cl.Disconnect(0)
	}
	return err
}

// platformCase is one platform login: how a device asks for it over REST,
// how a backend asks over gRPC, and where it logs in.
type platformCase struct {
	name     string
	certURI  string // the device's certificate identity
	path     string // REST route
	body     string
	grpc     func(context.Context, signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error)
	listener string
	host     string // the host the answer must name
	port     int32
	expires  bool
}

func platformCases() []platformCase {
	return []platformCase{
		{"azure device TLS", "azure-iot://" + e2eHub + "/" + e2eDevice,
			"/v1/azure/hubs/" + e2eHub + "/devices/" + e2eDevice + ":signMqttConnect", `{"ttlSeconds": 600}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: e2eHub, DeviceId: e2eDevice, TtlSeconds: 600})
			}, mqtttest.ListenerAzureTLS, e2eHub + ".azure-devices.net", 8883, true},
		{"azure device WebSocket", "azure-iot://" + e2eHub + "/" + e2eDevice,
			"/v1/azure/hubs/" + e2eHub + "/devices/" + e2eDevice + ":signMqttConnect", `{"transport": "TRANSPORT_WEBSOCKET_TLS"}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: e2eHub, DeviceId: e2eDevice,
					Transport: signerv1.Transport_TRANSPORT_WEBSOCKET_TLS})
			}, mqtttest.ListenerAzureWSS, e2eHub + ".azure-devices.net", 443, true},
		{"azure module", "azure-iot://" + e2eHub + "/" + e2eDevice + "/" + e2eModule,
			"/v1/azure/hubs/" + e2eHub + "/devices/" + e2eDevice + ":signMqttConnect", `{"moduleId": "` + e2eModule + `"}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: e2eHub, DeviceId: e2eDevice, ModuleId: e2eModule})
			}, mqtttest.ListenerAzureTLS, e2eHub + ".azure-devices.net", 8883, true},
		{"azure device enrolled by group", "azure-iot://" + e2eGroupHub + "/" + e2eGroupDev,
			"/v1/azure/hubs/" + e2eGroupHub + "/devices/" + e2eGroupDev + ":signMqttConnect", `{}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: e2eGroupHub, DeviceId: e2eGroupDev})
			}, mqtttest.ListenerAzureTLS, e2eGroupHub + ".azure-devices.net", 8883, true},
		{"azure DPS registration", "azure-dps://" + e2eIDScope + "/" + e2eGroupDev,
			"/v1/azure/dps/" + e2eIDScope + "/registrations/" + e2eGroupDev + ":signMqttConnect", `{}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignAzureDpsMqttConnect(ctx, &signerv1.SignAzureDpsMqttConnectRequest{IdScope: e2eIDScope, RegistrationId: e2eGroupDev})
			}, mqtttest.ListenerDPSTLS, "global.azure-devices-provisioning.net", 8883, true},
		{"tencent hmacsha256", "tencent-iot://" + e2eTencentPK + "/" + e2eTencentDN,
			"/v1/tencent/products/" + e2eTencentPK + "/devices/" + e2eTencentDN + ":signMqttConnect", `{}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: e2eTencentPK, DeviceName: e2eTencentDN})
			}, mqtttest.ListenerTencentTCP, e2eTencentPK + ".iotcloud.tencentdevices.com", 1883, true},
		{"tencent hmacsha1", "tencent-iot://" + e2eTencentPK + "/" + e2eTencentDN,
			"/v1/tencent/products/" + e2eTencentPK + "/devices/" + e2eTencentDN + ":signMqttConnect", `{"signMethod": "HMAC_SHA1", "ttlSeconds": 120}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: e2eTencentPK, DeviceName: e2eTencentDN,
					SignMethod: "HMAC_SHA1", TtlSeconds: 120})
			}, mqtttest.ListenerTencentTCP, e2eTencentPK + ".iotcloud.tencentdevices.com", 1883, true},
		{"huawei checked timestamp", "huawei-iot://" + e2eHuaweiID,
			"/v1/huawei/devices/" + e2eHuaweiID + ":signMqttConnect", `{}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: e2eHuaweiID})
			}, mqtttest.ListenerHuaweiTLS, e2eHuaweiHst, 8883, true},
		{"huawei unchecked timestamp, TCP", "huawei-iot://" + e2eHuaweiID,
			"/v1/huawei/devices/" + e2eHuaweiID + ":signMqttConnect", `{"checkTimestamp": false, "transport": "TRANSPORT_TCP"}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				f := false
				return c.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: e2eHuaweiID, CheckTimestamp: &f,
					Transport: signerv1.Transport_TRANSPORT_TCP})
			}, mqtttest.ListenerHuaweiTCP, e2eHuaweiHst, 1883, false},
		{"onenet sha256 TLS", "onenet-iot://" + e2eOneNETPK + "/" + e2eOneNETDN,
			"/v1/onenet/products/" + e2eOneNETPK + "/devices/" + e2eOneNETDN + ":signMqttConnect", `{}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignOnenetMqttConnect(ctx, &signerv1.SignOnenetMqttConnectRequest{ProductId: e2eOneNETPK, DeviceName: e2eOneNETDN})
			}, mqtttest.ListenerOneNETTLS, "mqttstls.heclouds.com", 8883, true},
		{"onenet md5 TCP", "onenet-iot://" + e2eOneNETPK + "/" + e2eOneNETDN,
			"/v1/onenet/products/" + e2eOneNETPK + "/devices/" + e2eOneNETDN + ":signMqttConnect", `{"signMethod": "MD5", "transport": "TRANSPORT_TCP"}`,
			func(ctx context.Context, c signerv1.SignerServiceClient) (*signerv1.SignMqttConnectResponse, error) {
				return c.SignOnenetMqttConnect(ctx, &signerv1.SignOnenetMqttConnectRequest{ProductId: e2eOneNETPK, DeviceName: e2eOneNETDN,
					SignMethod: "MD5", Transport: signerv1.Transport_TRANSPORT_TCP})
			}, mqtttest.ListenerOneNETTCP, "mqtts.heclouds.com", 1883, true},
	}
}

// TestE2EPlatforms proves the other platforms' answers on the wire: for
// each, the device (over REST, with its own platform's certificate) and a
// backend (over gRPC) get a login from the real binary backed by a real
// Vault, and a real MQTT client logs in with it to a broker that checks the
// platform's rule with its own implementation; a tampered or expired
// credential is refused, and a device never gets another device's (or
// another platform's) login.
func TestE2EPlatforms(t *testing.T) {
	f := startPlatformFixture(t)
	for _, c := range platformCases() {
		t.Run(c.name, func(t *testing.T) {
			code, rest, raw := f.post(t, f.deviceClient(t, c.certURI), c.path, c.body)
			if code != http.StatusOK {
				t.Fatalf("REST as the device: HTTP %d: %s", code, raw)
			}
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			grpcAnswer, err := c.grpc(ctx, f.backend)
			if err != nil {
				t.Fatalf("gRPC as a backend: %v", err)
			}
			for via, r := range map[string]*signerv1.SignMqttConnectResponse{"REST": rest, "gRPC": grpcAnswer} {
				if r.GetHost() != c.host || r.GetPort() != c.port || r.GetProtocolVersion() != "3.1.1" || r.GetIssuedAt() == nil {
					t.Errorf("%s answer names %s:%d (%q), want %s:%d", via, r.GetHost(), r.GetPort(), r.GetProtocolVersion(), c.host, c.port)
				}
				if !strings.Contains(r.GetUri(), fmt.Sprintf("%s:%d", c.host, c.port)) {
					t.Errorf("%s answer URI %q does not name %s:%d", via, r.GetUri(), c.host, c.port)
				}
				if c.expires != (r.GetExpiresAt() != nil) || (c.expires && !r.GetExpiresAt().AsTime().After(time.Now())) {
					t.Errorf("%s answer expiresAt = %v, want set=%v and in the future", via, r.GetExpiresAt(), c.expires)
				}
				if err := f.connect(r, c.listener, r.GetPassword()); err != nil {
					t.Errorf("%s answer: the broker refused the login: %v (%s)", via, err, lastRefusal(f.broker))
				}
				tampered := []byte(r.GetPassword())
				tampered[len(tampered)/2] ^= 0x01
				if err := f.connect(r, c.listener, string(tampered)); !mqtttest.Refused(err) {
					t.Errorf("%s answer, tampered password: %v, want refused", via, err)
				}
			}
			if c.expires {
				// Past its expiry the same login is refused.
				now := f.clock.Load()
				f.clock.Store(rest.GetExpiresAt().AsTime().Unix() + 3600)
				defer f.clock.Store(now)
				if err := f.connect(rest, c.listener, rest.GetPassword()); !mqtttest.Refused(err) {
					t.Errorf("expired login: %v, want refused", err)
				}
			}
		})
	}
}

// TestE2EPlatformsVaultOutage: a platform device is cached and served
// through a Vault outage like an Alibaba device; one never looked up gets
// UNAVAILABLE (503, Retry-After) at once, and is served once Vault is back.
func TestE2EPlatformsVaultOutage(t *testing.T) {
	f := startPlatformFixture(t)
	backendCert := f.ca.Backend(t, "spiffe://signerd.test/fleet/provisioner")
	backend := &http.Client{Transport: &http.Transport{TLSClientConfig: pkitest.ClientTLS(f.ca.Pool(), &backendCert)}, Timeout: guard}
	cached := "/v1/tencent/products/" + e2eTencentPK + "/devices/" + e2eTencentDN + ":signMqttConnect"
	uncached := "/v1/onenet/products/" + e2eOneNETPK + "/devices/" + e2eOneNETDN + ":signMqttConnect"
	if code, _, raw := f.post(t, backend, cached, `{}`); code != http.StatusOK {
		t.Fatalf("before the outage: HTTP %d %s", code, raw)
	}
	f.vault.Stop()
	code, r, raw := f.post(t, backend, cached, `{}`)
	if code != http.StatusOK {
		t.Fatalf("cached device during the outage: HTTP %d %s", code, raw)
	}
	if err := f.connect(r, mqtttest.ListenerTencentTCP, r.GetPassword()); err != nil {
		t.Errorf("login signed during the outage refused: %v", err)
	}
	start := time.Now()
	resp, err := backend.Post("https://"+f.p.httpAddr+uncached, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || time.Since(start) > 2*time.Second {
		t.Errorf("uncached device during the outage: HTTP %d, Retry-After %q after %v; want 503 with Retry-After within 2 s",
			resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start))
	}
	// The dev server forgets everything: put back the token signerd holds
	// (same id, same policy) and the device's key.
	if err := f.vault.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := f.createToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.vault.Client.KVv2("iot").Put(ctx, "onenet/"+e2eOneNETPK+"/"+e2eOneNETDN, map[string]any{"deviceKey": f.onenetKey}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, raw := f.post(t, backend, uncached, `{}`)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Vault came back: HTTP %d %s", code, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lastRefusal(b *mqtttest.Broker) string {
	ls := b.Logins()
	for i := len(ls) - 1; i >= 0; i-- {
		if !ls[i].Accepted {
			return ls[i].Listener + ": " + ls[i].Reason
		}
	}
	return "no refusal recorded"
}

// TestE2EPlatformsRefusals: authorization before lookup on every platform
// route, each platform's own names checked, and Vault's faults answered as
// on Alibaba's routes; no key ever in an answer, a log line or an audit
// record.
func TestE2EPlatformsRefusals(t *testing.T) {
	f := startPlatformFixture(t)
	tencentPath := "/v1/tencent/products/" + e2eTencentPK + "/devices/" + e2eTencentDN + ":signMqttConnect"
	alibaba := f.deviceClient(t, "aliyun-iot://"+e2eTencentPK+"/"+e2eTencentDN) // same names, Alibaba's
	otherDev := f.deviceClient(t, "azure-iot://"+e2eHub+"/other-device")
	module := f.deviceClient(t, "azure-iot://"+e2eHub+"/"+e2eDevice+"/"+e2eModule)
	onenet := f.deviceClient(t, "onenet-iot://"+e2eOneNETPK+"/"+e2eOneNETDN)
	aliBackend := f.ca.Backend(t, "spiffe://signerd.test/fleet/alibaba-only")
	aliBackendClient := &http.Client{Transport: &http.Transport{TLSClientConfig: pkitest.ClientTLS(f.ca.Pool(), &aliBackend)}, Timeout: guard}
	backendCert := f.ca.Backend(t, "spiffe://signerd.test/fleet/provisioner")
	backend := &http.Client{Transport: &http.Transport{TLSClientConfig: pkitest.ClientTLS(f.ca.Pool(), &backendCert)}, Timeout: guard}
	for _, tc := range []struct {
		name   string
		client *http.Client
		path   string
		body   string
		status int
		want   string
	}{
		{"an Alibaba device with the same names", alibaba, tencentPath, `{}`, http.StatusForbidden, "permission denied"},
		{"another azure device", otherDev, "/v1/azure/hubs/" + e2eHub + "/devices/" + e2eDevice + ":signMqttConnect", `{}`, http.StatusForbidden, "permission denied"},
		{"a module for its device", module, "/v1/azure/hubs/" + e2eHub + "/devices/" + e2eDevice + ":signMqttConnect", `{}`, http.StatusForbidden, "permission denied"},
		{"a backend granted Alibaba's \"*\" only", aliBackendClient, tencentPath, `{}`, http.StatusForbidden, "permission denied"},
		{"refused before validation", onenet, "/v1/onenet/products/" + e2eOneNETPK + "/devices/x%20y:signMqttConnect", `{}`, http.StatusForbidden, "permission denied"},
		{"bad device name", backend, "/v1/onenet/products/" + e2eOneNETPK + "/devices/x%20y:signMqttConnect", `{}`, http.StatusBadRequest, `"device_name"`},
		{"bad sign method", onenet, "/v1/onenet/products/" + e2eOneNETPK + "/devices/" + e2eOneNETDN + ":signMqttConnect", `{"signMethod": "SHA512"}`, http.StatusBadRequest, `"sign_method"`},
		{"bad ttl", backend, tencentPath, `{"ttlSeconds": 5}`, http.StatusBadRequest, `"ttl_seconds"`},
		{"azure over plain TCP", backend, "/v1/azure/hubs/" + e2eHub + "/devices/" + e2eDevice + ":signMqttConnect", `{"transport": "TRANSPORT_TCP"}`, http.StatusBadRequest, `"transport"`},
		{"unknown device", backend, "/v1/onenet/products/" + e2eOneNETPK + "/devices/nobody:signMqttConnect", `{}`, http.StatusNotFound, "not found"},
		{"registration in no group", backend, "/v1/azure/dps/" + e2eIDScope + "/registrations/lonely-1:signMqttConnect", `{}`, http.StatusNotFound, ""},
		{"key not base64", backend, "/v1/onenet/products/" + e2eOneNETPK + "/devices/bad-key:signMqttConnect", `{}`, http.StatusBadRequest, "iot/data/onenet/" + e2eOneNETPK + "/bad-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, raw := f.post(t, tc.client, tc.path, tc.body)
			if code != tc.status || !bytes.Contains(raw, []byte(tc.want)) {
				t.Errorf("HTTP %d %s, want %d containing %q", code, raw, tc.status, tc.want)
			}
		})
	}
	// Nothing the service wrote (its log, the audit log) holds a key.
	audit, err := os.ReadFile(f.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range f.keys {
		if strings.Contains(f.p.logs(), key) || bytes.Contains(audit, []byte(key)) {
			t.Errorf("a key from Vault appears in signerd's log or audit log")
		}
	}
	// Each denial is audited with the platform and device it named.
	found := false
	for _, line := range bytes.Split(bytes.TrimSpace(audit), []byte("\n")) {
		var r map[string]string
		if json.Unmarshal(line, &r) == nil && r["platform"] == "tencent" && r["product_key"] == e2eTencentPK &&
			r["device_name"] == e2eTencentDN && r["outcome"] == "denied" && r["caller"] == "device:"+e2eTencentPK+"/"+e2eTencentDN {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit record of the Alibaba device denied the Tencent device's login:\n%s", audit)
	}
}
