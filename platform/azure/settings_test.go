package azure_test

import (
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/signerd/signerd/platform/azure"
	"github.com/signerd/signerd/secrets"
)

// TestConfigureDefaults: with no section, or an empty one, the hub RPC is
// served with the default Vault locations and the DPS RPC is not; a dps
// scope turns it on.
func TestConfigureDefaults(t *testing.T) {
	wantLocations := map[string]secrets.Location{
		"azure": {
			Mount: "iot", PathTemplate: "azure/{productKey}/devices/{deviceName}",
			ModulePathTemplate: "azure/{productKey}/devices/{deviceName}/modules/{module}",
			Field:              "primaryKey", Encoding: secrets.EncodingBase64,
		},
		"azure-dps-group": {
			Mount: "iot", PathTemplate: "azure-dps/{productKey}/groups/{deviceName}",
			Field: "primaryKey", Encoding: secrets.EncodingBase64,
		},
	}
	for _, tc := range []struct {
		section string
		rpcs    []string
	}{
		{"", []string{"SignAzureMqttConnect"}},
		{"{}", []string{"SignAzureMqttConnect"}},
		{"hubs: {myhub: {}}", []string{"SignAzureMqttConnect"}},
		{"hubs: {myhub: }", []string{"SignAzureMqttConnect"}},
		{"dps: {0ne00000A0A: {groups: [{name: g, registrations: ['*']}]}}", []string{"SignAzureMqttConnect", "SignAzureDpsMqttConnect"}},
	} {
		c := configure(t, tc.section)
		var got []string
		for _, s := range c.Signers {
			got = append(got, s.RPC())
		}
		if !reflect.DeepEqual(got, tc.rpcs) {
			t.Errorf("%q: RPCs %v, want %v", tc.section, got, tc.rpcs)
		}
		if !reflect.DeepEqual(c.Locations, wantLocations) {
			t.Errorf("%q: locations\n%+v\nwant\n%+v", tc.section, c.Locations, wantLocations)
		}
	}
	if (azure.Module{}).Name() != "azure" {
		t.Error("the module's name is not azure")
	}
}

// TestConfigureVault: Vault settings replace the defaults field by field.
func TestConfigureVault(t *testing.T) {
	c := configure(t, `
vault: {mount: kv, devicePath: "hubs/{productKey}/{deviceName}", modulePath: "hubs/{productKey}/{deviceName}/m/{module}", field: key}
dpsVault: {path: "groups/{productKey}/{deviceName}"}
`)
	want := map[string]secrets.Location{
		"azure":           {Mount: "kv", PathTemplate: "hubs/{productKey}/{deviceName}", ModulePathTemplate: "hubs/{productKey}/{deviceName}/m/{module}", Field: "key", Encoding: secrets.EncodingBase64},
		"azure-dps-group": {Mount: "iot", PathTemplate: "groups/{productKey}/{deviceName}", Field: "primaryKey", Encoding: secrets.EncodingBase64},
	}
	if !reflect.DeepEqual(c.Locations, want) {
		t.Errorf("locations\n%+v\nwant\n%+v", c.Locations, want)
	}
}

// TestConfigureInvalid: every bad setting of a section is reported, each
// naming where it is; unknown keys are refused.
func TestConfigureInvalid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section string
		want    []string // each must be in the error
	}{
		{"unknown top-level key", "hub: {}", []string{`unknown field "hub"`}},
		{"unknown keys everywhere", `
vault: {path: x}
dpsVault: {modulePath: x}
hubs: {myhub: {hostname: x, dpsGroup: {scope: x}}}
dps: {0ne00000A0A: {groups: [{name: g, registrations: ['*'], key: x}], hub: x}}
`, []string{`"vault.path"`, `"dpsVault.modulePath"`, `"hubs.myhub.hostname"`, `"hubs.myhub.dpsGroup.scope"`, `"dps.0ne00000A0A.groups[0].key"`, `"dps.0ne00000A0A.hub"`}},
		{"mis-cased key", "Hubs: {}", []string{`"Hubs"`}},
		{"duplicate key", `{"hubs": {"a": {}}, "hubs": {"b": {}}}`, []string{`"hubs"`}},
		{"wrong type", "hubs: [myhub]", []string{"hubs"}},
		{"bad vault", `
vault: {mount: "a/../b", devicePath: "/azure/{deviceName}", modulePath: "azure/{productKey}/{deviceName}/{moduleId}"}
dpsVault: {path: "azure-dps/{productKey}/{module}"}
`, []string{
			`vault: mount "a/../b"`,
			`vault.devicePath: template "/azure/{deviceName}": must contain {productKey}`,
			`vault.modulePath: template "azure/{productKey}/{deviceName}/{moduleId}": only {productKey}, {deviceName} and {module}`,
			`dpsVault: vault path template "azure-dps/{productKey}/{module}": must contain {deviceName}`,
			`vault: vault path template "/azure/{deviceName}": must be relative to the mount`,
			`dpsVault.path: template "azure-dps/{productKey}/{module}": {module} is only for module paths`,
		}},
		{"group keys where device keys are", `
vault: {devicePath: "azure/{productKey}/{deviceName}"}
dpsVault: {path: "azure/{productKey}/{deviceName}"}
`, []string{`dpsVault.path "azure/{productKey}/{deviceName}": the same path as a device's`}},
		{"same module and device path", `vault: {modulePath: "azure/{productKey}/devices/{deviceName}"}`, []string{"must contain {module}"}},
		{"bad hubs", `
hubs:
  my_hub: {}
  okhub: {host: "okhub.example.net:8883"}
  other: {host: "-x.example.net", dpsGroup: {idScope: 1ne00000A0A, group: "g."}}
  third: {dpsGroup: {idScope: 0ne00000A0A, group: missing}}
dps:
  0ne00000A0A: {groups: [{name: g, registrations: ['*']}]}
`, []string{
			"hubs.my_hub: a hub name must be 3–50 characters",
			"hubs.okhub.host: must be a DNS name",
			"hubs.other.host: must be a DNS name",
			`hubs.other.dpsGroup.idScope: must be "0ne"`,
			"hubs.other.dpsGroup.group: must be 1–128",
			`hubs.third.dpsGroup: group "missing" is not among dps.0ne00000A0A.groups`,
		}},
		{"bad dps", `
dps:
  0NE00000A0A: {groups: [{name: g, registrations: ['*']}]}
  0ne00000A0B: {groups: []}
  0ne00000A0C:
  0ne00000A0D:
    groups:
      - {name: "g.", registrations: []}
      - {name: ok, registrations: ["a*b", "**", "x*", "bad.", "", "a b*", "é*"]}
      - {name: OK, registrations: [fine]}
`, []string{
			`dps.0NE00000A0A: an ID scope must be "0ne"`,
			"dps.0ne00000A0B.groups: at least one enrollment group",
			"dps.0ne00000A0C.groups: at least one enrollment group",
			"dps.0ne00000A0D.groups[0].name: must be 1–128",
			"dps.0ne00000A0D.groups[0].registrations: at least one",
			`dps.0ne00000A0D.groups[1].registrations[0] "a*b": not a registration id`,
			`dps.0ne00000A0D.groups[1].registrations[1] "**": the prefix before '*'`,
			`dps.0ne00000A0D.groups[1].registrations[3] "bad.": not a registration id`,
			`dps.0ne00000A0D.groups[1].registrations[4] "": not a registration id`,
			`dps.0ne00000A0D.groups[1].registrations[5] "a b*": the prefix`,
			`dps.0ne00000A0D.groups[1].registrations[6] "é*": the prefix`,
			`dps.0ne00000A0D.groups[2].name: group "OK" is already groups[1]`,
		}},
		{"prefix too long", "dps: {0ne00000A0A: {groups: [{name: g, registrations: ['" + strings.Repeat("p", 128) + "*']}]}}",
			[]string{"registrations[0] \"" + strings.Repeat("p", 128) + "*\": the prefix before '*' must be at most 127"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := []byte(tc.section)
			if !strings.HasPrefix(tc.section, "{\"") { // JSON as it is: YAML conversion would drop a duplicate key
				var err error
				if js, err = yaml.YAMLToJSON(js); err != nil {
					t.Fatal(err)
				}
			}
			_, err := azure.Module{}.Configure(js)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n < len(tc.want) {
				t.Errorf("%d errors, want at least %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}
