package service

import (
	"context"
	"fmt"
	"net"
	"net/url"
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

// TokenConfig configures PreVerify's token cache.
type TokenConfig struct {
	// Lifetime is how long the platform's tokens are valid; default 7 days.
	Lifetime time.Duration
	// RefreshMargin: a cached token is replaced this long before it
	// expires, so a device never gets one that dies mid-session; default
	// 1 day.
	RefreshMargin time.Duration
	// Size bounds the number of devices whose tokens are cached; default
	// 100,000.
	Size int
	// ForceRefreshInterval: force_refresh is honoured at most once per
	// interval per device (burst 1); default 1 minute.
	ForceRefreshInterval time.Duration
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
		c, _ := lru.New[tokenKey, token](cfg.Size)
		f, _ := lru.New[tokenKey, *rate.Limiter](cfg.Size)
		s.tokens = &tokenCache{pv: p, cfg: cfg, cache: c, force: f}
	}
}

type tokenKey struct {
	productKey, deviceName, clientID string
}

type token struct {
	result   platform.Result
	issuedAt time.Time
}

// tokenCache holds each device's iotToken until shortly before it expires;
// concurrent requests for one device share one platform call.
type tokenCache struct {
	pv    PreVerifier
	cfg   TokenConfig
	cache *lru.Cache[tokenKey, token]
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
	now := s.now()
	if req.GetForceRefresh() {
		if wait := tc.allowForce(key, now); wait > 0 {
			st, err := status.Newf(codes.ResourceExhausted,
				"force_refresh is limited to once per %s per device; the cached token is still valid", tc.cfg.ForceRefreshInterval).
				WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
			if err != nil {
				return nil, toStatus(ctx, s.log, err)
			}
			return nil, st.Err()
		}
	} else if t, ok := tc.cache.Get(key); ok && now.Before(t.issuedAt.Add(tc.cfg.Lifetime-tc.cfg.RefreshMargin)) {
		return s.preVerifyAnswer(t, clientID), nil
	}

	// One platform call per device at a time; a forced refresh gets its own
	// flight so that it is never answered with the token it wants replaced.
	flight := fmt.Sprintf("%s/%s/%s/%t", key.productKey, key.deviceName, key.clientID, req.GetForceRefresh())
	ch := tc.group.DoChan(flight, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return s.fetchToken(fctx, key, method)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, toStatus(ctx, s.log, r.Err)
		}
		return s.preVerifyAnswer(r.Val.(token), clientID), nil
	case <-ctx.Done():
		return nil, toStatus(ctx, s.log, ctx.Err())
	}
}

func (s *Server) fetchToken(ctx context.Context, key tokenKey, method signing.Method) (token, error) {
	id := secrets.DeviceID{ProductKey: key.productKey, DeviceName: key.deviceName}
	now := s.now()
	preq := signing.PreVerifyRequest{
		ProductKey: key.productKey, DeviceName: key.deviceName, ClientID: key.clientID,
		Timestamp: strconv.FormatInt(now.UnixMilli(), 10), Method: method,
	}
	product := s.products.Lookup(key.productKey)
	form, err := signing.SignPreVerify(preq, s.mac(ctx, id))
	if err != nil {
		return token{}, err
	}
	region := product.Region
	if region == "" {
		region = signing.DefaultRegion
	}
	res, err := s.tokens.pv.PreVerify(ctx, region, form)
	if err != nil {
		return token{}, err
	}
	t := token{result: res, issuedAt: now}
	s.tokens.cache.Add(key, t)
	return t, nil
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

func (s *Server) preVerifyAnswer(t token, clientID string) *signerv1.PreVerifyResponse {
	r := t.result
	return &signerv1.PreVerifyResponse{
		IotId:     r.IotID,
		IotToken:  r.IotToken,
		Host:      r.Host,
		Port:      int32(r.Port),
		Uri:       "mqtts://" + net.JoinHostPort(r.Host, strconv.Itoa(r.Port)),
		ClientId:  clientID,
		Username:  r.IotID,
		Password:  r.IotToken,
		ExpiresAt: timestamppb.New(t.issuedAt.Add(s.tokens.cfg.Lifetime)),
		IssuedAt:  timestamppb.New(t.issuedAt),
	}
}
