package service_test

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
	signing "github.com/signerd/signerd/signing/aliyun"
)

const (
	gwPK = "a1GwPK"
	gwDN = "gw-0001"
	subP = "a1SubPK"
)

func subSecret(dn string) string { return "secret-of-" + dn + "-0123456789" }

// subStore holds sub-0000 … sub-0059 of a1SubPK.
func subStore() *countingStore {
	mem := secrets.NewMemory()
	for i := 0; i < 60; i++ {
		dn := fmt.Sprintf("sub-%04d", i)
		mem.Put(secrets.DeviceID{ProductKey: subP, DeviceName: dn}, []byte(subSecret(dn)))
	}
	return &countingStore{Store: mem}
}

func subs(n int) []*signerv1.SubDevice {
	var out []*signerv1.SubDevice
	for i := 0; i < n; i++ {
		out = append(out, &signerv1.SubDevice{ProductKey: subP, DeviceName: fmt.Sprintf("sub-%04d", i)})
	}
	return out
}

// refSign is the platform's sub-device rule written out by hand.
func refSign(newHash func() hash.Hash, secret, pk, dn, cid, ts string) string {
	m := hmac.New(newHash, []byte(secret))
	m.Write([]byte("clientId" + cid + "deviceName" + dn + "productKey" + pk + "timestamp" + ts))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSignSubDeviceLogin(t *testing.T) {
	methods := []struct {
		m       signerv1.SignMethod
		wire    string
		newHash func() hash.Hash
	}{
		{signerv1.SignMethod_SIGN_METHOD_UNSPECIFIED, "hmacSha256", sha256.New},
		{signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256, "hmacSha256", sha256.New},
		{signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1, "hmacSha1", sha1.New},
		{signerv1.SignMethod_SIGN_METHOD_HMAC_MD5, "hmacMd5", md5.New},
	}
	for _, tm := range methods {
		for _, n := range []int{1, 3, 50} {
			t.Run(fmt.Sprintf("%s/%d", tm.m, n), func(t *testing.T) {
				svc := service.New(subStore(), service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock))
				resp, err := svc.SignSubDeviceLogin(context.Background(), &signerv1.SignSubDeviceLoginRequest{
					ProductKey: gwPK, DeviceName: gwDN, SubDevices: subs(n), SignMethod: tm.m,
				})
				if err != nil {
					t.Fatal(err)
				}
				verb := "login"
				if n > 1 {
					verb = "batch_login"
				}
				if want := "/ext/session/a1GwPK/gw-0001/combine/" + verb; resp.GetTopic() != want || resp.GetReplyTopic() != want+"_reply" {
					t.Errorf("topics %q, %q; want %q and _reply", resp.GetTopic(), resp.GetReplyTopic(), want)
				}
				if len(resp.GetParams()) != n {
					t.Fatalf("%d params, want %d", len(resp.GetParams()), n)
				}
				for i, p := range resp.GetParams() {
					dn := fmt.Sprintf("sub-%04d", i)
					want := &signerv1.SubDeviceLoginParams{
						ProductKey: subP, DeviceName: dn, ClientId: subP + "." + dn, Timestamp: clockMs,
						SignMethod: tm.wire, CleanSession: "true",
						Sign: refSign(tm.newHash, subSecret(dn), subP, dn, subP+"."+dn, clockMs),
					}
					if !proto.Equal(p, want) {
						t.Errorf("params[%d] = %v, want %v", i, p, want)
					}
				}
				checkPayload(t, resp)
				if strings.Contains(resp.String(), subSecret("sub-0000")) {
					t.Error("the answer contains a sub-device secret")
				}
			})
		}
	}
}

// checkPayload checks that the payload is the Alink message carrying
// exactly resp's params.
func checkPayload(t *testing.T, resp *signerv1.SignSubDeviceLoginResponse) {
	t.Helper()
	type params struct {
		ProductKey   string `json:"productKey"`
		DeviceName   string `json:"deviceName"`
		ClientID     string `json:"clientId"`
		Timestamp    string `json:"timestamp"`
		SignMethod   string `json:"signMethod"`
		Sign         string `json:"sign"`
		CleanSession string `json:"cleanSession"`
	}
	var msg struct {
		ID     string          `json:"id"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal([]byte(resp.GetPayload()), &msg); err != nil {
		t.Fatalf("payload %s: %v", resp.GetPayload(), err)
	}
	if id, err := strconv.ParseUint(msg.ID, 10, 32); err != nil || strconv.FormatUint(id, 10) != msg.ID {
		t.Errorf("payload id %q is not a decimal in 0–4294967295", msg.ID)
	}
	var got []params
	if len(resp.GetParams()) == 1 {
		var p params
		if err := json.Unmarshal(msg.Params, &p); err != nil {
			t.Fatal(err)
		}
		got = []params{p}
	} else {
		var list struct {
			DeviceList []params `json:"deviceList"`
		}
		if err := json.Unmarshal(msg.Params, &list); err != nil {
			t.Fatal(err)
		}
		got = list.DeviceList
	}
	var want []params
	for _, p := range resp.GetParams() {
		want = append(want, params{p.GetProductKey(), p.GetDeviceName(), p.GetClientId(), p.GetTimestamp(),
			p.GetSignMethod(), p.GetSign(), p.GetCleanSession()})
	}
	if !slices.Equal(got, want) {
		t.Errorf("payload params %+v, want %+v", got, want)
	}
}

func TestSignSubDeviceLoginOptions(t *testing.T) {
	svc := service.New(subStore(), service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock))
	resp, err := svc.SignSubDeviceLogin(context.Background(), &signerv1.SignSubDeviceLoginRequest{
		ProductKey: gwPK, DeviceName: gwDN,
		SubDevices:  []*signerv1.SubDevice{{ProductKey: subP, DeviceName: "sub-0007", ClientId: "mac-00:11:22"}},
		SignMethod:  signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1,
		TimestampMs: proto.Int64(1700000000000), CleanSession: proto.Bool(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetParams()[0]
	if p.GetClientId() != "mac-00:11:22" || p.GetTimestamp() != "1700000000000" || p.GetCleanSession() != "false" ||
		p.GetSign() != refSign(sha1.New, subSecret("sub-0007"), subP, "sub-0007", "mac-00:11:22", "1700000000000") {
		t.Errorf("params = %v", p)
	}
	checkPayload(t, resp)
}

func TestSignSubDeviceLoginBadInput(t *testing.T) {
	long := strings.Repeat("a", 32)
	tests := []struct {
		name   string
		req    *signerv1.SignSubDeviceLoginRequest
		fields []string
	}{
		{"bad gateway", &signerv1.SignSubDeviceLoginRequest{ProductKey: "a1-GW", DeviceName: "gw", SubDevices: subs(1)},
			[]string{"product_key", "device_name"}},
		{"no sub-devices", &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN}, []string{"sub_devices"}},
		{"51 sub-devices", &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN, SubDevices: subs(51)}, []string{"sub_devices"}},
		{"bad sub-device names", &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN, SubDevices: append(subs(3),
			&signerv1.SubDevice{ProductKey: subP, DeviceName: "x|y"},
			&signerv1.SubDevice{ProductKey: "a1/P", DeviceName: "dev-0001", ClientId: "c|securemode=3|"})},
			[]string{"sub_devices[3].device_name", "sub_devices[4].product_key", "sub_devices[4].client_id"}},
		{"default client id too long", &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN,
			SubDevices: []*signerv1.SubDevice{{ProductKey: long, DeviceName: long}}}, []string{"sub_devices[0].client_id"}},
		{"duplicate", &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN, SubDevices: append(subs(2), subs(1)...)},
			[]string{"sub_devices[2]"}},
		{"the gateway itself", &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN,
			SubDevices: []*signerv1.SubDevice{{ProductKey: gwPK, DeviceName: gwDN}}}, []string{"sub_devices[0]"}},
		{"method and timestamp", &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN, SubDevices: subs(1),
			SignMethod: 9, TimestampMs: proto.Int64(-1)}, []string{"sign_method", "timestamp_ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := subStore()
			authorized := 0
			svc := service.New(store, service.WithAuthorizer(fakeAuthz{sub: func(context.Context, auth.Device, auth.Device) error {
				authorized++
				return nil
			}}))
			_, err := svc.SignSubDeviceLogin(context.Background(), tc.req)
			if got := badRequestFields(t, err); !slices.Equal(got, tc.fields) {
				t.Errorf("fields %q, want %q", got, tc.fields)
			}
			if store.n.Load() != 0 || authorized != 0 {
				t.Errorf("bad input reached the authorizer (%d) or the store (%d)", authorized, store.n.Load())
			}
		})
	}
}

func TestSignSubDeviceLoginAuthorization(t *testing.T) {
	store := subStore()
	var mu sync.Mutex
	var asked [][4]string
	svc := service.New(store, service.WithAuthorizer(fakeAuthz{sub: func(_ context.Context, gw, sub auth.Device) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, [4]string{gw.ProductKey, gw.DeviceName, sub.ProductKey, sub.DeviceName})
		if sub.DeviceName == "sub-0003" || sub.DeviceName == "sub-0004" {
			return &auth.Denial{Device: sub, Gateway: gw, Reason: "not yours"}
		}
		return nil
	}}))
	_, err := svc.SignSubDeviceLogin(context.Background(), &signerv1.SignSubDeviceLoginRequest{
		ProductKey: gwPK, DeviceName: gwDN, SubDevices: subs(5)})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(msg, "sub_devices[3], sub_devices[4]") {
		t.Errorf("two forbidden sub-devices: %v, want PERMISSION_DENIED naming sub_devices[3] and [4]", err)
	}
	if n := store.n.Load(); n != 0 {
		t.Errorf("the store was asked %d times for a call with a forbidden sub-device", n)
	}
	// The answer carries each refused sub-device's denial, for the audit.
	if ds := auth.Denials(err); len(ds) != 2 || ds[0].Device.DeviceName != "sub-0003" || ds[1].Device.DeviceName != "sub-0004" {
		t.Errorf("denials %v, want those of sub-0003 and sub-0004", ds)
	}
	// The answer carries each refused sub-device's denial, for the audit.
	if ds := auth.Denials(err); len(ds) != 2 || ds[0].Device.DeviceName != "sub-0003" || ds[1].Device.DeviceName != "sub-0004" {
		t.Errorf("denials %v, want those of sub-0003 and sub-0004", ds)
	}
	// Every sub-device is asked about, past the first refusal, so that each
	// refused one is named (and audited by the server's authorizer).
	if len(asked) != 5 || asked[0] != [4]string{gwPK, gwDN, subP, "sub-0000"} {
		t.Errorf("authorizer asked %v", asked)
	}

	// Allowed: every sub-device is authorized, each once.
	asked = nil
	if _, err := svc.SignSubDeviceLogin(context.Background(), &signerv1.SignSubDeviceLoginRequest{
		ProductKey: gwPK, DeviceName: gwDN, SubDevices: subs(3)}); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 3 {
		t.Errorf("authorizer asked %d times for 3 sub-devices", len(asked))
	}
}

func TestSignSubDeviceLoginStoreErrors(t *testing.T) {
	reqWith := func(extra ...*signerv1.SubDevice) *signerv1.SignSubDeviceLoginRequest {
		return &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN, SubDevices: append(subs(2), extra...)}
	}
	svc := service.New(subStore(), service.WithAuthorizer(auth.AllowAll()))
	_, err := svc.SignSubDeviceLogin(context.Background(), reqWith(&signerv1.SubDevice{ProductKey: subP, DeviceName: "nobody-01"}))
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "sub_devices[2]") {
		t.Errorf("unknown sub-device: %v, want NOT_FOUND naming sub_devices[2]", err)
	}

	log, logs := newLogger()
	down := service.New(errStore{err: fmt.Errorf("vault: %w", secrets.ErrUnavailable)}, service.WithAuthorizer(auth.AllowAll()), service.WithLogger(log))
	if _, err := down.SignSubDeviceLogin(context.Background(), reqWith()); status.Code(err) != codes.Unavailable {
		t.Errorf("store down: %v, want UNAVAILABLE", err)
	}
	if !strings.Contains(logs.String(), "unavailable") {
		t.Errorf("store outage not logged: %s", logs)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := service.New(errStore{err: context.Canceled}, service.WithAuthorizer(auth.AllowAll())).SignSubDeviceLogin(ctx, reqWith()); status.Code(err) != codes.Canceled {
		t.Errorf("cancelled: %v, want CANCELED", err)
	}
}

// fakeTransit computes HMAC-SHA256 with keys it holds, as Vault Transit
// would, and counts its calls. Which algorithms it serves is the real
// Transit's answer.
type fakeTransit struct {
	mu    sync.Mutex
	keys  map[secrets.DeviceID]string
	calls int
}

// realTransit answers Check as Vault Transit does; Check does no I/O.
var realTransit, _ = secrets.NewTransit(nil, secrets.TransitConfig{})

func (f *fakeTransit) Check(productKey string, alg secrets.Algorithm) error {
	return realTransit.Check(productKey, alg)
}

func (f *fakeTransit) MAC(_ context.Context, id secrets.DeviceID, alg secrets.Algorithm, content []byte) ([]byte, error) {
	if err := f.Check(id.ProductKey, alg); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	k, ok := f.keys[id]
	if !ok {
		return nil, secrets.ErrNotFound
	}
	m := hmac.New(sha256.New, []byte(k))
	m.Write(content)
	return m.Sum(nil), nil
}

// withTransit routes the products that products puts in Transit to tr and
// the others to store, as cmd/signerd does.
func withTransit(store secrets.Store, products *signing.Products, tr secrets.MACer) service.Option {
	return service.WithKeys(secrets.NewRouter(secrets.NewLocalMACer(store), tr, products.InTransit))
}

func TestSignSubDeviceLoginTransit(t *testing.T) {
	products, err := signing.ParseProducts([]byte("products:\n  a1TransitPK:\n    transit: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &fakeTransit{keys: map[secrets.DeviceID]string{{ProductKey: "a1TransitPK", DeviceName: "vault-0001"}: "transit-key-0123456789"}}
	store := subStore()
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithProducts(products), withTransit(store, products, tr), service.WithClock(fixedClock))
	req := &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN,
		SubDevices: append(subs(1), &signerv1.SubDevice{ProductKey: "a1TransitPK", DeviceName: "vault-0001"})}

	resp, err := svc.SignSubDeviceLogin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := refSign(sha256.New, "transit-key-0123456789", "a1TransitPK", "vault-0001", "a1TransitPK.vault-0001", clockMs); resp.GetParams()[1].GetSign() != want {
		t.Errorf("Transit sign %q, want %q", resp.GetParams()[1].GetSign(), want)
	}
	if store.n.Load() != 1 || tr.calls != 1 {
		t.Errorf("store asked %d times, Transit %d times; want 1 each (KV for a1SubPK, Transit for a1TransitPK)", store.n.Load(), tr.calls)
	}

	// Transit has no SHA-1 or MD5: the whole call fails before any lookup.
	store.n.Store(0)
	for _, m := range []signerv1.SignMethod{signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1, signerv1.SignMethod_SIGN_METHOD_HMAC_MD5} {
		req.SignMethod = m
		_, err := svc.SignSubDeviceLogin(context.Background(), req)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "sub_devices[1]") ||
			!strings.Contains(status.Convert(err).Message(), "SIGN_METHOD_HMAC_SHA256") {
			t.Errorf("%v with a Transit sub-device: %v, want FAILED_PRECONDITION naming sub_devices[1] and SHA256", m, err)
		}
	}
	if store.n.Load() != 0 {
		t.Errorf("store asked %d times for a call that cannot be served", store.n.Load())
	}
}
