package tencent

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
// the signing package's example, is authorized on the platform-qualified
// device before any key is used, and its errors reach callers as the
// README's table says.
func TestThroughService(t *testing.T) {
	key := []byte("0123456789abcdef")
	mem := secrets.NewMemory()
	id := device.ID{Platform: "tencent", ProductKey: testPID, DeviceName: testName}
	denied := device.ID{Platform: "tencent", ProductKey: testPID, DeviceName: "denied"}
	mem.Put(id, key)
	mem.Put(denied, key)
	mem.Put(device.ID{ProductKey: testPID, DeviceName: "alibaba-dev"}, key)

	newServer := func(now time.Time) (*service.Server, *recordingAuthz, *serviceKeys) {
		c, err := Module{}.Configure(nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Signers[0].(*signer).connID = func() (string, error) { return "aB3dE", nil }
		authz := &recordingAuthz{deny: map[device.ID]bool{denied: true}}
		keys := &serviceKeys{Router: secrets.NewRouter(secrets.NewLocalMACer(mem), nil, nil)}
		return service.New(mem, service.WithAuthorizer(authz), service.WithKeys(keys), service.WithSigners(c.Signers...),
			service.WithClock(func() time.Time { return now })), authz, keys
	}
	ctx := context.Background()
	srv, authz, keys := newServer(time.Unix(1700000000, 0))

	resp, err := srv.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Password != "8c276bd9387057ff84db5367d3cdf77fb56799dd139041520e539e24d12e6b73;hmacsha256" ||
		resp.Username != "EQPOKD5111dev-001;12010126;aB3dE;1700003600" || resp.ClientId != "EQPOKD5111dev-001" ||
		resp.IssuedAt.AsTime().Unix() != 1700000000 || resp.ExpiresAt.AsTime().Unix() != 1700003600 ||
		resp.Port != 1883 || resp.Transport != signerv1.Transport_TRANSPORT_TCP || resp.KeepAliveSeconds != 240 || !resp.CleanSession {
		t.Errorf("answer %v", resp)
	}
	if !slices.Equal(authz.asked, []device.ID{id}) {
		t.Errorf("authorized %v, want %v", authz.asked, id)
	}

	// Refused: no key is used.
	keys.macs.Store(0)
	_, err = srv.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: "denied"})
	if status.Code(err) != codes.PermissionDenied || keys.macs.Load() != 0 {
		t.Errorf("denied device: %v, %d MACs; want PERMISSION_DENIED and none", err, keys.macs.Load())
	}

	_, err = srv.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: "x", DeviceName: "a b", SignMethod: "MD5", TtlSeconds: 1,
		Transport: signerv1.Transport_TRANSPORT_WEBSOCKET_TLS})
	if want := []string{"product_id", "device_name", "sign_method", "ttl_seconds", "transport"}; status.Code(err) != codes.InvalidArgument || !slices.Equal(violations(err), want) {
		t.Errorf("invalid request: %v %v; want INVALID_ARGUMENT naming %v", err, violations(err), want)
	}

	// An Alibaba device of the same names is not this platform's.
	for _, name := range []string{"no-such-device", "alibaba-dev"} {
		_, err = srv.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: name})
		if status.Code(err) != codes.NotFound || strings.Contains(err.Error(), string(key)) {
			t.Errorf("device %s: %v, want NOT_FOUND", name, err)
		}
	}

	// A clock the login cannot carry is the server's fault.
	srv, _, _ = newServer(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	_, err = srv.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName})
	if status.Code(err) != codes.Internal {
		t.Errorf("year 10000: %v, want INTERNAL", err)
	}
}
