package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/internal/vaulttest"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// TestE2ERegisterDevice runs the real binary with TLS and caller
// authentication against a real Vault, whose token has only signerd's
// default policy plus the shipped registration policy, and the emulated
// platform: a registered device's secret lands in Vault by check-and-set
// (version 1), a repeat call gets ALREADY_EXISTS and overwrites nothing,
// no answer, log line or audit record contains a secret, and the new
// device's credentials verify against the secret the platform issued.
func TestE2ERegisterDevice(t *testing.T) {
	ctx := context.Background()
	const (
		pk            = "a1RegE2E"
		productSecret = "ProductSecretForE2E-0123456789ab"
		grpcDN        = "reg-e2e-01"
		restDN        = "reg-e2e-02"
		raceDN        = "reg-e2e-03"
		preloadedDN   = "preloaded-01"
		preloadedSec  = "preloaded-secret-0123456789abcde"
	)
	srv := vaulttest.StartT(t)
	kv := srv.Client.KVv2("iot")
	if _, err := kv.Put(ctx, "products/"+pk, map[string]any{"productSecret": productSecret}); err != nil {
		t.Fatal(err)
	}
	if err := srv.PutDevice(ctx, pk, preloadedDN, preloadedSec); err != nil {
		t.Fatal(err)
	}
	regPolicy, err := os.ReadFile("../../deploy/vault/policy-registration.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Client.Sys().PutPolicyWithContext(ctx, "signerd-registration", string(regPolicy)); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Client.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{
		Policies: []string{"signerd", "signerd-registration"}, TTL: "1h", NoParent: true,
	})
	if err != nil {
		t.Fatal(err)
	}

	emu := platformtest.New(t)
	emu.AddProduct(pk, productSecret)
	for _, dn := range []string{grpcDN, restDN, raceDN, preloadedDN} {
		emu.AllowRegistration(pk, dn)
	}
	emu.AllowRegistration("a1NoSecret", "orphan-01") // no ProductSecret in Vault
	products := writeFile(t, "products.yaml", "defaults:\n  authBaseUrl: "+emu.URL()+"\n")
	tc := newTLSFixture(t)
	p := startSignerd(t, append(tc.args,
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off",
		"-vault-addr", srv.Addr, "-vault-token-file", writeFile(t, "token", tok.Auth.ClientToken),
		"-products", products, "-platform-ca-file", writeFile(t, "platform-ca.pem", string(emu.CertPEM())),
		"-cache-negative-ttl", "1h", "-rate-limit", "0")...)
	p.tls = tc.backend
	client := p.grpcClient(t)
	registrations := func() int {
		n := 0
		for _, r := range emu.Requests() {
			if r.Path == platformtest.RegisterPath {
				n++
			}
		}
		return n
	}

	// Before registration the device is unknown, and signerd's cache
	// remembers that for an hour: registration must clear it.
	if _, err := client.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: grpcDN}); status.Code(err) != codes.NotFound {
		t.Fatalf("SignMqttConnect before registration = %v, want NOT_FOUND", err)
	}

	// gRPC.
	start := time.Now()
	resp, err := client.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: pk, DeviceName: grpcDN})
	if err != nil {
		t.Fatalf("RegisterDevice: %v", err)
	}
	if resp.GetProductKey() != pk || resp.GetDeviceName() != grpcDN || resp.GetRegisteredAt().AsTime().Before(start.Add(-time.Second)) {
		t.Errorf("answer %v", resp)
	}
	issued, _ := emu.DeviceSecret(pk, grpcDN)
	answers := []string{prototext(t, resp)}
	checkStored := func(dn, want string) {
		t.Helper()
		s, err := kv.Get(ctx, "devices/"+pk+"/"+dn)
		if err != nil || s.Data["deviceSecret"] != want {
			t.Fatalf("Vault devices/%s/%s: %v; want the platform-issued secret", pk, dn, err)
		}
		m, err := kv.GetMetadata(ctx, "devices/"+pk+"/"+dn)
		if err != nil || m.CurrentVersion != 1 || len(m.Versions) != 1 {
			t.Errorf("metadata of %s: %+v, %v; want exactly version 1", dn, m, err)
		}
	}
	checkStored(grpcDN, issued)

	// A repeat call: ALREADY_EXISTS, no platform call, nothing written.
	_, err = client.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: pk, DeviceName: grpcDN})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("repeat RegisterDevice = %v, want ALREADY_EXISTS", err)
	}
	answers = append(answers, err.Error())
	checkStored(grpcDN, issued)
	if n := registrations(); n != 1 {
		t.Errorf("%d registrations reached the platform, want 1", n)
	}

	// REST, through the gateway: 200 with the device's identity, then 409.
	restPath := "/v1/products/" + pk + "/devices/" + restDN + ":register"
	code, body := p.restPost(t, restPath, "{}")
	var rr signerv1.RegisterDeviceResponse
	if code != http.StatusOK || protojson.Unmarshal([]byte(body), &rr) != nil || rr.GetDeviceName() != restDN || rr.GetProductKey() != pk || rr.GetRegisteredAt() == nil {
		t.Fatalf("REST register: HTTP %d %s", code, body)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(body), &fields); err != nil || len(fields) != 3 {
		t.Errorf("REST answer %s: want exactly productKey, deviceName, registeredAt", body)
	}
	answers = append(answers, body)
	restIssued, _ := emu.DeviceSecret(pk, restDN)
	checkStored(restDN, restIssued)
	code, body = p.restPost(t, restPath, "{}")
	if code != http.StatusConflict {
		t.Errorf("repeat REST register: HTTP %d %s, want 409", code, body)
	}
	answers = append(answers, body)
	checkStored(restDN, restIssued)

	// A device already in Vault (imported) is left alone without asking
	// the platform.
	before := registrations()
	if _, err := client.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: pk, DeviceName: preloadedDN}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("preloaded device: %v, want ALREADY_EXISTS", err)
	}
	if registrations() != before {
		t.Error("a preloaded device reached the platform")
	}
	checkStored(preloadedDN, preloadedSec)

	// Concurrent calls for one device, over both transports: one platform
	// call, one success, one Vault version.
	before = registrations()
	emu.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: 300 * time.Millisecond, Times: 1})
	got := make([]codes.Code, 12)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := client.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: pk, DeviceName: raceDN})
				got[i] = status.Code(err)
				return
			}
			got[i] = codes.Unknown
			resp, err := p.httpClient().Post(p.baseURL()+"/v1/products/"+pk+"/devices/"+raceDN+":register", "application/json", strings.NewReader("{}"))
			if err != nil {
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				got[i] = codes.OK
			case http.StatusConflict:
				got[i] = codes.AlreadyExists
			}
		})
	}
	wg.Wait()
	if ok, exists := countCodes(got, codes.OK), countCodes(got, codes.AlreadyExists); ok != 1 || exists != len(got)-1 {
		t.Errorf("concurrent registrations: codes %v, want one OK and ALREADY_EXISTS for the rest", got)
	}
	if n := registrations() - before; n != 1 {
		t.Errorf("concurrent registrations made %d platform calls, want 1", n)
	}
	raceIssued, _ := emu.DeviceSecret(pk, raceDN)
	checkStored(raceDN, raceIssued)

	// No ProductSecret: FAILED_PRECONDITION naming where it belongs.
	_, err = client.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: "a1NoSecret", DeviceName: "orphan-01"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "iot/data/products/a1NoSecret") {
		t.Errorf("product without a ProductSecret: %v, want FAILED_PRECONDITION naming iot/data/products/a1NoSecret", err)
	}

	// A device may not register, not even itself.
	dev := tc.ca.Device(t, pk, grpcDN)
	devConn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(pkitest.ClientTLS(tc.ca.Pool(), &dev))))
	if err != nil {
		t.Fatal(err)
	}
	defer devConn.Close()
	if _, err := signerv1.NewSignerServiceClient(devConn).RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: pk, DeviceName: grpcDN}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("RegisterDevice by a device = %v, want PERMISSION_DENIED", err)
	}

	// The new device's credentials are the platform's: the CONNECT
	// password is the HMAC of the issued secret (computed here with
	// crypto/hmac), and the platform accepts its pre-verification.
	sreq := &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: grpcDN, ClientId: "reg-e2e-client",
		SignMethod: signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256, TimestampMs: proto.Int64(1700000000000)}
	sresp, err := client.SignMqttConnect(ctx, sreq)
	if err != nil {
		t.Fatalf("SignMqttConnect after registration: %v", err)
	}
	mac := hmac.New(sha256.New, []byte(issued))
	mac.Write([]byte("clientIdreg-e2e-clientdeviceName" + grpcDN + "productKey" + pk + "timestamp1700000000000"))
	if want := hex.EncodeToString(mac.Sum(nil)); sresp.GetPassword() != want {
		t.Errorf("password %q, want the HMAC of the platform-issued secret %q", sresp.GetPassword(), want)
	}
	pv, err := client.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pk, DeviceName: grpcDN})
	if err != nil {
		t.Fatalf("PreVerify of the registered device: %v", err)
	}
	if d, ok := emu.Issued(pv.GetIotId(), pv.GetIotToken()); !ok || d.DeviceName != grpcDN {
		t.Errorf("the platform did not issue the PreVerify answer")
	}

	p.stop(t, syscall.SIGTERM)
	audit := readAudit(t, tc.args)
	secrets := []string{issued, restIssued, raceIssued, productSecret, preloadedSec, tok.Auth.ClientToken}
	for _, r := range emu.Requests() {
		secrets = append(secrets, r.Form.Get("sign"))
	}
	for what, text := range map[string]string{"logs": p.logs(), "audit": audit, "answers": strings.Join(answers, "\n")} {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s contain a secret", what)
			}
		}
	}
	// Every registration left an audit record naming the device.
	var outcomes []string
	for _, line := range strings.Split(strings.TrimSpace(audit), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["rpc"] == "RegisterDevice" && r["device_name"] == grpcDN {
			outcomes = append(outcomes, r["code"].(string))
		}
	}
	if !slices.Equal(outcomes, []string{"OK", "AlreadyExists", "PermissionDenied"}) {
		t.Errorf("audit codes for %s: %v, want OK, AlreadyExists, PermissionDenied\n%s", grpcDN, outcomes, audit)
	}
	if !p.hasLog(t, "device registered") {
		t.Error("no \"device registered\" log line")
	}
}

func countCodes(cs []codes.Code, c codes.Code) int {
	n := 0
	for _, x := range cs {
		if x == c {
			n++
		}
	}
	return n
}

// restPost posts body to path and returns the status and body.
func (p *proc) restPost(t *testing.T, path, body string) (int, string) {
	t.Helper()
	resp, err := p.httpClient().Post(p.baseURL()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func prototext(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readAudit returns the audit log named by -audit-log in args.
func readAudit(t *testing.T, args []string) string {
	t.Helper()
	i := slices.Index(args, "-audit-log")
	if i < 0 || i+1 >= len(args) {
		t.Fatal("no -audit-log in the TLS fixture's arguments")
	}
	b, err := os.ReadFile(args[i+1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
