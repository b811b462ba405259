package server_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	platform "github.com/signerd/signerd/platform/aliyun"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
)

// downStore is a secret store that cannot be reached.
type downStore struct{}

func (downStore) Lookup(context.Context, secrets.DeviceID) (secrets.Secret, error) {
	return secrets.Secret{}, fmt.Errorf("vault at https://vault.test: connection refused: %w", secrets.ErrUnavailable)
}

// fakePlatform answers PreVerify with a new token each time, or err.
type fakePlatform struct {
	err error
	n   int
}

func (p *fakePlatform) PreVerify(context.Context, string, url.Values) (platform.Result, error) {
	if p.err != nil {
		return platform.Result{}, p.err
	}
	p.n++
	return platform.Result{IotID: "iot-id", IotToken: "token-" + strconv.Itoa(p.n), Host: "mqtt.test", Port: 8883}, nil
}

func goodStore() *secrets.Memory {
	m := secrets.NewMemory()
	m.Put(secrets.DeviceID{ProductKey: "a1TestPK01", DeviceName: "dev-a-0001"}, []byte("0123456789abcdef0123456789abcdef"))
	return m
}

// TestRetryAfter makes every kind of RESOURCE_EXHAUSTED and UNAVAILABLE
// there is, over both transports: each REST 429 and 503 has a Retry-After,
// and each gRPC answer a google.rpc.RetryInfo with the same delay (and a
// retry-after header), from the cause's own wait where it knows one.
func TestRetryAfter(t *testing.T) {
	const pk, dn = "a1TestPK01", "dev-a-0001"
	sign := &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn}
	force := &signerv1.PreVerifyRequest{ProductKey: pk, DeviceName: dn, ForceRefresh: true}
	restSign := func(ts *testServer) restAnswer {
		return doREST(t, ts.base, http.MethodPost, signPath(pk, dn), "{}", nil)
	}
	restForce := func(ts *testServer) restAnswer {
		return doREST(t, ts.base, http.MethodPost, "/v1/products/"+pk+"/devices/"+dn+":preVerify", `{"forceRefresh":true}`, nil)
	}
	restPre := func(ts *testServer) restAnswer {
		return doREST(t, ts.base, http.MethodPost, "/v1/products/"+pk+"/devices/"+dn+":preVerify", `{}`, nil)
	}
	grpcPre := func(ts *testServer, md *metadata.MD) error {
		_, err := ts.client.PreVerify(context.Background(), &signerv1.PreVerifyRequest{ProductKey: pk, DeviceName: dn}, grpc.Header(md))
		return err
	}
	grpcSign := func(ts *testServer, md *metadata.MD) error {
		_, err := ts.client.SignMqttConnect(context.Background(), sign, grpc.Header(md))
		return err
	}
	grpcForce := func(ts *testServer, md *metadata.MD) error {
		_, err := ts.client.PreVerify(context.Background(), force, grpc.Header(md))
		return err
	}

	tests := []struct {
		name string
		cfg  func(t *testing.T) server.Config
		// first is made once per transport before the refused call.
		first      bool
		rest       func(*testServer) restAnswer
		grpc       func(*testServer, *metadata.MD) error
		wantCode   codes.Code
		minS, maxS int // the Retry-After range, whole seconds
	}{
		{
			name: "rate limit",
			cfg: func(*testing.T) server.Config {
				return server.Config{Service: service.New(goodStore(), service.WithAuthorizer(auth.AllowAll())), RateLimit: limits.NewPerCaller(1.0/3600, 1, 100)}
			},
			first: true, rest: restSign, grpc: grpcSign,
			wantCode: codes.ResourceExhausted, minS: 3500, maxS: 3600,
		},
		{
			name: "forceRefresh twice",
			cfg: func(*testing.T) server.Config {
				svc := service.New(goodStore(), service.WithAuthorizer(auth.AllowAll()), service.WithPreVerify(&fakePlatform{}, service.TokenConfig{ForceRefreshInterval: time.Hour}))
				return server.Config{Service: svc}
			},
			first: true, rest: restForce, grpc: grpcForce,
			wantCode: codes.ResourceExhausted, minS: 3500, maxS: 3600,
		},
		{
			name: "Vault down",
			cfg: func(*testing.T) server.Config {
				return server.Config{Service: service.New(downStore{}, service.WithAuthorizer(auth.AllowAll()))}
			},
			rest: restSign, grpc: grpcSign,
			wantCode: codes.Unavailable, minS: 5, maxS: 5,
		},
		{
			name: "platform unavailable",
			cfg: func(*testing.T) server.Config {
				p := &fakePlatform{err: fmt.Errorf("post auth: %w", &platform.Error{Kind: platform.ErrUnavailable, HTTPStatus: 503, Attempts: 3})}
				return server.Config{Service: service.New(goodStore(), service.WithAuthorizer(auth.AllowAll()), service.WithPreVerify(p, service.TokenConfig{}))}
			},
			rest: restPre, grpc: grpcPre,
			wantCode: codes.Unavailable, minS: 5, maxS: 5,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, tc.cfg(t))
			if tc.first {
				if a := tc.rest(ts); a.httpStatus != http.StatusOK {
					t.Fatalf("first REST call: HTTP %d %s", a.httpStatus, a.raw)
				}
			}
			a := tc.rest(ts)
			checkRESTRetry(t, a, tc.wantCode, tc.minS, tc.maxS)

			// gRPC: its own rate-limit bucket (another peer), its own
			// force_refresh budget is the device's: already spent by REST.
			if tc.first && tc.name == "rate limit" {
				if err := tc.grpc(ts, new(metadata.MD)); err != nil {
					t.Fatalf("first gRPC call: %v", err)
				}
			}
			var md metadata.MD
			checkGRPCRetry(t, tc.grpc(ts, &md), md, tc.wantCode, tc.minS, tc.maxS)
		})
	}

	t.Run("shedding", func(t *testing.T) {
		b := &blocking{entered: make(chan struct{}, 1), release: make(chan struct{})}
		ts := start(t, server.Config{Service: b, InFlight: limits.NewInFlight(1)})
		done := make(chan error, 1)
		go func() { done <- grpcSign(ts, new(metadata.MD)) }()
		<-b.entered
		checkRESTRetry(t, restSign(ts), codes.ResourceExhausted, 1, 1)
		var md metadata.MD
		checkGRPCRetry(t, grpcSign(ts, &md), md, codes.ResourceExhausted, 1, 1)
		close(b.release)
		if err := <-done; err != nil {
			t.Errorf("the call in flight: %v", err)
		}
	})

	t.Run("not ready", func(t *testing.T) {
		ts := start(t, server.Config{Service: service.New(goodStore(), service.WithAuthorizer(auth.AllowAll())),
			Ready: func(context.Context) error { return secrets.ErrUnavailable }})
		a := doREST(t, ts.base, http.MethodGet, "/readyz", "", nil)
		if a.httpStatus != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "5" {
			t.Errorf("/readyz: HTTP %d, Retry-After %q; want 503 with 5", a.httpStatus, a.header.Get("Retry-After"))
		}
	})
}

func checkRESTRetry(t *testing.T, a restAnswer, want codes.Code, minS, maxS int) {
	t.Helper()
	wantHTTP := map[codes.Code]int{codes.ResourceExhausted: 429, codes.Unavailable: 503}[want]
	if a.httpStatus != wantHTTP || a.code != want {
		t.Fatalf("REST: HTTP %d %v, want %d %v: %s", a.httpStatus, a.code, wantHTTP, want, a.raw)
	}
	ra := a.header.Values("Retry-After")
	if len(ra) != 1 {
		t.Fatalf("REST %d: Retry-After %q, want one value", a.httpStatus, ra)
	}
	if n, err := strconv.Atoi(ra[0]); err != nil || n < minS || n > maxS {
		t.Errorf("REST %d: Retry-After %q, want %d–%d", a.httpStatus, ra[0], minS, maxS)
	}
}

func checkGRPCRetry(t *testing.T, err error, md metadata.MD, want codes.Code, minS, maxS int) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != want {
		t.Fatalf("gRPC: %v, want %v", err, want)
	}
	var ri *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			ri = r
		}
	}
	if ri == nil {
		t.Fatalf("gRPC %v without RetryInfo: %v", want, st.Details())
	}
	secs := int(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds()))
	if secs < minS || secs > maxS {
		t.Errorf("gRPC RetryInfo %v, want %d–%d s", ri.GetRetryDelay().AsDuration(), minS, maxS)
	}
	if h := md.Get("retry-after"); len(h) != 1 || h[0] != strconv.Itoa(secs) {
		t.Errorf("gRPC retry-after header %q, want [%d]", h, secs)
	}
}
