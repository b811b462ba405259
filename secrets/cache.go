package secrets

import (
	"context"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// CacheConfig configures a Cache.
type CacheConfig struct {
	// Size bounds the number of devices held (hits and not-found answers
	// together); default 100,000.
	Size int
	// TTL is how long a secret is served without asking the backend again; a
	// rotated secret is picked up after at most TTL. Default 5 minutes.
	TTL time.Duration
	// NegativeTTL is how long "not found" is remembered, so that a flood of
	// requests for unknown devices does not reach Vault. Default 10 s.
	NegativeTTL time.Duration
	// MaxStale is how long past TTL a secret may still be served while the
	// backend is unavailable; 0 serves nothing stale. Default 1 hour.
	MaxStale time.Duration
	// StaleWait is how long a caller holding a stale-eligible entry waits for
	// the backend before being served the stale secret; the fetch goes on in
	// the background and refreshes the entry. Default 250 ms.
	StaleWait time.Duration
	// FetchTimeout bounds one backend fetch shared by concurrent callers;
	// default 2 s.
	FetchTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Observe, if set, is told the outcome of every lookup (for metrics):
	// "hit", "miss", "stale", "negative_hit".
	Observe func(outcome string)
	// OnEvict, if set, is called when an entry is evicted for space.
	OnEvict func()
}

// Cache is a bounded, expiring Store in front of another Store. Concurrent
// misses for one device share one backend read; when the backend is
// unavailable, devices already cached keep being served up to MaxStale.
type Cache struct {
	next  Store
	cfg   CacheConfig
	lru   *lru.Cache[DeviceID, entry]
	group singleflight.Group
}

type entry struct {
	secret    Secret
	notFound  bool
	fetchedAt time.Time
}

// NewCache returns a Cache in front of next.
func NewCache(next Store, cfg CacheConfig) (*Cache, error) {
	if cfg.Size == 0 {
		cfg.Size = 100_000
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = 10 * time.Second
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 2 * time.Second
	}
	if cfg.StaleWait == 0 {
		cfg.StaleWait = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Size < 0 || cfg.TTL < 0 || cfg.NegativeTTL < 0 || cfg.MaxStale < 0 {
		return nil, errors.New("cache: size and durations must not be negative")
	}
	c := &Cache{next: next, cfg: cfg}
	var err error
	c.lru, err = lru.NewWithEvict(cfg.Size, func(DeviceID, entry) {
		if cfg.OnEvict != nil {
			cfg.OnEvict()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return c, nil
}

// Len returns the number of cached entries.
func (c *Cache) Len() int { return c.lru.Len() }

// Purge drops every entry.
func (c *Cache) Purge() { c.lru.Purge() }

// Lookup implements Store.
func (c *Cache) Lookup(ctx context.Context, id DeviceID) (Secret, error) {
	now := c.cfg.Now()
	e, cached := c.lru.Get(id)
	if cached {
		age := now.Sub(e.fetchedAt)
		switch {
		case e.notFound && age < c.cfg.NegativeTTL:
			c.observe("negative_hit")
			return Secret{}, fmt.Errorf("lookup %s: %w (cached)", id, ErrNotFound)
		case !e.notFound && age < c.cfg.TTL:
			c.observe("hit")
			return e.secret, nil
		}
	}

	ch := c.group.DoChan(id.String(), func() (any, error) {
		// Detached from the first caller's context: its cancellation must
		// not fail the callers sharing this fetch.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FetchTimeout)
		defer cancel()
		s, err := c.next.Lookup(fctx, id)
		switch {
		case err == nil:
			c.lru.Add(id, entry{secret: s, fetchedAt: c.cfg.Now()})
		case errors.Is(err, ErrNotFound):
			c.lru.Add(id, entry{notFound: true, fetchedAt: c.cfg.Now()})
		case errors.Is(err, ErrUnusable):
			// A malformed entry must not keep serving an older good secret.
			c.lru.Remove(id)
		}
		return s, err
	})
	canStale := cached && !e.notFound && now.Sub(e.fetchedAt) < c.cfg.TTL+c.cfg.MaxStale
	var staleAfter <-chan time.Time
	if canStale {
		t := time.NewTimer(c.cfg.StaleWait)
		defer t.Stop()
		staleAfter = t.C
	}
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-staleAfter:
		// Vault is slow: serve what we have; the fetch refreshes the entry
		// when it completes.
		c.observe("stale")
		return e.secret, nil
	case <-ctx.Done():
		return Secret{}, fmt.Errorf("lookup %s: %w: %w", id, ErrUnavailable, ctx.Err())
	}
	if res.Err == nil {
		c.observe("miss")
		return res.Val.(Secret), nil
	}
	// Backend down or refusing us: a recently good secret beats an outage.
	if canStale && (errors.Is(res.Err, ErrUnavailable) || errors.Is(res.Err, ErrPermission)) {
		c.observe("stale")
		return e.secret, nil
	}
	c.observe("miss")
	return Secret{}, res.Err
}

func (c *Cache) observe(outcome string) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(outcome)
	}
}
