package service_test

// Benchmarks of the service alone (validation, endpoint, cache-hit lookup,
// signing, the answer), without transport or interceptors: the part of a
// call that is signerd's own work.
//
//	go test -run '^$' -bench . -benchmem ./service

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
)

const benchDevices = 1000

func benchService(b *testing.B) (*service.Server, []*signerv1.SignMqttConnectRequest) {
	b.Helper()
	mem := secrets.NewMemory()
	reqs := make([]*signerv1.SignMqttConnectRequest, benchDevices)
	for i := range reqs {
		dn := fmt.Sprintf("dev-%07d", i)
		mem.Put(secrets.DeviceID{ProductKey: "a1BenchProd", DeviceName: dn}, []byte("0123456789abcdef0123456789abcdef"))
		reqs[i] = &signerv1.SignMqttConnectRequest{
			ProductKey: "a1BenchProd", DeviceName: dn,
			SignMethod: signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256, Transport: signerv1.Transport_TRANSPORT_TLS,
		}
	}
	cache, err := secrets.NewCache(mem, secrets.CacheConfig{})
	if err != nil {
		b.Fatal(err)
	}
	svc := service.New(cache, service.WithAuthorizer(auth.AllowAll())) // no policy under test here
	for _, r := range reqs {                                           // warm the cache
		if _, err := svc.SignMqttConnect(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	return svc, reqs
}

func BenchmarkSignMqttConnect(b *testing.B) {
	svc, reqs := benchService(b)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := svc.SignMqttConnect(ctx, reqs[i%len(reqs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.SignMqttConnect(ctx, reqs[rand.IntN(len(reqs))]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkBatchSignMqttConnect is one batch of 100 warm devices; ns/op is
// per batch.
func BenchmarkBatchSignMqttConnect(b *testing.B) {
	svc, reqs := benchService(b)
	ctx := context.Background()
	batch := &signerv1.BatchSignMqttConnectRequest{Requests: reqs[:100]}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := svc.BatchSignMqttConnect(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if e := resp.GetResults()[0].GetError(); e != nil {
			b.Fatal(e)
		}
	}
}
