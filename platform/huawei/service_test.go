package huawei

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
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

// serviceKeys is the service's key home, counting the MACs asked of it.
type serviceKeys struct {
	*secrets.Router
	macs atomic.Int64
}

func (k *serviceKeys) MAC(ctx context.Context, id device.ID, alg secrets.Algorithm, content []byte) ([]byte, error) {
	k.macs.Add(1)
	return k.Router.MAC(ctx, id, alg, content)
}

func (k *serviceKeys) MACSecret(ctx context.Context, id device.ID, alg secrets.Algorithm, key []byte) ([]byte, error) {
	k.macs.Add(1)
	return k.Router.MACSecret(ctx, id, alg, key)
}

func violations(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	return fields
}

// TestThroughService: the module's signer behind the real service answers
// the documentation's worked example, is authorized on the
// platform-qualified device before any secret is used, its errors reach
// callers as the README's table says, and without a host the RPC is off.
func TestThroughService(t *testing.T) {
	mem := secrets.NewMemory()
	id := device.ID{Platform: "huawei", DeviceName: testID}
	denied := device.ID{Platform: "huawei", DeviceName: "denied"}
	mem.Put(id, []byte(testSecret))
	mem.Put(denied, []byte(testSecret))
	mem.Put(device.ID{ProductKey: "a1PK", DeviceName: "alibaba-dev"}, []byte(testSecret))

	newServer := func(section string, now time.Time) (*service.Server, *recordingAuthz, *serviceKeys) {
		c, err := Module{}.Configure([]byte(section))
		if err != nil {
			t.Fatal(err)
		}
		authz := &recordingAuthz{deny: map[device.ID]bool{denied: true}}
		keys := &serviceKeys{Router: secrets.NewRouter(secrets.NewLocalMACer(mem), nil, nil)}
		return service.New(mem, service.WithAuthorizer(authz), service.WithKeys(keys), service.WithSigners(c.Signers...),
			service.WithClock(func() time.Time { return now })), authz, keys
	}
	ctx := context.Background()
	withHost := `{"host":"` + testHost + `"}`
	srv, authz, keys := newServer(withHost, time.Date(2025, 4, 14, 1, 30, 0, 0, time.UTC))

	resp, err := srv.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Password != "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a" ||
		resp.Username != testID || resp.ClientId != testID+"_0_1_2025041401" || resp.Host != testHost ||
		!resp.ExpiresAt.AsTime().Equal(time.Date(2025, 4, 14, 2, 0, 0, 0, time.UTC)) ||
		resp.Port != 8883 || resp.Transport != signerv1.Transport_TRANSPORT_TLS || resp.KeepAliveSeconds != 120 || !resp.CleanSession {
		t.Errorf("answer %v", resp)
	}
	if !slices.Equal(authz.asked, []device.ID{id}) {
		t.Errorf("authorized %v, want %v", authz.asked, id)
	}
	f := false
	resp, err = srv.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID, CheckTimestamp: &f})
	if err != nil || resp.ExpiresAt != nil || resp.ClientId != testID+"_0_0_2025041401" {
		t.Errorf("unchecked: %v, %v; want no expiresAt", resp, err)
	}

	// Refused: no secret is used.
	keys.macs.Store(0)
	_, err = srv.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: "denied"})
	if status.Code(err) != codes.PermissionDenied || keys.macs.Load() != 0 {
		t.Errorf("denied device: %v, %d MACs; want PERMISSION_DENIED and none", err, keys.macs.Load())
	}

	_, err = srv.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: "a b", Transport: signerv1.Transport_TRANSPORT_WEBSOCKET_TLS})
	if want := []string{"device_id", "transport"}; status.Code(err) != codes.InvalidArgument || !slices.Equal(violations(err), want) {
		t.Errorf("invalid request: %v %v; want INVALID_ARGUMENT naming %v", err, violations(err), want)
	}

	// An Alibaba device of the same name is not this platform's.
	for _, name := range []string{"no-such-device", "alibaba-dev"} {
		_, err = srv.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: name})
		if status.Code(err) != codes.NotFound || strings.Contains(err.Error(), testSecret) {
			t.Errorf("device %s: %v, want NOT_FOUND", name, err)
		}
	}

	// A clock the login cannot carry is the server's fault.
	srv, _, _ = newServer(withHost, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	_, err = srv.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID})
	if status.Code(err) != codes.Internal {
		t.Errorf("year 10000: %v, want INTERNAL", err)
	}

	// Without a host the platform is off.
	srv, authz, _ = newServer(`{}`, time.Unix(1700000000, 0))
	_, err = srv.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID})
	if status.Code(err) != codes.Unimplemented || len(authz.asked) != 0 {
		t.Errorf("without a host: %v (authorized %v), want UNIMPLEMENTED", err, authz.asked)
	}
}
