package azure_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/device"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
)

// recordingAuthz allows every device but those of deny, recording each it
// was asked about.
type recordingAuthz struct {
	asked []device.ID
	deny  map[device.ID]bool
}

func (a *recordingAuthz) AuthorizeCall(context.Context, string) error { return nil }
func (a *recordingAuthz) AuthorizeDevice(_ context.Context, rpc string, dev auth.Device) error {
	a.asked = append(a.asked, dev)
	if a.deny[dev] {
		return &auth.Denial{RPC: rpc, Device: dev, Reason: "test"}
	}
	return nil
}
func (a *recordingAuthz) AuthorizeSubDevice(context.Context, auth.Device, auth.Device) error {
	return nil
}

// TestThroughService: the module's signers behind the real service answer
// the vectors, are authorized on the platform-qualified device before any
// key is used, and their errors reach callers as the README's table says:
// INVALID_ARGUMENT naming every field in proto form, NOT_FOUND, and
// UNIMPLEMENTED for the DPS RPC of a server without dps settings.
func TestThroughService(t *testing.T) {
	v := loadVectors(t)
	dev, dps := v.Hub[0], v.DPS[0]
	mem := secrets.NewMemory()
	devID := device.ID{Platform: "azure", ProductKey: dev.Input.Hub, DeviceName: dev.Input.DeviceID}
	mem.Put(devID, decodeKey(t, dev.Input.Key))
	mem.Put(device.ID{Platform: "azure-dps-group", ProductKey: dps.Input.IDScope, DeviceName: "grp1"}, decodeKey(t, dps.Input.GroupKey))
	deniedID := device.ID{Platform: "azure", ProductKey: dev.Input.Hub, DeviceName: "denied"}
	mem.Put(deniedID, decodeKey(t, dev.Input.Key))

	newServer := func(section string, issued int64) (*service.Server, *recordingAuthz, *countingKeys) {
		c := configure(t, section)
		authz := &recordingAuthz{deny: map[device.ID]bool{deniedID: true}}
		keys := newKeys(mem)
		return service.New(mem, service.WithAuthorizer(authz), service.WithKeys(keys), service.WithSigners(c.Signers...),
			service.WithClock(func() time.Time { return time.Unix(issued, 0) })), authz, keys
	}
	ctx := context.Background()

	srv, authz, _ := newServer("dps: {"+dps.Input.IDScope+": {groups: [{name: grp1, registrations: ['*']}]}}", dev.Input.IssuedAt)
	resp, err := srv.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: dev.Input.Hub, DeviceId: dev.Input.DeviceID})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Password != dev.Expect.Password || resp.ClientId != dev.Expect.ClientID || resp.Username != dev.Expect.Username ||
		resp.ExpiresAt.AsTime().Unix() != dev.Expect.ExpiresAt || resp.IssuedAt.AsTime().Unix() != dev.Input.IssuedAt ||
		resp.Port != 8883 || resp.KeepAliveSeconds != 180 || resp.CleanSession || resp.Transport != signerv1.Transport_TRANSPORT_TLS {
		t.Errorf("answer %v", resp)
	}
	if !slices.Equal(authz.asked, []device.ID{devID}) {
		t.Errorf("authorized %v, want %v", authz.asked, devID)
	}

	srv, authz, _ = newServer("dps: {"+dps.Input.IDScope+": {groups: [{name: grp1, registrations: ['*']}]}}", dps.Input.IssuedAt)
	dresp, err := srv.SignAzureDpsMqttConnect(ctx, &signerv1.SignAzureDpsMqttConnectRequest{IdScope: dps.Input.IDScope, RegistrationId: dps.Input.RegistrationID})
	if err != nil {
		t.Fatal(err)
	}
	if dresp.Password != dps.Expect.Password || !dresp.CleanSession || dresp.Host != "global.azure-devices-provisioning.net" {
		t.Errorf("DPS answer %v", dresp)
	}
	if want := (device.ID{Platform: "azure-dps", ProductKey: dps.Input.IDScope, DeviceName: dps.Input.RegistrationID}); !slices.Equal(authz.asked, []device.ID{want}) {
		t.Errorf("authorized %v, want %v", authz.asked, want)
	}

	// Refused: no key is used, whether the device exists or not.
	srv, _, keys := newServer("", dev.Input.IssuedAt)
	_, err = srv.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: dev.Input.Hub, DeviceId: "denied"})
	if status.Code(err) != codes.PermissionDenied || keys.macs.Load() != 0 {
		t.Errorf("denied device: %v, %d MACs; want PERMISSION_DENIED and none", err, keys.macs.Load())
	}

	_, err = srv.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: "my_hub", DeviceId: "a b", ModuleId: "#", TtlSeconds: 1, Transport: signerv1.Transport_TRANSPORT_TCP})
	st := status.Convert(err)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	if want := []string{"hub", "device_id", "module_id", "ttl_seconds", "transport"}; st.Code() != codes.InvalidArgument || !slices.Equal(fields, want) {
		t.Errorf("invalid request: %v %v; want INVALID_ARGUMENT naming %v", st.Code(), fields, want)
	}

	_, err = srv.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: dev.Input.Hub, DeviceId: "no-such-device"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown device: %v, want NOT_FOUND", err)
	}
	noKeyIn(t, status.Convert(err).Message()) // secretKeys holds both keys of this store

	_, err = srv.SignAzureDpsMqttConnect(ctx, &signerv1.SignAzureDpsMqttConnectRequest{IdScope: dps.Input.IDScope, RegistrationId: dps.Input.RegistrationID})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("DPS without dps settings: %v, want UNIMPLEMENTED", err)
	}
}
