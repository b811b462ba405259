package service_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	authz := func(_ context.Context, rpc, pk, _ string) error {
		if rpc != "BatchSignMqttConnect" {
			return fmt.Errorf("rpc %q", rpc)
		}
		if pk == "a1Forbidden" {
			return errors.New("denied")
		}
		return nil
	}
	svc := service.New(store, service.WithAuthorizer(authz))
	resp, err := svc.BatchSignMqttConnect(context.Background(), &signerv1.BatchSignMqttConnectRequest{Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(resp.GetResults()), len(reqs))
	}
	single := service.New(mem)
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
	svc := service.New(secrets.NewMemory())
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

func TestBatchWithoutAuthorizerFailsClosed(t *testing.T) {
	mem := secrets.NewMemory()
	mem.Put(secrets.DeviceID{ProductKey: "a1Good", DeviceName: "dev-0001"}, []byte("s"))
	resp, err := service.New(mem).BatchSignMqttConnect(context.Background(), &signerv1.BatchSignMqttConnectRequest{
		Requests: []*signerv1.SignMqttConnectRequest{{ProductKey: "a1Good", DeviceName: "dev-0001"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := codes.Code(resp.GetResults()[0].GetError().GetCode()); c != codes.PermissionDenied {
		t.Errorf("item without an authorizer: %v, want PERMISSION_DENIED", c)
	}
}
