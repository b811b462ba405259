package huawei

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	sign "github.com/signerd/signerd/signing/huawei"
	_ "github.com/signerd/signerd/signing/onenet" // registers the other platform of TestSignKeyErrors
)

// vector is one case of the signing package's known answers
// (signing/huawei/testdata/vectors.json, from the Python oracle and the
// documentation's worked examples).
type vector struct {
	Input struct {
		DeviceID       string `json:"deviceId"`
		Secret         string `json:"secret"`
		IssuedAt       int64  `json:"issuedAt"`
		CheckTimestamp bool   `json:"checkTimestamp"`
	} `json:"input"`
	Expect struct {
		ClientID  string `json:"clientId"`
		Username  string `json:"username"`
		Password  string `json:"password"`
		Timestamp string `json:"timestamp"`
		ExpiresAt int64  `json:"expiresAt"`
	} `json:"expect"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("../../signing/huawei/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 37 {
		t.Fatalf("%d vectors, want the committed 37", len(vs))
	}
	return vs
}

// countingKeys counts the MACs asked for, to show that an invalid request
// never reaches the secret.
type countingKeys struct {
	platform.Keys
	calls int
}

func (k *countingKeys) MAC(ctx context.Context, id device.ID, alg secrets.Algorithm, content []byte) ([]byte, error) {
	k.calls++
	return k.Keys.MAC(ctx, id, alg, content)
}

func (k *countingKeys) MACSecret(ctx context.Context, id device.ID, alg secrets.Algorithm, key []byte) ([]byte, error) {
	k.calls++
	return k.Keys.MACSecret(ctx, id, alg, key)
}

const testHost = "a1b2c3d4e5.st1.iotda-device.cn-north-4.myhuaweicloud.com"

// configured returns the module's signer for testHost with the default
// Vault settings, and keys holding the devices of devFile (a -dev-secrets
// file, secrets written as in Vault), read with the encodings the module's
// locations declare.
func configured(t *testing.T, devFile []secrets.DevEntry) (platform.Signer, *countingKeys) {
	t.Helper()
	c, err := Module{}.Configure([]byte(`{"host":"` + testHost + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Signers) != 1 || c.Signers[0].RPC() != RPC {
		t.Fatalf("Configure signers %v, want one for %s", c.Signers, RPC)
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
	return c.Signers[0], &countingKeys{Keys: secrets.NewRouter(secrets.NewLocalMACer(mem), nil, nil)}
}

func TestSignVectors(t *testing.T) {
	checked := map[bool]int{}
	for i, v := range loadVectors(t) {
		in := v.Input
		checked[in.CheckTimestamp]++
		s, keys := configured(t, []secrets.DevEntry{{Platform: "huawei", DeviceName: in.DeviceID, Key: in.Secret}})
		req := &signerv1.SignHuaweiMqttConnectRequest{DeviceId: in.DeviceID, CheckTimestamp: proto.Bool(in.CheckTimestamp)}
		id, err := s.Device(req)
		if want := (device.ID{Platform: "huawei", DeviceName: in.DeviceID}); err != nil || id != want {
			t.Fatalf("case %d: Device = %v, %v; want %v", i, id, err, want)
		}
		got, err := s.Sign(context.Background(), req, time.Unix(in.IssuedAt, 0), keys)
		want := platform.Login{
			Host: testHost, Port: 8883,
			ClientID: v.Expect.ClientID, Username: v.Expect.Username, Password: v.Expect.Password,
			Transport: signerv1.Transport_TRANSPORT_TLS, URI: "mqtts://" + testHost + ":8883",
			KeepAliveSeconds: 120, CleanSession: true, ProtocolVersion: "3.1.1",
		}
		if v.Expect.ExpiresAt != 0 {
			want.ExpiresAt = time.Unix(v.Expect.ExpiresAt, 0).UTC()
		}
		if err != nil || got != want {
			t.Errorf("case %d: Sign(%v) =\n%+v, %v\nwant\n%+v", i, req, got, err, want)
		}
		if keys.calls != 1 {
			t.Errorf("case %d: %d MACs, want 1", i, keys.calls)
		}
	}
	if checked[true] == 0 || checked[false] == 0 {
		t.Errorf("vectors cover checkTimestamp %v, want both", checked)
	}
}

const (
	testID     = "D39564861q3gDa"
	testSecret = "12345678"
)

// TestSignCheckTimestamp: the proto's optional field left out is the API's
// default, a checked timestamp.
func TestSignCheckTimestamp(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "huawei", DeviceName: testID, Key: testSecret}})
	// The documentation's worked example: secret 12345678 at 2025041401.
	at := time.Date(2025, 4, 14, 1, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		check    *bool
		clientID string
		expires  time.Time
	}{
		{nil, testID + "_0_1_2025041401", time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC)},
		{proto.Bool(true), testID + "_0_1_2025041401", time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC)},
		{proto.Bool(false), testID + "_0_0_2025041401", time.Time{}},
	} {
		got, err := s.Sign(context.Background(), &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID, CheckTimestamp: tc.check}, at, keys)
		if err != nil || got.ClientID != tc.clientID || !got.ExpiresAt.Equal(tc.expires) || got.ExpiresAt.IsZero() != tc.expires.IsZero() ||
			got.Password != "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a" {
			t.Errorf("checkTimestamp %v: %+v, %v; want clientId %s, expiry %v", tc.check, got, err, tc.clientID, tc.expires)
		}
	}
}

func TestSignTransport(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "huawei", DeviceName: testID, Key: testSecret}})
	for _, tc := range []struct {
		in   signerv1.Transport
		want signerv1.Transport
		uri  string
		port int
	}{
		{signerv1.Transport_TRANSPORT_UNSPECIFIED, signerv1.Transport_TRANSPORT_TLS, "mqtts://" + testHost + ":8883", 8883},
		{signerv1.Transport_TRANSPORT_TLS, signerv1.Transport_TRANSPORT_TLS, "mqtts://" + testHost + ":8883", 8883},
		{signerv1.Transport_TRANSPORT_TCP, signerv1.Transport_TRANSPORT_TCP, "tcp://" + testHost + ":1883", 1883},
	} {
		got, err := s.Sign(context.Background(), &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID, Transport: tc.in}, time.Unix(1700000000, 0), keys)
		if err != nil || got.Transport != tc.want || got.URI != tc.uri || got.Port != tc.port || got.Host != testHost {
			t.Errorf("transport %v: %+v, %v; want %v at %s", tc.in, got, err, tc.want, tc.uri)
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
	s, keys := configured(t, []secrets.DevEntry{{Platform: "huawei", DeviceName: testID, Key: testSecret}})
	for _, tc := range []struct {
		name   string
		req    *signerv1.SignHuaweiMqttConnectRequest
		fields []string
	}{
		{"empty", &signerv1.SignHuaweiMqttConnectRequest{}, []string{"deviceId"}},
		{"deviceId 129", &signerv1.SignHuaweiMqttConnectRequest{DeviceId: strings.Repeat("d", 129)}, []string{"deviceId"}},
		{"deviceId dot", &signerv1.SignHuaweiMqttConnectRequest{DeviceId: "dev.1"}, []string{"deviceId"}},
		{"deviceId path", &signerv1.SignHuaweiMqttConnectRequest{DeviceId: "../x"}, []string{"deviceId"}},
		{"deviceId non-ASCII", &signerv1.SignHuaweiMqttConnectRequest{DeviceId: "dév"}, []string{"deviceId"}},
		{"websocket", &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID, Transport: signerv1.Transport_TRANSPORT_WEBSOCKET_TLS}, []string{"transport"}},
		{"unknown transport", &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID, Transport: 99}, []string{"transport"}},
		{"every field at once", &signerv1.SignHuaweiMqttConnectRequest{DeviceId: "a b", Transport: 3}, []string{"deviceId", "transport"}},
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

// noKey fails if err's text holds the test secret.
func noKey(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Errorf("error %q holds the secret", err)
	}
}

// TestSignServerClock: an issue time the login cannot carry is the
// server's fault, never a field the caller could fix.
func TestSignServerClock(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "huawei", DeviceName: testID, Key: testSecret}})
	req := &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID}
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
	// The store holds an Alibaba device and a OneNET device whose names
	// are the device id asked for: other platforms' devices, whose keys
	// are never used.
	s, keys := configured(t, []secrets.DevEntry{
		{ProductKey: "a1PK", DeviceName: testID, DeviceSecret: testSecret},
		{Platform: "onenet", ProductKey: "a1PK", DeviceName: testID, Key: "MTIzNDU2Nzg="},
		{Platform: "huawei", DeviceName: "other-device", Key: testSecret},
	})
	_, err := s.Sign(context.Background(), &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID}, time.Unix(1700000000, 0), keys)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Sign error %v, want ErrNotFound", err)
	}
	noKey(t, err)
	// The key's home failing is passed on as it is, for the service to map.
	failing := &countingKeys{Keys: failingKeys{}}
	if _, err := s.Sign(context.Background(), &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID}, time.Unix(1700000000, 0), failing); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("Sign with an unavailable store: %v, want ErrUnavailable", err)
	}
}

type failingKeys struct{ platform.Keys }

func (failingKeys) MACSecret(context.Context, device.ID, secrets.Algorithm, []byte) ([]byte, error) {
	return nil, secrets.ErrUnavailable
}

func TestDeviceWrongRequest(t *testing.T) {
	s, keys := configured(t, nil)
	if _, err := s.Device(&signerv1.SignOnenetMqttConnectRequest{DeviceName: testID}); err == nil {
		t.Error("Device accepted a OneNET request")
	}
	if _, err := s.Sign(context.Background(), &signerv1.SignOnenetMqttConnectRequest{}, time.Unix(1700000000, 0), keys); err == nil {
		t.Error("Sign accepted a OneNET request")
	}
	if _, err := s.Device((*signerv1.SignHuaweiMqttConnectRequest)(nil)); err == nil {
		t.Error("Device accepted a nil request")
	}
}

func TestConfigure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section string // "" = none
		host    string // "": the platform is off
		want    secrets.Location
		errs    []string // nil: valid
		not     []string // what errs must not say
	}{
		{name: "none", want: DefaultLocation},
		{name: "empty", section: `{}`, want: DefaultLocation},
		{name: "null host", section: `{"host":null}`, want: DefaultLocation},
		{name: "vault without host", section: `{"vault":{"mount":"kv"}}`,
			want: secrets.Location{Mount: "kv", PathTemplate: "huawei/devices/{deviceName}", Field: "secret", Encoding: secrets.EncodingRaw}},
		{name: "host", section: `{"host":"` + testHost + `"}`, host: testHost, want: DefaultLocation},
		{name: "every setting", section: `{"host":"iot.example.com","vault":{"mount":"kv","path":"hw/{deviceName}","field":"s"}}`, host: "iot.example.com",
			want: secrets.Location{Mount: "kv", PathTemplate: "hw/{deviceName}", Field: "s", Encoding: secrets.EncodingRaw}},
		{name: "empty host", section: `{"host":""}`, errs: []string{`host ""`, "DNS name"}},
		{name: "host with port", section: `{"host":"iot.example.com:8883"}`, errs: []string{`host "iot.example.com:8883"`}},
		{name: "host with scheme", section: `{"host":"mqtts://iot.example.com"}`, errs: []string{"host"}},
		{name: "host trailing dot", section: `{"host":"iot.example.com."}`, errs: []string{"host"}},
		{name: "unknown key", section: `{"hostname":"x"}`, errs: []string{`"hostname"`}},
		{name: "wrong case", section: `{"Host":"iot.example.com"}`, errs: []string{`"Host"`}},
		{name: "unknown vault key", section: `{"vault":{"encoding":"base64"}}`, errs: []string{`"vault.encoding"`}},
		{name: "wrong type", section: `{"host":8883}`, errs: []string{"host", "string"}, not: []string{"DNS name"}},
		{name: "wrong vault type", section: `{"vault":{"field":3}}`, errs: []string{"vault.field", "string"}, not: []string{"required"}},
		{name: "every bad setting at once", section: `{"host":"-bad-","vault":{"mount":"","path":"huawei/x","field":""},"port":1}`,
			errs: []string{`"port"`, `host "-bad-"`, "vault: mount", "must contain {deviceName}", "vault: field: required"}},
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
			if err != nil || c.Locations["huawei"] != tc.want || len(c.Locations) != 1 {
				t.Fatalf("Configure(%s) = %+v, %v; want location %+v", tc.section, c, err, tc.want)
			}
			if tc.host == "" {
				if len(c.Signers) != 0 {
					t.Errorf("Configure(%s) without a host: %d signers, want the platform off", tc.section, len(c.Signers))
				}
				return
			}
			if len(c.Signers) != 1 || c.Signers[0].(signer).host != tc.host {
				t.Errorf("Configure(%s) signers %+v, want one for %s", tc.section, c.Signers, tc.host)
			}
		})
	}
	if (Module{}).Name() != "huawei" {
		t.Errorf("Name() = %q", Module{}.Name())
	}
}

// TestLoginHoldsNoSecret: the secret is hashed, never sent, and the hash
// is the one the signing package computes with the secret in hand.
func TestLoginHoldsNoSecret(t *testing.T) {
	s, keys := configured(t, []secrets.DevEntry{{Platform: "huawei", DeviceName: testID, Key: testSecret}})
	got, err := s.Sign(context.Background(), &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID}, time.Unix(1700000000, 0), keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{got.ClientID, got.Username, got.Password, got.URI} {
		if strings.Contains(f, testSecret) {
			t.Errorf("login field %q holds the secret", f)
		}
	}
	want, err := sign.SignConnect(sign.Request{DeviceID: testID, CheckTimestamp: true, IssuedAt: time.Unix(1700000000, 0)}, sign.SecretKeyMAC([]byte(testSecret)))
	if err != nil || got.Password != want.Password || got.ClientID != want.ClientID {
		t.Errorf("login %+v, want %+v (%v)", got, want, err)
	}
}
