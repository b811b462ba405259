package secrets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a Store for the cache's unit tests: it counts reads and can be
// told to fail or to block. (The Vault backend itself is tested against a
// real Vault server in vault_test.go.)
type backend struct {
	mu      sync.Mutex
	secrets map[DeviceID]string
	err     error
	block   chan struct{}
	reads   atomic.Int64
}

func (b *backend) Lookup(ctx context.Context, id DeviceID) (Secret, error) {
	b.reads.Add(1)
	b.mu.Lock()
	block, err, v, ok := b.block, b.err, "", false
	v, ok = b.secrets[id]
	b.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return Secret{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	if err != nil {
		return Secret{}, err
	}
	if !ok {
		return Secret{}, ErrNotFound
	}
	return NewSecret([]byte(v)), nil
}

func (b *backend) set(id DeviceID, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.secrets[id] = v
}

func (b *backend) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var dev1 = DeviceID{ProductKey: "a1FakePK01", DeviceName: "dev-001"}

func newCacheT(t *testing.T, cfg CacheConfig) (*Cache, *backend, *fakeClock, map[string]int) {
	t.Helper()
	b := &backend{secrets: map[DeviceID]string{dev1: "s1"}}
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	var mu sync.Mutex
	outcomes := map[string]int{}
	cfg.Now = clk.Now
	cfg.Observe = func(o string) { mu.Lock(); outcomes[o]++; mu.Unlock() }
	c, err := NewCache(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, b, clk, outcomes
}

func mustLookup(t *testing.T, s Store, id DeviceID, want string) {
	t.Helper()
	got, err := s.Lookup(context.Background(), id)
	if err != nil {
		t.Fatalf("Lookup(%v): %v", id, err)
	}
	if string(got.Bytes()) != want {
		t.Fatalf("Lookup(%v) = %q, want %q", id, got.Bytes(), want)
	}
}

func TestCacheHitAndRotationAfterTTL(t *testing.T) {
	c, b, clk, outcomes := newCacheT(t, CacheConfig{TTL: time.Minute})
	mustLookup(t, c, dev1, "s1")
	mustLookup(t, c, dev1, "s1")
	if got := b.reads.Load(); got != 1 {
		t.Fatalf("backend reads = %d after a miss and a hit, want 1", got)
	}
	b.set(dev1, "s2") // rotated in the backend
	clk.Advance(59 * time.Second)
	mustLookup(t, c, dev1, "s1")
	clk.Advance(2 * time.Second)
	mustLookup(t, c, dev1, "s2")
	if outcomes["hit"] != 2 || outcomes["miss"] != 2 {
		t.Errorf("outcomes = %v, want 2 hits and 2 misses", outcomes)
	}
}

func TestCacheNegative(t *testing.T) {
	c, b, clk, _ := newCacheT(t, CacheConfig{NegativeTTL: 10 * time.Second})
	unknown := DeviceID{ProductKey: "a1FakePK01", DeviceName: "nobody"}
	for i := 0; i < 5; i++ {
		if _, err := c.Lookup(context.Background(), unknown); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Lookup(unknown) = %v, want ErrNotFound", err)
		}
	}
	if got := b.reads.Load(); got != 1 {
		t.Errorf("backend reads for 5 unknown lookups = %d, want 1 (negative caching)", got)
	}
	b.set(unknown, "new") // provisioned meanwhile
	clk.Advance(11 * time.Second)
	mustLookup(t, c, unknown, "new")
}

func TestCacheSingleflight(t *testing.T) {
	c, b, _, _ := newCacheT(t, CacheConfig{})
	b.block = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.Lookup(context.Background(), dev1)
			if err == nil && string(s.Bytes()) != "s1" {
				err = fmt.Errorf("got %q", s.Bytes())
			}
			errs <- err
		}()
	}
	// Let the callers pile up on the one in-flight read, then release it.
	for b.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(b.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := b.reads.Load(); got != 1 {
		t.Errorf("backend reads for 100 concurrent misses = %d, want 1", got)
	}
}

func TestCacheServesStaleDuringOutage(t *testing.T) {
	tests := []struct {
		name    string
		age     time.Duration
		err     error
		wantErr error
	}{
		{"unavailable within max stale", 30 * time.Minute, ErrUnavailable, nil},
		{"permission denied within max stale", 30 * time.Minute, ErrPermission, nil},
		{"unavailable beyond max stale", 2 * time.Hour, ErrUnavailable, ErrUnavailable},
		{"not found is believed", 30 * time.Minute, ErrNotFound, ErrNotFound},
		{"unusable is believed", 30 * time.Minute, ErrUnusable, ErrUnusable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, b, clk, _ := newCacheT(t, CacheConfig{TTL: time.Minute, MaxStale: time.Hour})
			mustLookup(t, c, dev1, "s1")
			b.fail(fmt.Errorf("vault: %w", tt.err))
			clk.Advance(tt.age)
			got, err := c.Lookup(context.Background(), dev1)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Lookup error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && string(got.Bytes()) != "s1" {
				t.Errorf("Lookup = %q, want the stale s1", got.Bytes())
			}
		})
	}
}

func TestCacheSlowBackendServesStaleQuickly(t *testing.T) {
	c, b, clk, outcomes := newCacheT(t, CacheConfig{TTL: time.Minute, MaxStale: time.Hour, StaleWait: 20 * time.Millisecond})
	mustLookup(t, c, dev1, "s1")
	b.mu.Lock()
	b.block = make(chan struct{}) // Vault hangs
	b.mu.Unlock()
	clk.Advance(2 * time.Minute)
	mustLookup(t, c, dev1, "s1")
	if outcomes["stale"] != 1 {
		t.Errorf("outcomes = %v, want one stale answer", outcomes)
	}
	close(b.block)
}

func TestCacheUncachedDeviceFailsWithinDeadline(t *testing.T) {
	c, b, _, _ := newCacheT(t, CacheConfig{FetchTimeout: 100 * time.Millisecond})
	b.block = make(chan struct{}) // never released: Vault hangs
	_, err := c.Lookup(context.Background(), dev1)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Lookup with a hung backend = %v, want ErrUnavailable", err)
	}
}

func TestCacheCallerCancellationDoesNotFailOthers(t *testing.T) {
	c, b, _, _ := newCacheT(t, CacheConfig{})
	b.block = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Lookup(ctx, dev1); first <- err }()
	for b.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { _, err := c.Lookup(context.Background(), dev1); second <- err }()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller got %v, want context.Canceled", err)
	}
	close(b.block)
	if err := <-second; err != nil {
		t.Errorf("second caller failed because the first cancelled: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	evictions := 0
	c, b, _, _ := newCacheT(t, CacheConfig{Size: 10, OnEvict: func() { evictions++ }})
	for i := 0; i < 25; i++ {
		id := DeviceID{ProductKey: "a1FakePK01", DeviceName: fmt.Sprintf("dev-%03d", i)}
		b.set(id, "x")
		mustLookup(t, c, id, "x")
	}
	if c.Len() != 10 || evictions != 15 {
		t.Errorf("Len = %d, evictions = %d; want 10 and 15", c.Len(), evictions)
	}
}
