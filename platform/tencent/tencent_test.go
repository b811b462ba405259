package tencent

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
	_ "github.com/signerd/signerd/signing/onenet" // registers the other platform of TestSignKeyErrors
	sign "github.com/signerd/signerd/signing/tencent"
)

// vector is one case of the signing package's known answers
// (signing/tencent/testdata/vectors.json, from the Python oracle).
type vector struct {
	Input struct {
		ProductID  string `json:"productId"`
		DeviceName string `json:"deviceName"`
		DevicePsk  string `json:"devicePsk"`
		ConnID     string `json:"connId"`
		SignMethod string `json:"signMethod"`
		IssuedAt   int64  `json:"issuedAt"`
		TTLSeconds int32  `json:"ttlSeconds"`
	} `json:"input"`
	Expect struct {
		ClientID  string `json:"clientId"`
		Username  string `json:"username"`
		Password  string `json:"password"`
		ExpiresAt int64  `json:"expiresAt"`
	} `json:"expect"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("../../signing/tencent/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 50 {
		t.Fatalf("%d vectors, want the committed 53", len(vs))
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

// configured returns the module's signer with the default settings and
// the connection IDs fixed to connID, and keys holding the devices of
// devFile (a -dev-secrets file, keys written as in Vault: base64), read
// with the encodings the module's locations declare.
func configured(t *testing.T, connID string, devFile []secrets.DevEntry) (*signer, *countingKeys) {
	t.Helper()
	c, err := Module{}.Configure(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Signers) != 1 || c.Signers[0].RPC() != RPC {
		t.Fatalf("Configure(nil) signers %v, want one for %s", c.Signers, RPC)
	}
	enc := map[string]secrets.Encoding{"onenet": secrets.EncodingBase64}
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
	s := c.Signers[0].(*signer)
	s.connID = func() (string, error) { return connID, nil }
	return s, &countingKeys{Keys: secrets.NewRouter(secrets.NewLocalMACer(mem), nil, nil)}
}

func TestSignVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		in := v.Input
		s, keys := configured(t, in.ConnID, []secrets.DevEntry{{Platform: "tencent", ProductKey: in.ProductID, DeviceName: in.DeviceName, Key: in.DevicePsk}})
		req := &signerv1.SignTencentMqttConnectRequest{ProductId: in.ProductID, DeviceName: in.DeviceName, SignMethod: in.SignMethod, TtlSeconds: in.TTLSeconds}
		id, err := s.Device(req)
		if want := (device.ID{Platform: "tencent", ProductKey: in.ProductID, DeviceName: in.DeviceName}); err != nil || id != want {
			t.Fatalf("case %d: Device = %v, %v; want %v", i, id, err, want)
		}
		got, err := s.Sign(context.Background(), req, time.Unix(in.IssuedAt, 0), keys)
		host := in.ProductID + ".iotcloud.tencentdevices.com"
		want := platform.Login{
			Host: host, Port: 1883,
			ClientID: v.Expect.ClientID, Username: v.Expect.Username, Password: v.Expect.Password,
			Transport: signerv1.Transport_TRANSPORT_TCP, URI: "tcp://" + host + ":1883",
			KeepAliveSeconds: 240, CleanSession: true, ProtocolVersion: "3.1.1",
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
	testPID  = "EQPOKD5111"
	testName = "dev-001"
	testPsk  = "MDEyMzQ1Njc4OWFiY2RlZg==" // "0123456789abcdef"
)

func TestSignTransport(t *testing.T) {
	s, keys := configured(t, "aB3dE", []secrets.DevEntry{{Platform: "tencent", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	host := testPID + ".iotcloud.tencentdevices.com"
	for _, tc := range []struct {
		in   signerv1.Transport
		want signerv1.Transport
		uri  string
		port int
	}{
		{signerv1.Transport_TRANSPORT_UNSPECIFIED, signerv1.Transport_TRANSPORT_TCP, "tcp://" + host + ":1883", 1883},
		{signerv1.Transport_TRANSPORT_TCP, signerv1.Transport_TRANSPORT_TCP, "tcp://" + host + ":1883", 1883},
		{signerv1.Transport_TRANSPORT_TLS, signerv1.Transport_TRANSPORT_TLS, "mqtts://" + host + ":8883", 8883},
	} {
		got, err := s.Sign(context.Background(), &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, Transport: tc.in},
			time.Unix(1700000000, 0), keys)
		if err != nil || got.Transport != tc.want || got.URI != tc.uri || got.Port != tc.port || got.Host != host {
			t.Errorf("transport %v: %+v, %v; want %v at %s", tc.in, got, err, tc.want, tc.uri)
		}
		// The example of the signing package: the same login whatever the transport.
		if got.Password != "8c276bd9387057ff84db5367d3cdf77fb56799dd139041520e539e24d12e6b73;hmacsha256" {
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
	s, keys := configured(t, "aB3dE", []secrets.DevEntry{{Platform: "tencent", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	for _, tc := range []struct {
		name   string
		req    *signerv1.SignTencentMqttConnectRequest
		fields []string
	}{
		{"empty", &signerv1.SignTencentMqttConnectRequest{}, []string{"deviceName", "productId"}},
		{"lower-case productId", &signerv1.SignTencentMqttConnectRequest{ProductId: "eqpokd5111", DeviceName: testName}, []string{"productId"}},
		{"deviceName separator", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: "dev;1"}, []string{"deviceName"}},
		{"deviceName path", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: "../x"}, []string{"deviceName"}},
		{"signMethod", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, SignMethod: "hmacsha256"}, []string{"signMethod"}},
		{"signMethod MD5", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, SignMethod: "HMAC_MD5"}, []string{"signMethod"}},
		{"ttl below", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, TtlSeconds: 59}, []string{"ttlSeconds"}},
		{"ttl above", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, TtlSeconds: 2592001}, []string{"ttlSeconds"}},
		{"ttl negative", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, TtlSeconds: -1}, []string{"ttlSeconds"}},
		{"websocket", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, Transport: signerv1.Transport_TRANSPORT_WEBSOCKET_TLS}, []string{"transport"}},
		{"unknown transport", &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, Transport: 99}, []string{"transport"}},
		{"every field at once", &signerv1.SignTencentMqttConnectRequest{ProductId: "x", DeviceName: "é", SignMethod: "x", TtlSeconds: 1, Transport: 3},
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
	s, keys := configured(t, "aB3dE", []secrets.DevEntry{{Platform: "tencent", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	req := &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName}
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
	// The store holds an Alibaba device and a OneNET device of the very
	// names asked for: other platforms' devices, whose keys are never used.
	s, keys := configured(t, "aB3dE", []secrets.DevEntry{
		{ProductKey: testPID, DeviceName: testName, DeviceSecret: "alibaba-secret"},
		{Platform: "onenet", ProductKey: testPID, DeviceName: testName, Key: testPsk},
		{Platform: "tencent", ProductKey: testPID, DeviceName: "dev-002", Key: testPsk},
	})
	for _, req := range []*signerv1.SignTencentMqttConnectRequest{
		{ProductId: testPID, DeviceName: testName},
		{ProductId: "EQPOKD5112", DeviceName: "dev-002"},
	} {
		_, err := s.Sign(context.Background(), req, time.Unix(1700000000, 0), keys)
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Sign(%v) error %v, want ErrNotFound", req, err)
		}
		noKey(t, err)
	}
	failing := &countingKeys{Keys: failingKeys{}}
	if _, err := s.Sign(context.Background(), &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName},
		time.Unix(1700000000, 0), failing); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("Sign with an unavailable store: %v, want ErrUnavailable", err)
	}
}

type failingKeys struct{ platform.Keys }

func (failingKeys) MAC(context.Context, device.ID, secrets.Algorithm, []byte) ([]byte, error) {
	return nil, secrets.ErrUnavailable
}

func TestSignMethodsUseTheirHMAC(t *testing.T) {
	s, keys := configured(t, "aB3dE", []secrets.DevEntry{{Platform: "tencent", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
	key, _ := base64.StdEncoding.DecodeString(testPsk)
	for _, m := range []string{"", "HMAC_SHA256", "HMAC_SHA1"} {
		got, err := s.Sign(context.Background(), &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName, SignMethod: m},
			time.Unix(1700000000, 0), keys)
		method, _ := sign.ParseMethod(m)
		want, werr := sign.SignConnect(sign.Request{ProductID: testPID, DeviceName: testName, ConnID: "aB3dE", Method: method,
			IssuedAt: time.Unix(1700000000, 0)}, sign.KeyMAC(key))
		if err != nil || werr != nil || got.Password != want.Password {
			t.Errorf("method %q: password %q, %v; want %q, %v", m, got.Password, err, want.Password, werr)
		}
	}
}

func TestDeviceWrongRequest(t *testing.T) {
	s, keys := configured(t, "aB3dE", nil)
	if _, err := s.Device(&signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName}); err == nil {
		t.Error("Device accepted a OneNET request")
	}
	if _, err := s.Sign(context.Background(), &signerv1.SignOnenetMqttConnectRequest{}, time.Unix(1700000000, 0), keys); err == nil {
		t.Error("Sign accepted a OneNET request")
	}
	if _, err := s.Device((*signerv1.SignTencentMqttConnectRequest)(nil)); err == nil {
		t.Error("Device accepted a nil request")
	}
}

func TestRandomConnID(t *testing.T) {
	seen := map[byte]bool{}
	ids := map[string]bool{}
	for range 2000 {
		id, err := randomConnID()
		if err != nil || sign.ValidateConnID(id) != nil {
			t.Fatalf("randomConnID() = %q, %v", id, err)
		}
		ids[id] = true
		for i := 0; i < len(id); i++ {
			seen[id[i]] = true
		}
	}
	// 10000 draws from 62 characters miss one with probability ~1e-66.
	if len(seen) != len(connIDChars) {
		t.Errorf("drew %d of the %d characters", len(seen), len(connIDChars))
	}
	if len(ids) < 1990 {
		t.Errorf("%d distinct IDs in 2000 draws", len(ids))
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
		{name: "every setting", section: `{"vault":{"mount":"kv","path":"t/{productKey}-{deviceName}","field":"psk"}}`,
			want: secrets.Location{Mount: "kv", PathTemplate: "t/{productKey}-{deviceName}", Field: "psk", Encoding: secrets.EncodingBase64}},
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
			if err != nil || c.Locations["tencent"] != tc.want || len(c.Locations) != 1 || len(c.Signers) != 1 {
				t.Errorf("Configure(%s) = %+v, %v; want location %+v and one signer", tc.section, c, err, tc.want)
			}
		})
	}
	if (Module{}).Name() != "tencent" {
		t.Errorf("Name() = %q", Module{}.Name())
	}
}
