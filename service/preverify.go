package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	platform "github.com/signerd/signerd/platform/aliyun"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// PreVerifier posts a signed pre-verification form to the platform;
// *platform.Client is the production one.
type PreVerifier interface {
	PreVerify(ctx context.Context, region string, form url.Values) (platform.Result, error)
}

// TokenStore keeps each device's PreVerify tokens where every replica of
// signerd finds them, so that N replicas make one platform call per device
// per token lifetime and hand out the same token. secrets.VaultTokens (Vault
// KV with check-and-set) is the production one, secrets.MemoryTokens the
// single-process one. Implementations never put a token into an error.
type TokenStore interface {
	// Get returns the device's record; Version 0 when there is none.
	Get(ctx context.Context, id secrets.DeviceID) (secrets.TokenRecord, error)
	// Put writes rec only if the stored version is still rec.Version
	// (check-and-set) and returns the new version, or an error wrapping
	// secrets.ErrConflict.
	Put(ctx context.Context, id secrets.DeviceID, rec secrets.TokenRecord) (int, error)
}

// TokenConfig configures PreVerify's tokens.
type TokenConfig struct {
	// Lifetime is how long the platform's tokens are valid; default 7 days.
	Lifetime time.Duration
	// RefreshMargin: a stored token is replaced this long before it
	// expires, so a device never gets one that dies mid-session; default
	// 1 day.
	RefreshMargin time.Duration
	// Size bounds the devices the default in-memory Store holds and those
	// whose force_refresh limiter is kept; default 100,000.
	Size int
	// ForceRefreshInterval: force_refresh is honoured at most once per
	// interval per device (burst 1), fleet-wide: a token fetched by force
	// says so in the store; default 1 minute.
	ForceRefreshInterval time.Duration
	// Store keeps the tokens; nil: an in-memory one (a single replica).
	Store TokenStore
	// Owner names this replica in its claims (diagnostics only); default
	// the host name and a random suffix.
	Owner string
	// ClaimTTL is how long a replica's claim to fetch a device's token
	// keeps the other replicas waiting; its platform call is bounded to
	// less than that, so a claim outlives its owner's call unless the
	// owner dies. Default 10 s.
	ClaimTTL time.Duration
}

// WithPreVerify enables PreVerify, posting through p.
func WithPreVerify(p PreVerifier, cfg TokenConfig) Option {
	return func(s *Server) {
		if cfg.Lifetime == 0 {
			cfg.Lifetime = 7 * 24 * time.Hour
		}
		if cfg.RefreshMargin == 0 {
			cfg.RefreshMargin = 24 * time.Hour
		}
		if cfg.Size == 0 {
			cfg.Size = 100_000
		}
		if cfg.ForceRefreshInterval == 0 {
			cfg.ForceRefreshInterval = time.Minute
		}
		if cfg.ClaimTTL <= 0 {
			cfg.ClaimTTL = 10 * time.Second
		}
		if cfg.Store == nil {
			cfg.Store = secrets.NewMemoryTokens(cfg.Size)
		}
		if cfg.Owner == "" {
			cfg.Owner = defaultOwner()
		}
		f, _ := lru.New[tokenKey, *rate.Limiter](cfg.Size)
		s.tokens = &tokenCache{pv: p, cfg: cfg, store: cfg.Store, force: f}
	}
}

// defaultOwner is the host name (the pod's name in Kubernetes) and a random
// suffix, so that a restarted pod of the same name is another owner.
func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%x", host, b)
}

type tokenKey struct {
	productKey, deviceName, clientID string
}

// tokenCache hands out PreVerify tokens from the shared TokenStore.
//
// It keeps no token in this process: every PreVerify reads the device's
// record from the store. A local copy could only be trusted after asking the
// store whether its version is still current, and that question costs the
// same single small read as the record itself; without it, a token another
// replica replaced (force_refresh, or near expiry) could be handed out. What
// stays local is what is safe: one flight per device, client ID and version
// read, so that concurrent callers of one replica that found the same
// record unusable share one platform call, and the force_refresh limiter.
//
// A missing or unusable token is fetched under a claim written into the
// record with check-and-set: the replica whose claim is stored calls the
// platform and stores the token (check-and-set on its claim's version);
// the others wait for the record to change and hand out that token. So N
// replicas asked about one device at once make one platform call; a
// replica whose claim or token write lost the race discards what it has
// and uses the winner's record, so a token is handed out only once it is
// the stored one.
type tokenCache struct {
	pv    PreVerifier
	cfg   TokenConfig
	store TokenStore
	force *lru.Cache[tokenKey, *rate.Limiter]
	group singleflight.Group
	mu    sync.Mutex
}

// PreVerify implements signerv1.SignerServiceServer.
func (s *Server) PreVerify(ctx context.Context, req *signerv1.PreVerifyRequest) (_ *signerv1.PreVerifyResponse, err error) {
	defer func() { reportDevice(ctx, req.GetProductKey(), req.GetDeviceName(), err) }()
	if err := s.authorizeDevice(ctx, "PreVerify", req.GetProductKey(), req.GetDeviceName()); err != nil {
		return nil, err
	}
	if s.tokens == nil {
		return nil, status.Error(codes.Unimplemented, "PreVerify is not enabled on this server")
	}
	var vs violations
	clientID, _ := vs.device("", req.GetProductKey(), req.GetDeviceName(), req.GetClientId())
	method, err := signMethod(req.GetSignMethod())
	vs.add("sign_method", err)
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}

	key := tokenKey{req.GetProductKey(), req.GetDeviceName(), clientID}
	tc := s.tokens
	force := req.GetForceRefresh()
	if force {
		// This replica's limiter first: it costs no Vault read.
		if wait := tc.allowForce(key, s.now()); wait > 0 {
			return nil, s.forceLimited(ctx, wait)
		}
	}
	id := secrets.DeviceID{ProductKey: key.productKey, DeviceName: key.deviceName}
	rec, err := tc.store.Get(ctx, id)
	if err != nil {
		// Without the store, no token can be told current: a replaced one
		// must never be handed out, so the call fails (UNAVAILABLE).
		return nil, toStatus(ctx, s.log, err)
	}
	if t, ok := rec.Tokens[clientID]; ok && force && t.Forced {
		// The fleet-wide limit: a forced token records that it was, so a
		// device cannot force once per replica by going round them.
		if wait := t.IssuedAt.Add(tc.cfg.ForceRefreshInterval).Sub(s.now()); wait > 0 {
			return nil, s.forceLimited(ctx, wait)
		}
	}
	if t, ok := tc.valid(rec, clientID, s.now()); ok && !force {
		return s.preVerifyAnswer(t, clientID), nil
	}

	// Callers that read the same version and found it unusable share one
	// flight; a forced refresh gets its own, so that it is never answered
	// with the token it wants replaced.
	flight := fmt.Sprintf("%s/%s/%s/%t/%d", key.productKey, key.deviceName, key.clientID, force, rec.Version)
	ch := tc.group.DoChan(flight, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*tc.cfg.ClaimTTL+5*time.Second)
		defer cancel()
		return s.obtainToken(fctx, key, method, rec, force)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, toStatus(ctx, s.log, r.Err)
		}
		return s.preVerifyAnswer(r.Val.(secrets.Token), clientID), nil
	case <-ctx.Done():
		return nil, toStatus(ctx, s.log, ctx.Err())
	}
}

// valid returns the record's token for clientID if it is not yet within
// the refresh margin of its expiry.
func (tc *tokenCache) valid(rec secrets.TokenRecord, clientID string, now time.Time) (secrets.Token, bool) {
	t, ok := rec.Tokens[clientID]
	if !ok || t.IotToken == "" {
		return secrets.Token{}, false
	}
	return t, now.Before(t.IssuedAt.Add(tc.cfg.Lifetime - tc.cfg.RefreshMargin))
}

// obtainToken returns a current token for key, rec being the record its
// caller read: the one another replica stores meanwhile, or one it fetches
// from the platform under its claim. With force, the token rec held is not
// taken: only one stored after it.
func (s *Server) obtainToken(ctx context.Context, key tokenKey, method signing.Method, rec secrets.TokenRecord, force bool) (secrets.Token, error) {
	tc := s.tokens
	id := secrets.DeviceID{ProductKey: key.productKey, DeviceName: key.deviceName}
	replaced := ""
	if force {
		replaced = rec.Tokens[key.clientID].IotToken
	}
	wait := 10 * time.Millisecond
	for {
		now := s.now()
		if t, ok := tc.valid(rec, key.clientID, now); ok && (replaced == "" || t.IotToken != replaced) {
			return t, nil
		}
		if c := rec.Claim; c != nil && now.Before(c.Until) {
			// Another flight (of this replica or another) is asking the
			// platform: wait for the token it stores.
			select {
			case <-ctx.Done():
				return secrets.Token{}, fmt.Errorf("device %s: waiting for the PreVerify token %s is fetching: %w", id, c.Owner, ctx.Err())
			case <-time.After(wait):
			}
			wait = min(2*wait, 200*time.Millisecond)
			var err error
			if rec, err = tc.store.Get(ctx, id); err != nil {
				return secrets.Token{}, err
			}
			continue
		}

		claimed := rec
		claimed.Claim = &secrets.TokenClaim{Owner: tc.cfg.Owner, Until: now.Add(tc.cfg.ClaimTTL)}
		v, err := tc.store.Put(ctx, id, claimed)
		if errors.Is(err, secrets.ErrConflict) {
			if rec, err = tc.store.Get(ctx, id); err != nil {
				return secrets.Token{}, err
			}
			continue
		}
		if err != nil {
			return secrets.Token{}, err
		}
		claimed.Version = v

		// Bounded below the claim's lifetime, so that no other replica
		// takes over while this call may still succeed.
		pctx, cancel := context.WithTimeout(ctx, tc.cfg.ClaimTTL*4/5)
		t, err := s.fetchToken(pctx, key, method)
		cancel()
		t.Forced = force
		done := claimed
		done.Claim = nil
		if err != nil {
			// Release the claim so that the others need not wait it out;
			// if that fails too, it expires.
			_, _ = tc.store.Put(ctx, id, done)
			return secrets.Token{}, err
		}
		done.Tokens = make(map[string]secrets.Token, len(claimed.Tokens)+1)
		for k, v := range claimed.Tokens {
			done.Tokens[k] = v
		}
		done.Tokens[key.clientID] = t
		done.Trim()
		_, err = tc.store.Put(ctx, id, done)
		if errors.Is(err, secrets.ErrConflict) {
			// The claim expired and another replica took over: its token
			// is the stored one, this one is never handed out.
			if rec, err = tc.store.Get(ctx, id); err != nil {
				return secrets.Token{}, err
			}
			continue
		}
		if err != nil {
			// Not stored, so not shared: handing it out would give this
			// device two current tokens.
			return secrets.Token{}, err
		}
		return t, nil
	}
}

func (s *Server) fetchToken(ctx context.Context, key tokenKey, method signing.Method) (secrets.Token, error) {
	id := secrets.DeviceID{ProductKey: key.productKey, DeviceName: key.deviceName}
	now := s.now()
	preq := signing.PreVerifyRequest{
		ProductKey: key.productKey, DeviceName: key.deviceName, ClientID: key.clientID,
		Timestamp: strconv.FormatInt(now.UnixMilli(), 10), Method: method,
	}
	product := s.products.Lookup(key.productKey)
	form, err := signing.SignPreVerify(preq, s.mac(ctx, id))
	if err != nil {
		return secrets.Token{}, err
	}
	region := product.Region
	if region == "" {
		region = signing.DefaultRegion
	}
	res, err := s.tokens.pv.PreVerify(ctx, region, form)
	if err != nil {
		return secrets.Token{}, err
	}
	return secrets.Token{IotID: res.IotID, IotToken: res.IotToken, Host: res.Host, Port: res.Port, IssuedAt: now}, nil
}

// forceLimited is the refusal of a force_refresh within its interval.
func (s *Server) forceLimited(ctx context.Context, wait time.Duration) error {
	st, err := status.Newf(codes.ResourceExhausted,
		"force_refresh is limited to once per %s per device; the cached token is still valid", s.tokens.cfg.ForceRefreshInterval).
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	return st.Err()
}

// allowForce takes the device's forced refresh for now, or returns how long
// until the next one is allowed (the RetryInfo of the refusal).
func (tc *tokenCache) allowForce(key tokenKey, now time.Time) time.Duration {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	lim, ok := tc.force.Get(key)
	if !ok {
		lim = rate.NewLimiter(rate.Every(tc.cfg.ForceRefreshInterval), 1)
		tc.force.Add(key, lim)
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

func (s *Server) preVerifyAnswer(t secrets.Token, clientID string) *signerv1.PreVerifyResponse {
	return &signerv1.PreVerifyResponse{
		IotId:     t.IotID,
		IotToken:  t.IotToken,
		Host:      t.Host,
		Port:      int32(t.Port),
		Uri:       "mqtts://" + net.JoinHostPort(t.Host, strconv.Itoa(t.Port)),
		ClientId:  clientID,
		Username:  t.IotID,
		Password:  t.IotToken,
		ExpiresAt: timestamppb.New(t.IssuedAt.Add(s.tokens.cfg.Lifetime)),
		IssuedAt:  timestamppb.New(t.IssuedAt),
	}
}
