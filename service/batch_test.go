package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
)

// batchStore counts lookups per device.
type batchStore struct {
	secrets.Store
	lookups atomic.Int64
	forbid  map[string]bool
	denied  atomic.Int64
}

func (c *batchStore) Lookup(ctx context.Context, id secrets.DeviceID) (secrets.Secret, error) {
	c.lookups.Add(1)
	if c.forbid[id.ProductKey] {
		c.denied.Add(1)
	}
	return c.Store.Lookup(ctx, id)
}

func TestBatchSignMqttConnectMixed(t *testing.T) {
	mem := secrets.NewMemory()
	store := &batchStore{Store: mem, forbid: map[string]bool{"a1Forbidden": true}}
	var want []codes.Code
	var reqs []*signerv1.SignMqttConnectRequest
	for i := 0; i < 1000; i++ {
		dn := fmt.Sprintf("dev-%04d", i)
		switch i % 4 {
		case 0, 1: // good
			mem.Put(secrets.DeviceID{ProductKey: "a1Good", DeviceName: dn}, []byte("secret-"+dn))
			reqs = append(reqs, &signerv1.SignMqttConnectRequest{ProductKey: "a1Good", DeviceName: dn, TimestampMs: proto.Int64(1)})
			want = append(want, codes.OK)
		case 2: // forbidden (exists, but the caller may not have it)
			mem.Put(secrets.DeviceID{ProductKey: "a1Forbidden", DeviceName: dn}, []byte("secret-"+dn))
			reqs = append(reqs, &signerv1.SignMqttConnectRequest{ProductKey: "a1Forbidden", DeviceName: dn})
			want = append(want, codes.PermissionDenied)
		case 3:
			if i%8 == 3 { // bad
				reqs = append(reqs, &signerv1.SignMqttConnectRequest{ProductKey: "a1Good", DeviceName: "x|" + dn})
				want = append(want, codes.InvalidArgument)
			} else { // unknown
				reqs = append(reqs, &signerv1.SignMqttConnectRequest{ProductKey: "a1Good", DeviceName: "nobody-" + dn})
				want = append(want, codes.NotFound)
			}
		}
	}
	authz := fakeAuthz{device: func(_ context.Context, rpc string, dev auth.Device) error {
		if rpc != "BatchSignMqttConnect" {
			return fmt.Errorf("rpc %q", rpc)
		}
		if dev.ProductKey == "a1Forbidden" {
			return errors.New("denied")
		}
		return nil
	}}
	svc := service.New(store, service.WithAuthorizer(authz))
	resp, err := svc.BatchSignMqttConnect(context.Background(), &signerv1.BatchSignMqttConnectRequest{Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(resp.GetResults()), len(reqs))
	}
	single := service.New(mem, service.WithAuthorizer(auth.AllowAll()))
	for i, r := range resp.GetResults() {
		got := codes.Code(r.GetError().GetCode())
		if got != want[i] {
			t.Errorf("item %d (%s/%s): code %v, want %v", i, reqs[i].GetProductKey(), reqs[i].GetDeviceName(), got, want[i])
			continue
		}
		if want[i] != codes.OK {
			if r.GetResponse() != nil {
				t.Errorf("item %d failed but carries a response", i)
			}
			continue
		}
		// Each good item equals what SignMqttConnect answers alone.
		alone, err := single.SignMqttConnect(context.Background(), reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		if r.GetResponse().GetPassword() != alone.GetPassword() || r.GetResponse().GetClientId() != alone.GetClientId() {
			t.Errorf("item %d differs from the single call", i)
		}
	}
	if store.denied.Load() != 0 {
		t.Errorf("the store was asked %d times for forbidden devices, want 0", store.denied.Load())
	}
}

func TestBatchSignMqttConnectSize(t *testing.T) {
	svc := service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll()))
	for _, n := range []int{0, 1001} {
		reqs := make([]*signerv1.SignMqttConnectRequest, n)
		for i := range reqs {
			reqs[i] = &signerv1.SignMqttConnectRequest{ProductKey: "a1Good", DeviceName: "dev-0001"}
		}
		_, err := svc.BatchSignMqttConnect(context.Background(), &signerv1.BatchSignMqttConnectRequest{Requests: reqs})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("batch of %d = %v, want INVALID_ARGUMENT", n, err)
		}
	}
}

// TestNewWithoutAuthorizerPanics: authorization is not optional. A service
// wired without an Authorizer must not start, rather than deny batch items
// but allow sub-devices (or anything else) by default.
func TestNewWithoutAuthorizerPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("service.New without WithAuthorizer did not panic")
		}
	}()
	service.New(secrets.NewMemory())
}

// TestBatchAndStreamCallGate: a caller refused the batch or stream RPC as a
// whole gets PERMISSION_DENIED for the call, carrying the Authorizer's
// denial, and no item is authorized or looked up.
func TestBatchAndStreamCallGate(t *testing.T) {
	mem := secrets.NewMemory()
	mem.Put(secrets.DeviceID{ProductKey: "a1Good", DeviceName: "dev-0001"}, []byte("s"))
	denial := &auth.Denial{Reason: "no"}
	var asked []string
	svc := service.New(mem, service.WithAuthorizer(fakeAuthz{
		call: func(_ context.Context, rpc string) error { asked = append(asked, rpc); return denial },
		device: func(context.Context, string, auth.Device) error {
			t.Error("an item of a refused call was authorized")
			return nil
		},
	}))
	items := []*signerv1.SignMqttConnectRequest{{ProductKey: "a1Good", DeviceName: "dev-0001"}}
	_, err := svc.BatchSignMqttConnect(context.Background(), &signerv1.BatchSignMqttConnectRequest{Requests: items})
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "permission denied" {
		t.Errorf("refused batch: %v, want PERMISSION_DENIED \"permission denied\"", err)
	}
	if ds := auth.Denials(err); len(ds) != 1 || ds[0] != denial {
		t.Errorf("refused batch carries denials %v, want the Authorizer's", ds)
	}
	if !slices.Equal(asked, []string{"BatchSignMqttConnect"}) {
		t.Errorf("call gate asked for %v", asked)
	}
}
