package azure_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform/azure"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// checkOutcome is what every answer must be: a login for a device the
// registered platform's rules accept, only *device.FieldError values
// (INVALID_ARGUMENT), or NOT_FOUND; never a key in an error.
func checkOutcome(t *testing.T, id device.ID, err error) {
	t.Helper()
	if err == nil {
		if verr := id.Validate(); verr != nil {
			t.Fatalf("signed for %q, which the registered platform refuses: %v", id, verr)
		}
		return
	}
	noKeyIn(t, err.Error())
	if errors.Is(err, secrets.ErrNotFound) {
		if verr := id.Validate(); verr != nil {
			t.Fatalf("looked up %q, which the registered platform refuses: %v", id, verr)
		}
		return
	}
	fieldsOf(t, err) // fails on anything but FieldErrors
}

// FuzzSign: any request to either RPC answers as checkOutcome says, and
// what the signer accepts the registered platform does too, so that the
// authorization and key lookup never see a name the rules refuse.
func FuzzSign(f *testing.F) {
	f.Add("myhub", "dev-001", "", int32(0), int32(0), "0ne00000A0A", "dev-1")
	f.Add("derived", "dev-001", "mod1", int32(60), int32(3), "0ne00000A0A", "dev.1")
	f.Add("derived", "x*y", "", int32(-1), int32(2), "0NE00000A0A", "dev-1.")
	f.Add("my_hub", "d/e", "m#", int32(2592001), int32(7), "0ne0000", "é")
	f.Fuzz(func(t *testing.T, hub, dev, module string, ttl, transport int32, scope, reg string) {
		c, err := azure.Module{}.Configure([]byte(`{"hubs":{"derived":{"dpsGroup":{"idScope":"0ne00000A0A","group":"grp1"}}},
			"dps":{"0ne00000A0A":{"groups":[{"name":"grp1","registrations":["dev-*"]}]}}}`))
		if err != nil {
			t.Fatal(err)
		}
		keys := newKeys(errorStore(t))
		now := time.Unix(1700000000, 0)
		for _, sg := range c.Signers {
			var req proto.Message = &signerv1.SignAzureDpsMqttConnectRequest{IdScope: scope, RegistrationId: reg, TtlSeconds: ttl}
			if sg.RPC() == "SignAzureMqttConnect" {
				req = &signerv1.SignAzureMqttConnectRequest{Hub: hub, DeviceId: dev, ModuleId: module, TtlSeconds: ttl, Transport: signerv1.Transport(transport)}
			}
			id, err := sg.Device(req)
			if err != nil {
				t.Fatalf("Device: %v", err)
			}
			login, err := sg.Sign(context.Background(), req, now, keys)
			checkOutcome(t, id, err)
			if err == nil && (login.Password == "" || strings.ContainsAny(login.ClientID+login.Username, "#+ \x00")) {
				t.Fatalf("login %q %q: an empty password or an MQTT wildcard, space or NUL", login.ClientID, login.Username)
			}
		}
	})
}

// FuzzConfigure: any section is accepted or refused with an error, never
// a panic, and an accepted one serves the hub RPC.
func FuzzConfigure(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `{"hubs":{"h":null}}`, `{"dps":{"0ne00000A0A":{"groups":[{"name":"g","registrations":["*"]}]}}}`,
		`{"vault":{"devicePath":"{productKey}{deviceName}"},"dpsVault":{"path":"{productKey}/{deviceName}"}}`, `{"hubs":{"abc":{"dpsGroup":{}}}}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, section []byte) {
		c, err := azure.Module{}.Configure(section)
		if err != nil {
			return
		}
		if len(c.Signers) == 0 || c.Signers[0].RPC() != "SignAzureMqttConnect" {
			t.Fatalf("accepted %q without the hub RPC", section)
		}
		for name, loc := range c.Locations {
			if err := loc.Check(); err != nil {
				t.Fatalf("accepted %q with location %s: %v", section, name, err)
			}
		}
	})
}
