package onenet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	sign "github.com/signerd/signerd/signing/onenet"
	_ "github.com/signerd/signerd/signing/tencent" // registers the other platform of TestSignKeyErrors
)

// vector is one case of the signing package's known answers
// (signing/onenet/testdata/vectors.json, from the Python oracle).
type vector struct {
	Input struct {
		ProductID  string `json:"productId"`
		DeviceName string `json:"deviceName"`
		DeviceKey  string `json:"deviceKey"`
		SignMethod string `json:"signMethod"`
		IssuedAt   int64  `json:"issuedAt"`
		TTLSeconds int32  `json:"ttlSeconds"`
	} `json:"input"`
	Expect struct {
		ClientID  string `json:"clientId"`
		Username  string `json:"username"`
		Password  string `json:"password"`
		ExpiresAt int64  `json:"expiresAt"`
		// StringForSignature is checked by the signing package's tests.
		StringForSignature string `json:"stringForSignature"`
	} `json:"expect"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("../../signing/onenet/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 50 {
		t.Fatalf("%d vectors, want the committed 56", len(vs))
	}
	return vs
}

// countingKeys counts the MACs asked for, to show that an invalid request
// never reaches the key.
type countingKeys struct {
	platform.Keys
	calls int
}

func (k *countingKeys) MAC(ctx context.Context, id device.ID, alg secrets.Algorithm, content []byte) ([]byte, error) {
	k.calls++
	return k.Keys.MAC(ctx, id, alg, content)
}

// configured returns the module's signer with the default settings, and keys holding the devices of
// devFile (a -dev-secrets file, keys written as in Vault: base64), read
// with the encodings the module's locations declare.
func configured(t *testing.T, devFile []secrets.DevEntry) (signer, *countingKeys) {
	t.Helper()
	c, err := Module{}.Configure(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Signers) != 1 || c.Signers[0].RPC() != RPC {
		t.Fatalf("Configure(nil) signers %v, want one for %s", c.Signers, RPC)
	}
	enc := map[string]secrets.Encoding{"tencent": secrets.EncodingBase64}
	for name, loc := range c.Locations {
		enc[name] = loc.Encoding
	}
	mem := secrets.NewMemory()
	if len(devFile) > 0 {
		data, _ := json.Marshal(devFile)
		if mem, _, err = secrets.ParseDevFile(data, enc); err != nil {
			t.Fatal(err)
		}
	}
	return c.Signers[0].(signer), &countingKeys{Keys: secrets.NewRouter(secrets.NewLocalMACer(mem), nil, nil)}
}

func TestSignVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		in := v.Input
		s, keys := configured(t, []secrets.DevEntry{{Platform: "onenet", ProductKey: in.ProductID, DeviceName: in.DeviceName, Key: in.DeviceKey}})
		req := &signerv1.SignOnenetMqttConnectRequest{ProductId: in.ProductID, DeviceName: in.DeviceName, SignMethod: in.SignMethod, TtlSeconds: in.TTLSeconds}
		id, err := s.Device(req)
		if want := (device.ID{Platform: "onenet", ProductKey: in.ProductID, DeviceName: in.DeviceName}); err != nil || id != want {
			t.Fatalf("case %d: Device = %v, %v; want %v", i, id, err, want)
		}
		got, err := s.Sign(context.Background(), req, time.Unix(in.IssuedAt, 0), keys)
		want := platform.Login{
			Host: "mqttstls.heclouds.com", Port: 8883,
			ClientID: v.Expect.ClientID, Username: v.Expect.Username, Password: v.Expect.Password,
			Transport: signerv1.Transport_TRANSPORT_TLS, URI: "mqtts://mqttstls.heclouds.com:8883",
			KeepAliveSeconds: 120, CleanSession: true, ProtocolVersion: "3.1.1",
			ExpiresAt: time.Unix(v.Expect.ExpiresAt, 0).UTC(),
		}
		if err != nil || got != want {
			t.Errorf("case %d: Sign(%v) =\n%+v, %v\nwant\n%+v", i, req, got, err, want)
		}
		if keys.calls != 1 {
			t.Errorf("case %d: %d MACs, want 1", i, keys.calls)
		}
	}
}

const (
	testPID  = "Ck2AF9QD2K"
	testName = "dev-001"
	testPsk  = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef"
)

func TestSignTransport(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "onenet", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	for _, tc := range []struct {
		in   signerv1.Transport
		want signerv1.Transport
		host string
		uri  string
		port int
	}{
		{signerv1.Transport_TRANSPORT_UNSPECIFIED, signerv1.Transport_TRANSPORT_TLS, "mqttstls.heclouds.com", "mqtts://mqttstls.heclouds.com:8883", 8883},
		{signerv1.Transport_TRANSPORT_TLS, signerv1.Transport_TRANSPORT_TLS, "mqttstls.heclouds.com", "mqtts://mqttstls.heclouds.com:8883", 8883},
		{signerv1.Transport_TRANSPORT_TCP, signerv1.Transport_TRANSPORT_TCP, "mqtts.heclouds.com", "tcp://mqtts.heclouds.com:1883", 1883},
	} {
		got, err := s.Sign(context.Background(), &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, Transport: tc.in},
			time.Unix(1700000000, 0), keys)
		if err != nil || got.Transport != tc.want || got.URI != tc.uri || got.Port != tc.port || got.Host != tc.host {
			t.Errorf("transport %v: %+v, %v; want %v at %s", tc.in, got, err, tc.want, tc.uri)
		}
		// The example of the signing package: the same login whatever the transport.
		if got.Password != "version=2018-10-31&res=products%2FCk2AF9QD2K%2Fdevices%2Fdev-001&et=1700003600&method=sha256&sign=v8DH6OylDZzdfVh7jWt7kWS2zU9IPlll%2BZJPTqhu6fs%3D" {
			t.Errorf("transport %v: password %q", tc.in, got.Password)
		}
	}
}

// fieldsOf returns the fields of err's *device.FieldError values, failing
// if err holds anything else.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var fields []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *device.FieldError
		if !errors.As(e, &fe) {
			t.Errorf("error %v is not a *device.FieldError", e)
			return
		}
		fields = append(fields, fe.Field)
	}
	if err != nil {
		walk(err)
	}
	slices.Sort(fields)
	return fields
}

func TestSignFieldErrors(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "onenet", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	for _, tc := range []struct {
		name   string
		req    *signerv1.SignOnenetMqttConnectRequest
		fields []string
	}{
		{"empty", &signerv1.SignOnenetMqttConnectRequest{}, []string{"deviceName", "productId"}},
		{"productId punctuation", &signerv1.SignOnenetMqttConnectRequest{ProductId: "Ck2AF9QD2-", DeviceName: testName}, []string{"productId"}},
		{"productId 33", &signerv1.SignOnenetMqttConnectRequest{ProductId: strings.Repeat("a", 33), DeviceName: testName}, []string{"productId"}},
		{"deviceName URL-encoded", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: "dev%2F1"}, []string{"deviceName"}},
		{"deviceName 65", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: strings.Repeat("d", 65)}, []string{"deviceName"}},
		{"deviceName path", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: "../x"}, []string{"deviceName"}},
		{"signMethod lower case", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, SignMethod: "sha256"}, []string{"signMethod"}},
		{"signMethod Tencent's", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, SignMethod: "HMAC_SHA256"}, []string{"signMethod"}},
		{"ttl below", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, TtlSeconds: 59}, []string{"ttlSeconds"}},
		{"ttl above", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, TtlSeconds: 2592001}, []string{"ttlSeconds"}},
		{"ttl negative", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, TtlSeconds: -1}, []string{"ttlSeconds"}},
		{"websocket", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, Transport: signerv1.Transport_TRANSPORT_WEBSOCKET_TLS}, []string{"transport"}},
		{"unknown transport", &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, Transport: 99}, []string{"transport"}},
		{"every field at once", &signerv1.SignOnenetMqttConnectRequest{ProductId: "x-", DeviceName: "é", SignMethod: "x", TtlSeconds: 1, Transport: 3},
			[]string{"deviceName", "productId", "signMethod", "transport", "ttlSeconds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys.calls = 0
			got, err := s.Sign(context.Background(), tc.req, time.Unix(1700000000, 0), keys)
			if f := fieldsOf(t, err); !slices.Equal(f, tc.fields) {
				t.Errorf("Sign(%v) error %v: fields %v, want %v", tc.req, err, f, tc.fields)
			}
			if got != (platform.Login{}) || keys.calls != 0 {
				t.Errorf("Sign(%v) = %+v after %d MACs, want nothing and no MAC", tc.req, got, keys.calls)
			}
			noKey(t, err)
		})
	}
}

// noKey fails if err's text holds the test key, raw or as written.
func noKey(t *testing.T, err error) {
	t.Helper()
	raw, _ := base64.StdEncoding.DecodeString(testPsk)
	if err != nil && (strings.Contains(err.Error(), testPsk) || strings.Contains(err.Error(), string(raw))) {
		t.Errorf("error %q holds the key", err)
	}
}

// TestSignServerClock: an issue time the login cannot carry is the
// server's fault, never a field the caller could fix.
func TestSignServerClock(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "onenet", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	req := &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName}
	for _, now := range []time.Time{{}, time.Unix(-1, 0), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		got, err := s.Sign(context.Background(), req, now, keys)
		var fe *device.FieldError
		if err == nil || errors.As(err, &fe) || got != (platform.Login{}) {
			t.Errorf("Sign at %v = %+v, %#v; want a plain error", now, got, err)
		}
		noKey(t, err)
	}
}

func TestSignKeyErrors(t *testing.T) {
	// The store holds an Alibaba device and a Tencent device of the very
	// names asked for: other platforms' devices, whose keys are never used.
	const sharedPID = "EQPOKD5111" // a valid product ID on all three platforms
	s, keys := configured(t, []secrets.DevEntry{
		{ProductKey: sharedPID, DeviceName: testName, DeviceSecret: "alibaba-secret"},
		{Platform: "tencent", ProductKey: sharedPID, DeviceName: testName, Key: testPsk},
		{Platform: "onenet", ProductKey: sharedPID, DeviceName: "dev-002", Key: testPsk},
	})
	for _, req := range []*signerv1.SignOnenetMqttConnectRequest{
		{ProductId: sharedPID, DeviceName: testName},
		{ProductId: "Ck2AF9QD2K", DeviceName: "dev-002"},
	} {
		_, err := s.Sign(context.Background(), req, time.Unix(1700000000, 0), keys)
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Sign(%v) error %v, want ErrNotFound", req, err)
		}
		noKey(t, err)
	}
	failing := &countingKeys{Keys: failingKeys{}}
	if _, err := s.Sign(context.Background(), &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName},
		time.Unix(1700000000, 0), failing); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("Sign with an unavailable store: %v, want ErrUnavailable", err)
	}
}

type failingKeys struct{ platform.Keys }

func (failingKeys) MAC(context.Context, device.ID, secrets.Algorithm, []byte) ([]byte, error) {
	return nil, secrets.ErrUnavailable
}

func TestSignMethodsUseTheirHMAC(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "onenet", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	key, _ := base64.StdEncoding.DecodeString(testPsk)
	for _, m := range []string{"", "SHA256", "SHA1", "MD5"} {
		got, err := s.Sign(context.Background(), &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName, SignMethod: m},
			time.Unix(1700000000, 0), keys)
		method, _ := sign.ParseMethod(m)
		want, werr := sign.SignConnect(sign.Request{ProductID: testPID, DeviceName: testName, Method: method,
			IssuedAt: time.Unix(1700000000, 0)}, sign.KeyMAC(key))
		if err != nil || werr != nil || got.Password != want.Password {
			t.Errorf("method %q: password %q, %v; want %q, %v", m, got.Password, err, want.Password, werr)
		}
	}
}

func TestDeviceWrongRequest(t *testing.T) {
	s, keys := configured(t, nil)
	if _, err := s.Device(&signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName}); err == nil {
		t.Error("Device accepted a Tencent request")
	}
	if _, err := s.Sign(context.Background(), &signerv1.SignTencentMqttConnectRequest{}, time.Unix(1700000000, 0), keys); err == nil {
		t.Error("Sign accepted a Tencent request")
	}
	if _, err := s.Device((*signerv1.SignOnenetMqttConnectRequest)(nil)); err == nil {
		t.Error("Device accepted a nil request")
	}
}

func TestConfigure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section string // "" = none
		want    secrets.Location
		errs    []string // nil: valid
		not     []string // what errs must not say
	}{
		{name: "none", want: DefaultLocation},
		{name: "empty", section: `{}`, want: DefaultLocation},
		{name: "empty vault", section: `{"vault":{}}`, want: DefaultLocation},
		{name: "every setting", section: `{"vault":{"mount":"kv","path":"o/{productKey}-{deviceName}","field":"key"}}`,
			want: secrets.Location{Mount: "kv", PathTemplate: "o/{productKey}-{deviceName}", Field: "key", Encoding: secrets.EncodingBase64}},
		{name: "unknown key", section: `{"host":"x"}`, errs: []string{`"host"`}},
		{name: "unknown vault key", section: `{"vault":{"encoding":"raw"}}`, errs: []string{`"vault.encoding"`}},
		{name: "wrong case", section: `{"Vault":{}}`, errs: []string{`"Vault"`}},
		{name: "wrong type", section: `{"vault":{"mount":5}}`, errs: []string{"vault.mount", "string"}, not: []string{"required"}},
		{name: "every bad setting at once", section: `{"vault":{"mount":"","path":"/abs","field":""},"extra":1}`,
			errs: []string{`"extra"`, "vault: mount", "vault: vault path template \"/abs\"", "vault: field: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var section []byte
			if tc.section != "" {
				section = []byte(tc.section)
			}
			c, err := Module{}.Configure(section)
			if tc.errs != nil {
				if err == nil {
					t.Fatalf("Configure(%s) = %+v, want errors %q", tc.section, c, tc.errs)
				}
				for _, w := range tc.errs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Configure(%s) error %q does not say %q", tc.section, err, w)
					}
				}
				// A wrongly typed value reads as empty: it must not be
				// reported a second time as a missing one.
				for _, w := range tc.not {
					if strings.Contains(err.Error(), w) {
						t.Errorf("Configure(%s) error %q says %q", tc.section, err, w)
					}
				}
				return
			}
			if err != nil || c.Locations["onenet"] != tc.want || len(c.Locations) != 1 || len(c.Signers) != 1 {
				t.Errorf("Configure(%s) = %+v, %v; want location %+v and one signer", tc.section, c, err, tc.want)
			}
		})
	}
	if (Module{}).Name() != "onenet" {
		t.Errorf("Name() = %q", Module{}.Name())
	}
}
