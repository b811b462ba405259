package secrets_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/secrets"
)

// TestVaultLocations reads other platforms' keys from their own locations
// in a real Vault: base64 keys decoded, a module's key at its own path, a
// platform's device never found at another platform's (or Alibaba's) path
// whatever its names, and every unusable key refused naming the Vault path,
// never the value.
func TestVaultLocations(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	key := []byte("a 32-byte device key, as bytes!!")
	keyB64 := base64.StdEncoding.EncodeToString(key)
	const notB64 = "not*base64*at*all-but-secret-0001"
	kv := shared.Client.KVv2("iot")
	fixtures := map[string]map[string]any{
		"plat-b64/hub1/devices/dev1":             {"primaryKey": keyB64},
		"plat-b64/hub1/devices/dev1/modules/m1":  {"primaryKey": base64.StdEncoding.EncodeToString([]byte("module key, 16b"))},
		"plat-b64/hub1/devices/bad-b64":          {"primaryKey": notB64},
		"plat-b64/hub1/devices/unpadded":         {"primaryKey": strings.TrimRight(base64.StdEncoding.EncodeToString([]byte("ab")), "=")},
		"plat-raw/devices/dev1":                  {"secret": "raw secret, as is"},
		"devices/hub1/dev1":                      {"deviceSecret": "alibaba's, same names"},
		"plat-b64/hub1/devices/field-not-string": {"primaryKey": 42},
	}
	for p, data := range fixtures {
		if _, err := kv.Put(ctx, p, data); err != nil {
			t.Fatal(err)
		}
	}
	v := rootVault(t, shared, func(c *secrets.VaultConfig) {
		c.Locations = map[string]secrets.Location{
			"testb64": {Mount: "iot", PathTemplate: "plat-b64/{productKey}/devices/{deviceName}",
				ModulePathTemplate: "plat-b64/{productKey}/devices/{deviceName}/modules/{module}", Field: "primaryKey", Encoding: secrets.EncodingBase64},
			"testraw": {Mount: "iot", PathTemplate: "plat-raw/devices/{deviceName}", Field: "secret", Encoding: secrets.EncodingRaw},
		}
	})
	found := []struct {
		id   secrets.DeviceID
		want string
	}{
		{secrets.DeviceID{Platform: "testb64", ProductKey: "hub1", DeviceName: "dev1"}, string(key)},
		{secrets.DeviceID{Platform: "testb64", ProductKey: "hub1", DeviceName: "dev1", Module: "m1"}, "module key, 16b"},
		{secrets.DeviceID{Platform: "testraw", DeviceName: "dev1"}, "raw secret, as is"},
		{secrets.DeviceID{ProductKey: "hub1", DeviceName: "dev1"}, "alibaba's, same names"},
	}
	for _, f := range found {
		s, err := v.Lookup(ctx, f.id)
		if err != nil {
			t.Fatalf("Lookup(%v): %v", f.id, err)
		}
		if string(s.Bytes()) != f.want {
			t.Errorf("Lookup(%v) returned the wrong key", f.id)
		}
	}
	refused := []struct {
		name     string
		id       secrets.DeviceID
		wantErr  error
		wantText string
	}{
		{"not base64", secrets.DeviceID{Platform: "testb64", ProductKey: "hub1", DeviceName: "bad-b64"}, secrets.ErrUnusable,
			`iot/data/plat-b64/hub1/devices/bad-b64): field "primaryKey": not valid standard base64`},
		{"unpadded base64", secrets.DeviceID{Platform: "testb64", ProductKey: "hub1", DeviceName: "unpadded"}, secrets.ErrUnusable, "not valid standard base64"},
		{"not a string", secrets.DeviceID{Platform: "testb64", ProductKey: "hub1", DeviceName: "field-not-string"}, secrets.ErrUnusable, "want a string"},
		{"another platform's names", secrets.DeviceID{Platform: "testraw", ProductKey: "hub1", DeviceName: "bad-b64"}, secrets.ErrNotFound, "iot/data/plat-raw/devices/bad-b64"},
		{"module absent", secrets.DeviceID{Platform: "testb64", ProductKey: "hub1", DeviceName: "dev1", Module: "m2"}, secrets.ErrNotFound, "modules/m2"},
		{"dot segment", secrets.DeviceID{Platform: "testraw", DeviceName: ".."}, secrets.ErrNotFound, "invalid name"},
		{"slash in module", secrets.DeviceID{Platform: "testb64", ProductKey: "hub1", DeviceName: "dev1", Module: "../x"}, secrets.ErrNotFound, "invalid name"},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			_, err := v.Lookup(ctx, r.id)
			if !errors.Is(err, r.wantErr) {
				t.Fatalf("Lookup(%v) = %v, want %v", r.id, err, r.wantErr)
			}
			if !strings.Contains(err.Error(), r.wantText) {
				t.Errorf("error %q does not contain %q", err, r.wantText)
			}
			for _, secret := range []string{notB64, keyB64, string(key)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a key: %q", err)
				}
			}
		})
	}
	// A platform without a location is a configuration fault, never a
	// lookup at some default path.
	if _, err := v.Lookup(ctx, secrets.DeviceID{Platform: "nowhere", ProductKey: "hub1", DeviceName: "dev1"}); err == nil ||
		errors.Is(err, secrets.ErrNotFound) || !strings.Contains(err.Error(), `no Vault location is configured for platform "nowhere"`) {
		t.Errorf("Lookup of a platform without a location = %v", err)
	}
}

func TestLocationCheck(t *testing.T) {
	good := secrets.Location{Mount: "iot", PathTemplate: "p/{productKey}/{deviceName}", Field: "k", Encoding: secrets.EncodingBase64}
	if err := good.Check(); err != nil {
		t.Fatalf("Check(%+v) = %v", good, err)
	}
	for name, mod := range map[string]func(*secrets.Location){
		"no mount":              func(l *secrets.Location) { l.Mount = "" },
		"no device in path":     func(l *secrets.Location) { l.PathTemplate = "p/{productKey}" },
		"absolute path":         func(l *secrets.Location) { l.PathTemplate = "/p/{deviceName}" },
		"dot-dot":               func(l *secrets.Location) { l.PathTemplate = "p/../{deviceName}" },
		"module without module": func(l *secrets.Location) { l.ModulePathTemplate = "m/{deviceName}" },
		"module same as device": func(l *secrets.Location) {
			l.ModulePathTemplate = l.PathTemplate + "{module}"
			l.PathTemplate = l.ModulePathTemplate
		},
		"no field":     func(l *secrets.Location) { l.Field = "" },
		"bad encoding": func(l *secrets.Location) { l.Encoding = 7 },
	} {
		l := good
		mod(&l)
		if err := l.Check(); err == nil {
			t.Errorf("%s: Check(%+v) = nil", name, l)
		}
	}
}
