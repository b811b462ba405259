// Package limits keeps one caller from starving the others: a token bucket
// per caller identity (golang.org/x/time/rate), and a global cap on calls in
// flight so that overload is shed at once instead of queueing without bound.
package limits

import (
	"math"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// PerCaller holds a token bucket per caller key. The set of buckets is
// bounded (least recently used callers are forgotten, which only ever
// gives a forgotten caller a fresh, full bucket).
type PerCaller struct {
	limit   rate.Limit
	burst   int
	buckets *lru.Cache[string, *rate.Limiter]
}

// NewPerCaller allows each caller perSecond calls per second with bursts of
// burst. perSecond ≤ 0 disables the limit.
func NewPerCaller(perSecond float64, burst, maxCallers int) *PerCaller {
	if maxCallers <= 0 {
		maxCallers = 100_000
	}
	c, _ := lru.New[string, *rate.Limiter](maxCallers)
	l := rate.Limit(perSecond)
	if perSecond <= 0 {
		l = rate.Inf
	}
	return &PerCaller{limit: l, burst: burst, buckets: c}
}

// Allow takes a token for key; when none is left it returns false and how
// long until one is.
func (p *PerCaller) Allow(key string) (bool, time.Duration) {
	if p.limit == rate.Inf {
		return true, 0
	}
	lim, ok := p.buckets.Get(key)
	if !ok {
		lim = rate.NewLimiter(p.limit, p.burst)
		if prev, found, _ := p.buckets.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	r := lim.Reserve()
	if !r.OK() {
		return false, time.Second
	}
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// RetryAfterSeconds rounds a wait up to whole seconds, as HTTP's Retry-After
// wants.
func RetryAfterSeconds(d time.Duration) int {
	return int(math.Max(1, math.Ceil(d.Seconds())))
}

// InFlight caps concurrent calls.
type InFlight struct {
	sem *semaphore.Weighted
}

// NewInFlight allows n calls at once; n ≤ 0 means no cap.
func NewInFlight(n int) *InFlight {
	if n <= 0 {
		return &InFlight{}
	}
	return &InFlight{sem: semaphore.NewWeighted(int64(n))}
}

// TryAcquire takes a slot without waiting; release it with Release.
func (f *InFlight) TryAcquire() bool {
	return f.sem == nil || f.sem.TryAcquire(1)
}

// Release returns a slot.
func (f *InFlight) Release() {
	if f.sem != nil {
		f.sem.Release(1)
	}
}
