package azure_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// fieldsOf returns the fields of err's *device.FieldError values (err
// joins them), failing if err holds anything else, as the service's
// mapping to INVALID_ARGUMENT requires.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var fields []string
	for _, e := range errs {
		var fe *device.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %v: not a *device.FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	return fields
}

// secretKeys are the keys the error tests' store holds, base64 and raw.
var secretKeys = []string{
	"IX9g2Sc2bSF16HrUHZnaAfyWhAfpOxnkXGwj8YOl5DU=",
	"8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
	"FCtG6vALXLnfZYPCJj6uaAKp8MenpZuerl+qHwueap4=",
}

// noKeyIn fails if msg holds any of secretKeys in either form.
func noKeyIn(t *testing.T, msg string) {
	t.Helper()
	for _, k := range secretKeys {
		raw, _ := base64.StdEncoding.DecodeString(k)
		if strings.Contains(msg, k) || strings.Contains(msg, string(raw)) || strings.Contains(msg, k[:16]) {
			t.Errorf("error %q holds a key", msg)
		}
	}
}

// errorStore holds a device key, a module key and a group key, for a hub
// with settings and a derived hub.
func errorStore(t *testing.T) *secrets.Memory {
	mem := secrets.NewMemory()
	raw := func(i int) []byte { b, _ := base64.StdEncoding.DecodeString(secretKeys[i]); return b }
	mem.Put(device.ID{Platform: "azure", ProductKey: "myhub", DeviceName: "dev-001"}, raw(0))
	mem.Put(device.ID{Platform: "azure-dps-group", ProductKey: groupScope, DeviceName: groupName}, raw(1))
	mem.Put(device.ID{Platform: "azure", ProductKey: "derived", DeviceName: "dev-001", Module: "mod1"}, raw(2))
	return mem
}

const errorSection = `
hubs:
  derived: {dpsGroup: {idScope: 0ne00000A0A, group: grp1}}
dps:
  0ne00000A0A:
    groups: [{name: grp1, registrations: ["dev-*"]}]
`

// TestSignInvalid: every bad field of a request is reported at once, named
// by its JSON name, as *device.FieldError values only; no key is asked for
// and none is in the error.
func TestSignInvalid(t *testing.T) {
	c := configure(t, errorSection)
	hub, dps := signerOf(t, c, "SignAzureMqttConnect"), signerOf(t, c, "SignAzureDpsMqttConnect")
	type hubReq = signerv1.SignAzureMqttConnectRequest
	type dpsReq = signerv1.SignAzureDpsMqttConnectRequest
	for _, tc := range []struct {
		name   string
		req    proto.Message
		fields []string
	}{
		{"empty hub request", &hubReq{}, []string{"hub", "deviceId"}},
		{"bad hub", &hubReq{Hub: "my_hub", DeviceId: "dev-001"}, []string{"hub"}},
		{"hub too short", &hubReq{Hub: "ab", DeviceId: "dev-001"}, []string{"hub"}},
		{"bad device", &hubReq{Hub: "myhub", DeviceId: "dev/001"}, []string{"deviceId"}},
		{"device with +", &hubReq{Hub: "myhub", DeviceId: "dev+1"}, []string{"deviceId"}},
		{"non-ASCII device", &hubReq{Hub: "myhub", DeviceId: "dév"}, []string{"deviceId"}},
		{"bad module", &hubReq{Hub: "myhub", DeviceId: "dev-001", ModuleId: "m#1"}, []string{"moduleId"}},
		{"ttl too short", &hubReq{Hub: "myhub", DeviceId: "dev-001", TtlSeconds: 59}, []string{"ttlSeconds"}},
		{"ttl negative", &hubReq{Hub: "myhub", DeviceId: "dev-001", TtlSeconds: -3600}, []string{"ttlSeconds"}},
		{"ttl too long", &hubReq{Hub: "myhub", DeviceId: "dev-001", TtlSeconds: 2592001}, []string{"ttlSeconds"}},
		{"ttl max int32", &hubReq{Hub: "myhub", DeviceId: "dev-001", TtlSeconds: 1<<31 - 1}, []string{"ttlSeconds"}},
		{"TCP", &hubReq{Hub: "myhub", DeviceId: "dev-001", Transport: signerv1.Transport_TRANSPORT_TCP}, []string{"transport"}},
		{"unknown transport", &hubReq{Hub: "myhub", DeviceId: "dev-001", Transport: 99}, []string{"transport"}},
		{"derived hub, device id no registration id", &hubReq{Hub: "derived", DeviceId: "dev*1"}, []string{"deviceId"}},
		{"derived hub, device id ending in '.'", &hubReq{Hub: "derived", DeviceId: "dev-1."}, []string{"deviceId"}},
		{"everything", &hubReq{Hub: "-", DeviceId: "a b", ModuleId: "/", TtlSeconds: 1, Transport: signerv1.Transport_TRANSPORT_TCP},
			[]string{"hub", "deviceId", "moduleId", "ttlSeconds", "transport"}},
		{"empty DPS request", &dpsReq{}, []string{"idScope", "registrationId"}},
		{"bad scope", &dpsReq{IdScope: "0ne0000A0A", RegistrationId: "dev-1"}, []string{"idScope"}},
		{"bad registration", &dpsReq{IdScope: groupScope, RegistrationId: "dev-1."}, []string{"registrationId"}},
		{"registration with /", &dpsReq{IdScope: groupScope, RegistrationId: "dev/1"}, []string{"registrationId"}},
		{"DPS ttl", &dpsReq{IdScope: groupScope, RegistrationId: "dev-1", TtlSeconds: -1}, []string{"ttlSeconds"}},
		{"DPS everything", &dpsReq{IdScope: "x", RegistrationId: "é", TtlSeconds: 2592001}, []string{"idScope", "registrationId", "ttlSeconds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sg := hub
			if _, ok := tc.req.(*dpsReq); ok {
				sg = dps
			}
			keys := newKeys(errorStore(t))
			if _, err := sg.Device(tc.req); err != nil {
				t.Fatalf("Device: %v (it must not validate)", err)
			}
			_, err := sg.Sign(context.Background(), tc.req, time.Unix(1700000000, 0), keys)
			if err == nil {
				t.Fatal("signed")
			}
			if got := fieldsOf(t, err); !slices.Equal(got, tc.fields) {
				t.Errorf("fields %v, want %v", got, tc.fields)
			}
			if n := keys.macs.Load(); n != 0 {
				t.Errorf("%d MACs asked for an invalid request", n)
			}
			noKeyIn(t, err.Error())
		})
	}
}

// TestSignNotFound: a device, module or group without a key, an unknown ID
// scope and a registration of no group are NOT_FOUND (secrets.ErrNotFound),
// never another device's key; no key is in the error.
func TestSignNotFound(t *testing.T) {
	c := configure(t, errorSection+`
  0ne0000BEEF:
    groups: [{name: nokey, registrations: ["*"]}]
`)
	hub, dps := signerOf(t, c, "SignAzureMqttConnect"), signerOf(t, c, "SignAzureDpsMqttConnect")
	type hubReq = signerv1.SignAzureMqttConnectRequest
	type dpsReq = signerv1.SignAzureDpsMqttConnectRequest
	for _, tc := range []struct {
		name string
		req  proto.Message
	}{
		{"unknown device", &hubReq{Hub: "myhub", DeviceId: "dev-002"}},
		{"same device id, other hub", &hubReq{Hub: "otherhub", DeviceId: "dev-001"}},
		{"module without a key", &hubReq{Hub: "myhub", DeviceId: "dev-001", ModuleId: "mod1"}},
		{"module of a derived hub without its own key", &hubReq{Hub: "derived", DeviceId: "dev-001", ModuleId: "mod2"}},
		{"hub name differs in case", &hubReq{Hub: "MyHub", DeviceId: "dev-001"}},
		{"unknown scope", &dpsReq{IdScope: "0ne00000A0B", RegistrationId: "dev-1"}},
		{"registration of no group", &dpsReq{IdScope: groupScope, RegistrationId: "sensor-1"}},
		{"group without a key", &dpsReq{IdScope: "0ne0000BEEF", RegistrationId: "dev-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sg := hub
			if _, ok := tc.req.(*dpsReq); ok {
				sg = dps
			}
			_, err := sg.Sign(context.Background(), tc.req, time.Unix(1700000000, 0), newKeys(errorStore(t)))
			if !errors.Is(err, secrets.ErrNotFound) {
				t.Fatalf("error %v, want ErrNotFound", err)
			}
			var fe *device.FieldError
			if errors.As(err, &fe) {
				t.Errorf("error %v holds a FieldError: it would be INVALID_ARGUMENT", err)
			}
			noKeyIn(t, err.Error())
		})
	}
	// The derived hub signs its devices without a key of their own, and
	// the plain hub its device with its own.
	for _, req := range []*hubReq{{Hub: "derived", DeviceId: "dev-001"}, {Hub: "derived", DeviceId: "any-device-9"}, {Hub: "myhub", DeviceId: "dev-001"}, {Hub: "derived", DeviceId: "dev-001", ModuleId: "mod1"}} {
		if _, err := hub.Sign(context.Background(), req, time.Unix(1700000000, 0), newKeys(errorStore(t))); err != nil {
			t.Errorf("%v: %v", req, err)
		}
	}
}

// TestSignWrongRequest: a request of another RPC is an error, not a panic.
func TestSignWrongRequest(t *testing.T) {
	c := configure(t, errorSection)
	for _, sg := range c.Signers {
		wrong := proto.Message(&signerv1.SignAzureMqttConnectRequest{Hub: "myhub", DeviceId: "d"})
		if sg.RPC() == "SignAzureMqttConnect" {
			wrong = &signerv1.SignAzureDpsMqttConnectRequest{IdScope: groupScope, RegistrationId: "d"}
		}
		if _, err := sg.Device(wrong); err == nil {
			t.Errorf("%s: Device accepted a %T", sg.RPC(), wrong)
		}
		if _, err := sg.Sign(context.Background(), wrong, time.Now(), newKeys(errorStore(t))); err == nil {
			t.Errorf("%s: Sign accepted a %T", sg.RPC(), wrong)
		}
	}
}
