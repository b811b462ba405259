package azure_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/platform/azure"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// vectors is signing/azure's testdata/vectors.json, answers computed by
// Microsoft's Azure IoT SDK for Node.js (tools/oracle/azure).
type vectors struct {
	Hub []struct {
		Name  string `json:"name"`
		Input struct {
			Hub, Host, DeviceID, ModuleID string
			IssuedAt, TTLSeconds          int64
			Key, GroupKey                 string
		} `json:"input"`
		Expect expect `json:"expect"`
	} `json:"hub"`
	DPS []struct {
		Name  string `json:"name"`
		Input struct {
			IDScope, RegistrationID, GroupKey string
			IssuedAt, TTLSeconds              int64
		} `json:"input"`
		Expect expect `json:"expect"`
	} `json:"dps"`
}

type expect struct {
	ClientID, Username, Password string
	ExpiresAt                    int64
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	data, err := os.ReadFile("../../signing/azure/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Hub) == 0 || len(v.DPS) == 0 {
		t.Fatalf("vectors: %d hub, %d dps; want some of each", len(v.Hub), len(v.DPS))
	}
	return v
}

func decodeKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) == 0 {
		t.Fatalf("vector key: %v", err)
	}
	return k
}

// countingKeys is the service's key home (a Router over an in-memory
// store), counting the MACs asked for.
type countingKeys struct {
	*secrets.Router
	macs atomic.Int32
}

func (k *countingKeys) MAC(ctx context.Context, id device.ID, alg secrets.Algorithm, content []byte) ([]byte, error) {
	k.macs.Add(1)
	return k.Router.MAC(ctx, id, alg, content)
}

func newKeys(mem *secrets.Memory) *countingKeys {
	return &countingKeys{Router: secrets.NewRouter(secrets.NewLocalMACer(mem), nil, nil)}
}

var _ platform.Keys = (*countingKeys)(nil)

// configure configures the module with a YAML section ("" for none).
func configure(t *testing.T, section string) platform.Config {
	t.Helper()
	var js []byte
	if section != "" {
		var err error
		if js, err = yaml.YAMLToJSON([]byte(section)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := azure.Module{}.Configure(js)
	if err != nil {
		t.Fatalf("Configure:\n%v", err)
	}
	return c
}

func signerOf(t *testing.T, c platform.Config, rpc string) platform.Signer {
	t.Helper()
	for _, s := range c.Signers {
		if s.RPC() == rpc {
			return s
		}
	}
	t.Fatalf("no signer for %s among %d", rpc, len(c.Signers))
	return nil
}

func checkLogin(t *testing.T, got platform.Login, want expect) {
	t.Helper()
	if got.ClientID != want.ClientID || got.Username != want.Username || got.Password != want.Password || !got.ExpiresAt.Equal(time.Unix(want.ExpiresAt, 0)) {
		t.Errorf("login\n got %q %q %q %v\nwant %q %q %q %v", got.ClientID, got.Username, got.Password, got.ExpiresAt.Unix(),
			want.ClientID, want.Username, want.Password, want.ExpiresAt)
	}
	if got.KeepAliveSeconds != 180 || got.ProtocolVersion != "3.1.1" {
		t.Errorf("keep-alive %d, protocol %q; want 180, 3.1.1", got.KeepAliveSeconds, got.ProtocolVersion)
	}
}

const (
	groupScope = "0ne00000A0A"
	groupName  = "grp1"
)

// TestHubVectors: the hub RPC answers Microsoft's SDK's logins byte for
// byte, with the device's (or module's) own key from the store, or with
// the key derived from the hub's DPS enrollment group key.
func TestHubVectors(t *testing.T) {
	for _, v := range loadVectors(t).Hub {
		t.Run(v.Name, func(t *testing.T) {
			in := v.Input
			hub := map[string]any{}
			if in.Host != "" {
				hub["host"] = in.Host
			}
			mem := secrets.NewMemory()
			id := device.ID{Platform: "azure", ProductKey: in.Hub, DeviceName: in.DeviceID, Module: in.ModuleID}
			if in.GroupKey != "" {
				hub["dpsGroup"] = map[string]string{"idScope": groupScope, "group": groupName}
				// Only the group's key: a device key lookup would fail.
				mem.Put(device.ID{Platform: "azure-dps-group", ProductKey: groupScope, DeviceName: groupName}, decodeKey(t, in.GroupKey))
			} else {
				mem.Put(id, decodeKey(t, in.Key))
			}
			section, _ := json.Marshal(map[string]any{"hubs": map[string]any{in.Hub: hub}})
			sg := signerOf(t, configure(t, string(section)), "SignAzureMqttConnect")
			keys := newKeys(mem)

			for _, tc := range []struct {
				transport signerv1.Transport
				port      int
				uri       string
				ttl       int64
			}{
				{signerv1.Transport_TRANSPORT_UNSPECIFIED, 8883, "mqtts://%s:8883", in.TTLSeconds},
				{signerv1.Transport_TRANSPORT_TLS, 8883, "mqtts://%s:8883", in.TTLSeconds},
				{signerv1.Transport_TRANSPORT_WEBSOCKET_TLS, 443, "wss://%s:443/$iothub/websocket", in.TTLSeconds},
				{signerv1.Transport_TRANSPORT_TLS, 8883, "mqtts://%s:8883", 0}, // the default TTL
			} {
				if tc.ttl == 0 && in.TTLSeconds != 3600 {
					continue
				}
				req := &signerv1.SignAzureMqttConnectRequest{Hub: in.Hub, DeviceId: in.DeviceID, ModuleId: in.ModuleID, TtlSeconds: int32(tc.ttl), Transport: tc.transport}
				gotID, err := sg.Device(req)
				if err != nil || gotID != id {
					t.Fatalf("Device = %v, %v; want %v", gotID, err, id)
				}
				got, err := sg.Sign(context.Background(), req, time.Unix(in.IssuedAt, 0), keys)
				if err != nil {
					t.Fatalf("%v: %v", tc.transport, err)
				}
				checkLogin(t, got, v.Expect)
				host := in.Host
				if host == "" {
					host = in.Hub + ".azure-devices.net"
				}
				wantTransport := tc.transport
				if wantTransport == signerv1.Transport_TRANSPORT_UNSPECIFIED {
					wantTransport = signerv1.Transport_TRANSPORT_TLS
				}
				if got.Host != host || got.Port != tc.port || got.URI != strings.Replace(tc.uri, "%s", host, 1) || got.Transport != wantTransport {
					t.Errorf("%v: endpoint %s %d %s %v", tc.transport, got.Host, got.Port, got.URI, got.Transport)
				}
				if got.CleanSession {
					t.Error("clean session on the hub; Microsoft's device SDK keeps its session")
				}
			}
		})
	}
}

// TestHubModuleOfDerivedHub: on a hub whose device keys derive from a DPS
// group, a module still signs with its own key (DPS provisions devices,
// not modules).
func TestHubModuleOfDerivedHub(t *testing.T) {
	for _, v := range loadVectors(t).Hub {
		in := v.Input
		if in.ModuleID == "" || in.Host != "" {
			continue
		}
		mem := secrets.NewMemory()
		mem.Put(device.ID{Platform: "azure", ProductKey: in.Hub, DeviceName: in.DeviceID, Module: in.ModuleID}, decodeKey(t, in.Key))
		mem.Put(device.ID{Platform: "azure-dps-group", ProductKey: groupScope, DeviceName: groupName}, []byte("a group key that must not be used"))
		sg := signerOf(t, configure(t, "hubs: {"+in.Hub+": {dpsGroup: {idScope: "+groupScope+", group: "+groupName+"}}}"), "SignAzureMqttConnect")
		req := &signerv1.SignAzureMqttConnectRequest{Hub: in.Hub, DeviceId: in.DeviceID, ModuleId: in.ModuleID, TtlSeconds: int32(in.TTLSeconds)}
		got, err := sg.Sign(context.Background(), req, time.Unix(in.IssuedAt, 0), newKeys(mem))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		checkLogin(t, got, v.Expect)
		return
	}
	t.Fatal("no module vector on a default host")
}

// TestDPSVectors: the DPS RPC answers Microsoft's SDK's registration logins
// byte for byte, deriving the device key from the key of the group the
// settings put the registration in, whichever kind of pattern matched;
// another group's key (listed first) is not used.
func TestDPSVectors(t *testing.T) {
	for i, v := range loadVectors(t).DPS {
		in := v.Input
		patterns := []string{in.RegistrationID, strings.ToUpper(in.RegistrationID[:1]) + "*", "*"}
		for _, pattern := range []string{patterns[i%3], patterns[(i+1)%3]} {
			t.Run(v.Name+"/"+pattern, func(t *testing.T) {
				mem := secrets.NewMemory()
				mem.Put(device.ID{Platform: "azure-dps-group", ProductKey: in.IDScope, DeviceName: "other"}, []byte("another group's key"))
				mem.Put(device.ID{Platform: "azure-dps-group", ProductKey: in.IDScope, DeviceName: "grp"}, decodeKey(t, in.GroupKey))
				section, _ := json.Marshal(map[string]any{"dps": map[string]any{in.IDScope: map[string]any{"groups": []any{
					map[string]any{"name": "other", "registrations": []string{"zz-no-such-device"}},
					map[string]any{"name": "grp", "registrations": []string{pattern}},
				}}}})
				sg := signerOf(t, configure(t, string(section)), "SignAzureDpsMqttConnect")
				req := &signerv1.SignAzureDpsMqttConnectRequest{IdScope: in.IDScope, RegistrationId: in.RegistrationID, TtlSeconds: int32(in.TTLSeconds)}
				wantID := device.ID{Platform: "azure-dps", ProductKey: in.IDScope, DeviceName: in.RegistrationID}
				if id, err := sg.Device(req); err != nil || id != wantID {
					t.Fatalf("Device = %v, %v; want %v", id, err, wantID)
				}
				got, err := sg.Sign(context.Background(), req, time.Unix(in.IssuedAt, 0), newKeys(mem))
				if err != nil {
					t.Fatal(err)
				}
				checkLogin(t, got, v.Expect)
				if got.Host != "global.azure-devices-provisioning.net" || got.Port != 8883 || got.URI != "mqtts://global.azure-devices-provisioning.net:8883" ||
					got.Transport != signerv1.Transport_TRANSPORT_TLS || !got.CleanSession {
					t.Errorf("endpoint %s %d %s %v clean %v", got.Host, got.Port, got.URI, got.Transport, got.CleanSession)
				}
			})
		}
	}
}

// TestDPSGroupMatching: a registration belongs to the first group with a
// matching pattern (exact id or prefix*, case-insensitively); one of no
// group is NOT_FOUND, naming the registration.
func TestDPSGroupMatching(t *testing.T) {
	const section = `
dps:
  0ne00000A0A:
    groups:
      - {name: exact, registrations: [sensor-007, "Thermo:1"]}
      - {name: sensors, registrations: ["sensor-*", "probe.*"]}
      - {name: late, registrations: ["sensor-0*", other]}
  0ne0000BEEF:
    groups:
      - {name: all, registrations: ["*"]}
`
	sg := signerOf(t, configure(t, section), "SignAzureDpsMqttConnect")
	mem := secrets.NewMemory()
	keyOf := map[string][]byte{}
	for _, g := range []struct{ scope, name string }{{"0ne00000A0A", "exact"}, {"0ne00000A0A", "sensors"}, {"0ne00000A0A", "late"}, {"0ne0000BEEF", "all"}} {
		k := []byte("key of group " + g.scope + "/" + g.name)
		mem.Put(device.ID{Platform: "azure-dps-group", ProductKey: g.scope, DeviceName: g.name}, k)
		keyOf[g.scope+"/"+g.name] = k
	}
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		scope, id string
		group     string // "": none
	}{
		{"0ne00000A0A", "sensor-007", "exact"},
		{"0ne00000A0A", "SENSOR-007", "exact"},
		{"0ne00000A0A", "thermo:1", "exact"},
		{"0ne00000A0A", "sensor-0071", "sensors"}, // not exact; the first prefix wins over late's
		{"0ne00000A0A", "sensor-", "sensors"},
		{"0ne00000A0A", "Sensor-x", "sensors"},
		{"0ne00000A0A", "probe.1", "sensors"},
		{"0ne00000A0A", "other", "late"},
		{"0ne00000A0A", "sensor", ""},
		{"0ne00000A0A", "probe-1", ""},
		{"0ne00000A0A", "thermo:12", ""},
		{"0ne0000BEEF", "anything-at-all", "all"},
		{"0ne0000beef", "anything-at-all", ""}, // an unknown scope
		{"0ne00000A0B", "sensor-007", ""},
	} {
		req := &signerv1.SignAzureDpsMqttConnectRequest{IdScope: tc.scope, RegistrationId: tc.id}
		got, err := sg.Sign(context.Background(), req, now, newKeys(mem))
		if tc.group == "" {
			if !errors.Is(err, secrets.ErrNotFound) {
				t.Errorf("%s/%s: error %v, want NOT_FOUND", tc.scope, tc.id, err)
			} else if !strings.Contains(err.Error(), tc.id) || !strings.Contains(err.Error(), tc.scope) {
				t.Errorf("%s/%s: error %q does not name the registration", tc.scope, tc.id, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s/%s: %v", tc.scope, tc.id, err)
			continue
		}
		// Sign with the group the case names, by a store holding only
		// that group's key: the same login means the same group.
		one := secrets.NewMemory()
		one.Put(device.ID{Platform: "azure-dps-group", ProductKey: tc.scope, DeviceName: tc.group}, keyOf[tc.scope+"/"+tc.group])
		only := signerOf(t, configure(t, "dps: {"+tc.scope+": {groups: [{name: "+tc.group+", registrations: ['*']}]}}"), "SignAzureDpsMqttConnect")
		want, err := only.Sign(context.Background(), req, now, newKeys(one))
		if err != nil {
			t.Fatal(err)
		}
		if got.Password != want.Password {
			t.Errorf("%s/%s: not signed with group %s's key", tc.scope, tc.id, tc.group)
		}
	}
}
