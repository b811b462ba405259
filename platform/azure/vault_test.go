package azure_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/platform"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// vaultOnce is a real Vault for the tests that read keys from it, started
// by the first of them, so that the other tests run without one.
var vaultOnce vaulttest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	vaultOnce.Close(code != 0)
	os.Exit(code)
}

// TestVaultKeys: with the default locations and signerd's shipped Vault
// policy (deploy/vault/policy.hcl, as vaulttest loads it), the keys an
// operator writes where the README says (the portal's base64 primaryKey)
// sign Microsoft's SDK's answers: a device's, a module's, and a DPS group's
// for the DPS route and for a hub provisioned through the group; a value
// that is not base64 is unusable, naming the path and not the value.
func TestVaultKeys(t *testing.T) {
	srv := vaultOnce.Get(t)
	ctx := context.Background()
	v := loadVectors(t)
	dev, mod, dps := v.Hub[0], v.Hub[9], v.DPS[0]
	if dev.Input.ModuleID != "" || mod.Input.ModuleID == "" || mod.Input.DeviceID != "dev-001" || dev.Input.Hub != "myhub" || mod.Input.Hub != "myhub" {
		t.Fatal("the vectors changed order: pick a device and a module vector of hub myhub")
	}
	derived := v.Hub[len(v.Hub)-1]
	if derived.Input.GroupKey != dps.Input.GroupKey || derived.Input.DeviceID != dps.Input.RegistrationID {
		t.Fatal("the vectors changed order: pick a group-derived hub vector of the DPS vector's group")
	}
	const badPath = "azure/myhub/devices/not-base64"
	kv := map[string]string{
		"azure/myhub/devices/dev-001":                     dev.Input.Key,
		"azure/myhub/devices/dev-001/modules/mod1":        mod.Input.Key,
		"azure-dps/" + dps.Input.IDScope + "/groups/grp1": dps.Input.GroupKey,
		badPath: "not base64, and a secret all the same",
	}
	for p, key := range kv {
		if _, err := srv.Client.KVv2("iot").Put(ctx, p, map[string]any{"primaryKey": key}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Client.KVv2("iot").DeleteMetadata(context.Background(), p) })
	}

	// One store, two servers' settings: myhub with keys of its own, and
	// myhub provisioned through the group (the derived vector's host).
	plain := configure(t, "dps: {"+dps.Input.IDScope+": {groups: [{name: grp1, registrations: ['*']}]}}")
	grouped := configure(t, "hubs: {myhub: {dpsGroup: {idScope: "+dps.Input.IDScope+", group: grp1}}}")
	tok, err := srv.Token(ctx, time.Hour, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", tok)
	store, err := secrets.NewVault(ctx, secrets.VaultConfig{Address: srv.Addr, Locations: plain.Locations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	keys := secrets.NewRouter(secrets.NewLocalMACer(store), nil, nil)

	type hubReq = signerv1.SignAzureMqttConnectRequest
	for _, tc := range []struct {
		name   string
		sg     platform.Signer
		req    proto.Message
		issued int64
		want   expect
	}{
		{"device", signerOf(t, plain, "SignAzureMqttConnect"), &hubReq{Hub: "myhub", DeviceId: "dev-001", TtlSeconds: int32(dev.Input.TTLSeconds)}, dev.Input.IssuedAt, dev.Expect},
		{"module", signerOf(t, plain, "SignAzureMqttConnect"), &hubReq{Hub: "myhub", DeviceId: "dev-001", ModuleId: "mod1", TtlSeconds: int32(mod.Input.TTLSeconds)}, mod.Input.IssuedAt, mod.Expect},
		{"DPS", signerOf(t, plain, "SignAzureDpsMqttConnect"), &signerv1.SignAzureDpsMqttConnectRequest{IdScope: dps.Input.IDScope, RegistrationId: dps.Input.RegistrationID, TtlSeconds: int32(dps.Input.TTLSeconds)}, dps.Input.IssuedAt, dps.Expect},
		{"hub device of the group", signerOf(t, grouped, "SignAzureMqttConnect"), &hubReq{Hub: "myhub", DeviceId: derived.Input.DeviceID, TtlSeconds: int32(derived.Input.TTLSeconds)}, derived.Input.IssuedAt, derived.Expect},
	} {
		got, err := tc.sg.Sign(ctx, tc.req, time.Unix(tc.issued, 0), keys)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkLogin(t, got, tc.want)
	}

	_, err = signerOf(t, plain, "SignAzureMqttConnect").Sign(ctx, &hubReq{Hub: "myhub", DeviceId: "not-base64"}, time.Unix(1700000000, 0), keys)
	if !errors.Is(err, secrets.ErrUnusable) || !strings.Contains(err.Error(), badPath) || strings.Contains(err.Error(), "a secret all the same") {
		t.Errorf("a key that is not base64: %v; want ErrUnusable naming %s, not the value", err, badPath)
	}
	_, err = signerOf(t, plain, "SignAzureMqttConnect").Sign(ctx, &hubReq{Hub: "otherhub", DeviceId: "dev-001"}, time.Unix(1700000000, 0), keys)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("another hub's device of the same id: %v; want ErrNotFound", err)
	}
}
