package secrets_test

// Benchmarks of the secret lookup: the cache-hit path (the warm path of
// every sign), the cache-miss path over an in-memory store (the cache's own
// cost on a miss) and, against the real Vault server of TestMain, a raw KV
// v2 read and a cache miss that reads Vault (signerd's cold path).
//
//	go test -run '^$' -bench . -benchmem ./secrets   (SIGNERD_VAULT_BIN set)

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/signerd/signerd/secrets"
)

const benchDevices = 10_000

// benchCallers is the concurrency of the -parallel variants, as in
// scripts/bench.sh.
const benchCallers = 16

func benchID(i int) secrets.DeviceID {
	return secrets.DeviceID{ProductKey: "a1BenchProd", DeviceName: fmt.Sprintf("dev-%07d", i)}
}

func benchIDs(n int) []secrets.DeviceID {
	ids := make([]secrets.DeviceID, n)
	for i := range ids {
		ids[i] = benchID(i)
	}
	return ids
}

func benchMemory(ids []secrets.DeviceID) *secrets.Memory {
	m := secrets.NewMemory()
	for _, id := range ids {
		m.Put(id, []byte("0123456789abcdef0123456789abcdef"))
	}
	return m
}

// observe stands in for signerd's metrics callback, so the benchmark
// includes the call.
func observe(string) {}

func BenchmarkCacheHit(b *testing.B) {
	ids := benchIDs(benchDevices)
	c, err := secrets.NewCache(benchMemory(ids), secrets.CacheConfig{Observe: observe})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range ids {
		if _, err := c.Lookup(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := c.Lookup(ctx, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(max(1, benchCallers/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Lookup(ctx, ids[rand.IntN(len(ids))]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkCacheMiss is the cache's own cost on a miss (singleflight,
// insertion), over a store that answers at once: every entry has expired.
func BenchmarkCacheMiss(b *testing.B) {
	ids := benchIDs(benchDevices)
	c, err := secrets.NewCache(benchMemory(ids), secrets.CacheConfig{TTL: time.Nanosecond, Observe: observe})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Lookup(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVault compares, against the real Vault server, a raw KV v2 read
// through secrets.Vault with a cache miss that makes that read: the cache
// must add next to nothing to the cold path. With the -parallel variants
// at 16 callers the Vault client's connection pool takes part too.
func BenchmarkVault(b *testing.B) {
	shared := sharedVault(b)
	const devices = 200
	ctx := context.Background()
	ids := benchIDs(devices)
	for _, id := range ids {
		if err := shared.PutDevice(ctx, id.ProductKey, id.DeviceName, "0123456789abcdef0123456789abcdef"); err != nil {
			b.Fatal(err)
		}
	}
	tokenFile := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(shared.RootToken), 0o600); err != nil {
		b.Fatal(err)
	}
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{Address: shared.Addr, TokenFile: tokenFile})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	cold, err := secrets.NewCache(v, secrets.CacheConfig{TTL: time.Nanosecond, Observe: observe})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store secrets.Store
	}{
		{"kv-read", v},
		{"cache-miss", cold},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := tc.store.Lookup(ctx, ids[i%devices]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, benchCallers/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tc.store.Lookup(ctx, ids[rand.IntN(devices)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
