package service_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
)

const (
	pvPK     = "a1PreVerify"
	pvDN     = "pv-device-01"
	pvSecret = "0123456789abcdef0123456789abcdef"
)

type pvClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *pvClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *pvClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type pvFixture struct {
	svc   *service.Server
	emu   *platformtest.Server
	clock *pvClock
	logs  *bytes.Buffer
	store *secrets.Memory
}

func newPV(t *testing.T, tc service.TokenConfig) *pvFixture {
	t.Helper()
	emu := platformtest.New(t, platformtest.WithMQTT("mqtt.test.local", 8883))
	emu.AddDevice(pvPK, pvDN, pvSecret)
	client, err := platform.New(platform.Config{
		RootCAs:        emu.CertPool(),
		RegionBaseURLs: map[string]string{"cn-shanghai": emu.URL()},
		Retries:        1,
		BackoffBase:    time.Millisecond,
		BackoffMax:     5 * time.Millisecond,
		AttemptTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	store := secrets.NewMemory()
	store.Put(secrets.DeviceID{ProductKey: pvPK, DeviceName: pvDN}, []byte(pvSecret))
	clock := &pvClock{t: time.Unix(1_800_000_000, 0)}
	logs := &bytes.Buffer{}
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(clock.now), service.WithPreVerify(client, tc),
		service.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	return &pvFixture{svc: svc, emu: emu, clock: clock, logs: logs, store: store}
}

func TestPreVerifyPerSignMethod(t *testing.T) {
	methods := []signerv1.SignMethod{
		signerv1.SignMethod_SIGN_METHOD_UNSPECIFIED,
		signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256,
		signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1,
		signerv1.SignMethod_SIGN_METHOD_HMAC_MD5,
	}
	wantForm := map[signerv1.SignMethod]string{
		signerv1.SignMethod_SIGN_METHOD_UNSPECIFIED: "hmacsha256",
		signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256: "hmacsha256",
		signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1:   "hmacsha1",
		signerv1.SignMethod_SIGN_METHOD_HMAC_MD5:    "hmacmd5",
	}
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) {
			f := newPV(t, service.TokenConfig{})
			resp, err := f.svc.PreVerify(context.Background(), &signerv1.PreVerifyRequest{
				ProductKey: pvPK, DeviceName: pvDN, ClientId: "sn-0001", SignMethod: m,
			})
			if err != nil {
				t.Fatalf("PreVerify: %v", err)
			}
			if _, ok := f.emu.Issued(resp.GetIotId(), resp.GetIotToken()); !ok {
				t.Errorf("answer (%q, token) was not issued by the platform", resp.GetIotId())
			}
			if resp.GetUsername() != resp.GetIotId() || resp.GetPassword() != resp.GetIotToken() || resp.GetClientId() != "sn-0001" {
				t.Errorf("CONNECT fields = %q/%q/%q, want iotId/iotToken/sn-0001", resp.GetClientId(), resp.GetUsername(), resp.GetPassword())
			}
			if resp.GetHost() != "mqtt.test.local" || resp.GetPort() != 8883 || resp.GetUri() != "mqtts://mqtt.test.local:8883" {
				t.Errorf("endpoint = %s:%d %s", resp.GetHost(), resp.GetPort(), resp.GetUri())
			}
			if got, want := resp.GetExpiresAt().AsTime(), f.clock.now().Add(7*24*time.Hour); !got.Equal(want) {
				t.Errorf("expires_at = %v, want %v", got, want)
			}
			reqs := f.emu.Requests()
			if len(reqs) != 1 || !reqs[0].Accepted() {
				t.Fatalf("platform saw %d requests (accepted: %v), want 1 accepted", len(reqs), len(reqs) == 1 && reqs[0].Accepted())
			}
			form := reqs[0].Form
			if form.Get("signmethod") != wantForm[m] || form.Get("clientId") != "sn-0001" || form.Get("productKey") != pvPK || form.Get("deviceName") != pvDN {
				t.Errorf("form = %v", form)
			}
			if strings.Contains(f.logs.String(), resp.GetIotToken()) || strings.Contains(f.logs.String(), pvSecret) {
				t.Error("logs contain the token or the secret")
			}
		})
	}
}

func TestPreVerifySingleFlightAndRefresh(t *testing.T) {
	f := newPV(t, service.TokenConfig{RefreshMargin: 24 * time.Hour})
	req := &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: pvDN}
	callAll := func(n int) map[string]bool {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		tokens := map[string]bool{}
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := f.svc.PreVerify(context.Background(), req)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				tokens[r.GetIotToken()] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return tokens
	}
	if tokens := callAll(200); len(tokens) != 1 || f.emu.Calls() != 1 {
		t.Fatalf("200 concurrent calls: %d distinct tokens, %d platform calls; want 1 and 1", len(tokens), f.emu.Calls())
	}
	f.clock.advance(6*24*time.Hour - time.Minute) // just inside the margin
	if callAll(50); f.emu.Calls() != 1 {
		t.Fatalf("platform calls before the refresh margin = %d, want 1 (cached)", f.emu.Calls())
	}
	f.clock.advance(2 * time.Minute) // past it
	if tokens := callAll(50); len(tokens) != 1 || f.emu.Calls() != 2 {
		t.Fatalf("after the margin: %d tokens, %d platform calls; want a single refresh (2 calls)", len(tokens), f.emu.Calls())
	}
}

func TestPreVerifyForceRefresh(t *testing.T) {
	f := newPV(t, service.TokenConfig{ForceRefreshInterval: time.Hour})
	ctx := context.Background()
	first, err := f.svc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: pvDN})
	if err != nil {
		t.Fatal(err)
	}
	forced, err := f.svc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: pvDN, ForceRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if forced.GetIotToken() == first.GetIotToken() || f.emu.Calls() != 2 {
		t.Errorf("force_refresh: same token or %d platform calls; want a new token from a 2nd call", f.emu.Calls())
	}
	_, err = f.svc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: pvDN, ForceRefresh: true})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second force_refresh within the interval = %v, want RESOURCE_EXHAUSTED", err)
	}
	again, err := f.svc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: pvDN})
	if err != nil || again.GetIotToken() != forced.GetIotToken() {
		t.Errorf("after a forced refresh the cache serves %v, want the forced token", err)
	}
}

func TestPreVerifyErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *pvFixture)
		req   *signerv1.PreVerifyRequest
		want  codes.Code
		calls int // platform calls expected
		inMsg string
	}{
		{name: "unknown on the platform", setup: func(f *pvFixture) { f.emu.RemoveDevice(pvPK, pvDN) }, want: codes.NotFound, calls: 1},
		{name: "secret does not match", setup: func(f *pvFixture) {
			f.store.Put(secrets.DeviceID{ProductKey: pvPK, DeviceName: pvDN}, []byte("ffffffffffffffffffffffffffffffff"))
		}, want: codes.FailedPrecondition, calls: 1, inMsg: "does not match the platform"},
		{name: "not in the store", req: &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "absent-01"}, want: codes.NotFound, calls: 0},
		{name: "bad parameter", setup: func(f *pvFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 460, Message: "invalid clientId"})
		}, want: codes.InvalidArgument, calls: 1, inMsg: "invalid clientId"},
		{name: "auth type mismatch", setup: func(f *pvFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 6200, Message: "auth type mismatch"})
		}, want: codes.FailedPrecondition, calls: 1},
		{name: "platform down", setup: func(f *pvFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503})
		}, want: codes.Unavailable, calls: 2},
		{name: "non-JSON answer", setup: func(f *pvFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultNonJSON})
		}, want: codes.Unavailable, calls: 1},
		{name: "bad device name", req: &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "x|y"}, want: codes.InvalidArgument, calls: 0, inMsg: "device_name"},
		{name: "bad sign method", req: &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: pvDN, SignMethod: 42}, want: codes.InvalidArgument, calls: 0, inMsg: "sign_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPV(t, service.TokenConfig{})
			if tt.setup != nil {
				tt.setup(f)
			}
			req := tt.req
			if req == nil {
				req = &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: pvDN}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := f.svc.PreVerify(ctx, req)
			if status.Code(err) != tt.want {
				t.Fatalf("PreVerify = %v, want %v", err, tt.want)
			}
			if !strings.Contains(status.Convert(err).Message(), tt.inMsg) {
				t.Errorf("message %q does not contain %q", status.Convert(err).Message(), tt.inMsg)
			}
			if got := f.emu.Calls(); got != tt.calls {
				t.Errorf("platform calls = %d, want %d", got, tt.calls)
			}
			if strings.Contains(f.logs.String(), pvSecret) || strings.Contains(err.Error(), pvSecret) {
				t.Error("the secret leaked into logs or the error")
			}
		})
	}
}
