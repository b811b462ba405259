package limits

import (
	"fmt"
	"testing"
	"time"
)

func TestPerCallerIsolatesCallers(t *testing.T) {
	p := NewPerCaller(1, 3, 0)
	for i := 0; i < 3; i++ {
		if ok, _ := p.Allow("device:a1/x"); !ok {
			t.Fatalf("call %d within the burst was refused", i+1)
		}
	}
	ok, wait := p.Allow("device:a1/x")
	if ok {
		t.Fatal("call beyond the burst was allowed")
	}
	if wait <= 0 || wait > time.Second {
		t.Errorf("wait = %v, want (0, 1s] at 1/s", wait)
	}
	if ok, _ := p.Allow("device:a1/y"); !ok {
		t.Error("another caller was limited by the first one's calls")
	}
}

func TestPerCallerRefusalCostsNothing(t *testing.T) {
	p := NewPerCaller(1000, 1, 0)
	if ok, _ := p.Allow("k"); !ok {
		t.Fatal("first call refused")
	}
	for i := 0; i < 100; i++ {
		p.Allow("k") // refused calls must not push the next token further out
	}
	time.Sleep(5 * time.Millisecond) // ≥ 1 token at 1000/s
	if ok, wait := p.Allow("k"); !ok {
		t.Errorf("refused calls consumed future tokens: still waiting %v", wait)
	}
}

func TestPerCallerDisabled(t *testing.T) {
	p := NewPerCaller(0, 0, 0)
	for i := 0; i < 1000; i++ {
		if ok, _ := p.Allow(fmt.Sprint(i % 3)); !ok {
			t.Fatal("disabled limiter refused a call")
		}
	}
}

func TestPerCallerBoundedMemory(t *testing.T) {
	p := NewPerCaller(1, 1, 10)
	for i := 0; i < 100; i++ {
		p.Allow(fmt.Sprint(i))
	}
	if n := p.buckets.Len(); n != 10 {
		t.Errorf("buckets = %d, want the bound 10", n)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {10 * time.Second, 10}} {
		if got := RetryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestInFlight(t *testing.T) {
	f := NewInFlight(2)
	for i := 0; i < 2; i++ {
		if !f.TryAcquire() {
			t.Fatalf("slot %d within the cap refused", i+1)
		}
	}
	if f.TryAcquire() {
		t.Fatal("slot beyond the cap granted")
	}
	f.Release()
	if !f.TryAcquire() {
		t.Error("released slot not reusable")
	}
	if u := NewInFlight(0); !u.TryAcquire() {
		t.Error("uncapped InFlight refused")
	}
}
