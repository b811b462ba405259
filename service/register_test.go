package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/metrics"
	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
	signing "github.com/signerd/signerd/signing/aliyun"
)

const (
	regPK            = "a1Register"
	regDN            = "reg-device-01"
	regProductSecret = "Pr0ductS3cretOfA1Register000001"
)

// memRegistry is an in-memory Registry and Store: device secrets by id,
// ProductSecrets by productKey. Vault's own behaviour (CAS, policies) is
// tested against a real Vault in package secrets and end to end in
// cmd/signerd; this stands in for it where a test needs to steer it.
type memRegistry struct {
	mu       sync.Mutex
	devices  map[secrets.DeviceID]string
	products map[string]string
	creates  int
	// beforeCreate, if set, runs before Create; a non-nil error is
	// returned instead.
	beforeCreate func(id secrets.DeviceID) error
	forgotten    []secrets.DeviceID
}

func newMemRegistry() *memRegistry {
	return &memRegistry{devices: map[secrets.DeviceID]string{}, products: map[string]string{regPK: regProductSecret}}
}

func (m *memRegistry) ProductSecret(_ context.Context, pk string) (secrets.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps, ok := m.products[pk]
	switch {
	case !ok:
		return secrets.Secret{}, fmt.Errorf("product %s: ProductSecret (%s): %w", pk, m.ProductLocation(pk), secrets.ErrNotFound)
	case ps == "":
		return secrets.Secret{}, fmt.Errorf("product %s: empty: %w", pk, secrets.ErrUnusable)
	case ps == "denied":
		return secrets.Secret{}, fmt.Errorf("product %s: %w (HTTP 403: permission denied)", pk, secrets.ErrPermission)
	}
	return secrets.NewSecret([]byte(ps)), nil
}

func (m *memRegistry) ProductLocation(pk string) string {
	return "vault iot/data/products/" + pk + " field productSecret"
}

func (m *memRegistry) CheckAbsent(_ context.Context, id secrets.DeviceID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.devices[id]; ok {
		return fmt.Errorf("device %s already has a secret at vault iot/data/devices/%s: %w", id, id, secrets.ErrExists)
	}
	return nil
}

func (m *memRegistry) Create(_ context.Context, id secrets.DeviceID, s secrets.Secret) (int, error) {
	if m.beforeCreate != nil {
		if err := m.beforeCreate(id); err != nil {
			return 0, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	if _, ok := m.devices[id]; ok {
		return 0, fmt.Errorf("device %s: a secret appeared: %w", id, secrets.ErrExists)
	}
	m.devices[id] = string(s.Bytes())
	return 1, nil
}

func (m *memRegistry) Lookup(_ context.Context, id secrets.DeviceID) (secrets.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.devices[id]
	if !ok {
		return secrets.Secret{}, fmt.Errorf("lookup %s: %w", id, secrets.ErrNotFound)
	}
	return secrets.NewSecret([]byte(s)), nil
}

func (m *memRegistry) secret(id secrets.DeviceID) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.devices[id]
	return s, ok
}

func (m *memRegistry) forget(id secrets.DeviceID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgotten = append(m.forgotten, id)
}

// countingRegistrar wraps the platform client, counting calls and
// optionally running a hook after each.
type countingRegistrar struct {
	c     *platform.Client
	calls atomic.Int64
	after func()
}

func (r *countingRegistrar) RegisterDevice(ctx context.Context, region string, form url.Values) (platform.Registration, error) {
	r.calls.Add(1)
	reg, err := r.c.RegisterDevice(ctx, region, form)
	if r.after != nil {
		r.after()
	}
	return reg, err
}

// regClient is a platform client for emu that reports to obs (nil: to
// nothing).
func regClient(t *testing.T, emu *platformtest.Server, obs platform.Observer) *platform.Client {
	t.Helper()
	client, err := platform.New(platform.Config{
		RootCAs:        emu.CertPool(),
		RegionBaseURLs: map[string]string{"cn-shanghai": emu.URL()},
		Retries:        1,
		BackoffBase:    time.Millisecond,
		BackoffMax:     5 * time.Millisecond,
		AttemptTimeout: 2 * time.Second,
		Observer:       obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return client
}

type regFixture struct {
	svc   *service.Server
	emu   *platformtest.Server
	reg   *memRegistry
	pf    *countingRegistrar
	clock *pvClock
	logs  *logBuffer
}

func newReg(t *testing.T, cfg service.RegistrationConfig, opts ...service.Option) *regFixture {
	t.Helper()
	emu := platformtest.New(t, platformtest.WithMQTT("mqtt.test.local", 8883))
	emu.AddProduct(regPK, regProductSecret)
	emu.AllowRegistration(regPK, regDN)
	client := regClient(t, emu, nil)
	reg := newMemRegistry()
	pf := &countingRegistrar{c: client}
	clock := &pvClock{t: time.Unix(1_800_000_000, 0)}
	logs := &logBuffer{}
	if cfg.Forget == nil {
		cfg.Forget = reg.forget
	}
	opts = append([]service.Option{
		service.WithAuthorizer(auth.AllowAll()),
		service.WithClock(clock.now),
		service.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		service.WithRegistration(pf, reg, cfg),
		service.WithPreVerify(client, service.TokenConfig{}),
	}, opts...)
	return &regFixture{svc: service.New(reg, opts...), emu: emu, reg: reg, pf: pf, clock: clock, logs: logs}
}

func (f *regFixture) register(dn string) (*signerv1.RegisterDeviceResponse, error) {
	return f.svc.RegisterDevice(context.Background(), &signerv1.RegisterDeviceRequest{ProductKey: regPK, DeviceName: dn})
}

// registerRequests returns the registration requests the platform saw.
func (f *regFixture) registerRequests() []platformtest.Request {
	var out []platformtest.Request
	for _, r := range f.emu.Requests() {
		if r.Path == platformtest.RegisterPath {
			out = append(out, r)
		}
	}
	return out
}

// noSecretsIn fails the test if text contains any of the secrets.
func noSecretsIn(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret", what)
		}
	}
}

func TestRegisterDevice(t *testing.T) {
	for _, m := range []signing.Method{signing.MethodHMACSHA256, signing.MethodHMACSHA1, signing.MethodHMACMD5} {
		t.Run(m.String(), func(t *testing.T) {
			f := newReg(t, service.RegistrationConfig{Method: m})
			id := secrets.DeviceID{ProductKey: regPK, DeviceName: regDN}
			resp, err := f.register(regDN)
			if err != nil {
				t.Fatalf("RegisterDevice: %v", err)
			}
			if resp.GetProductKey() != regPK || resp.GetDeviceName() != regDN || !resp.GetRegisteredAt().AsTime().Equal(f.clock.now()) {
				t.Errorf("answer %v", resp)
			}
			issued, _ := f.emu.DeviceSecret(regPK, regDN)
			if got, ok := f.reg.secret(id); !ok || got != issued {
				t.Fatalf("stored secret is not the one the platform issued")
			}
			reqs := f.registerRequests()
			if len(reqs) != 1 || !reqs[0].Accepted() || reqs[0].Form.Get("signMethod") != m.String() {
				t.Fatalf("platform saw %+v, want one accepted %s registration", reqs, m)
			}
			if r := reqs[0].Form.Get("random"); len(r) != 16 || signing.ValidateProductKey(r) != nil {
				t.Errorf("random %q, want 16 letters and digits", r)
			}
			if len(f.reg.forgotten) != 1 || f.reg.forgotten[0] != id {
				t.Errorf("forgotten %v, want the device once (cache invalidation)", f.reg.forgotten)
			}
			// The stored secret is the platform's: pre-verification with
			// it succeeds.
			pv, err := f.svc.PreVerify(context.Background(), &signerv1.PreVerifyRequest{ProductKey: regPK, DeviceName: regDN})
			if err != nil {
				t.Fatalf("PreVerify with the registered secret: %v", err)
			}
			answer, _ := protojson.Marshal(resp)
			noSecretsIn(t, "the answer", string(answer)+resp.String(), issued, regProductSecret)
			noSecretsIn(t, "the logs", f.logs.String(), issued, regProductSecret, reqs[0].Form.Get("sign"), pv.GetIotToken())
			if !strings.Contains(f.logs.String(), `"msg":"device registered"`) {
				t.Errorf("no \"device registered\" log line:\n%s", f.logs)
			}
		})
	}
}

func TestRegisterDeviceAlreadyExists(t *testing.T) {
	f := newReg(t, service.RegistrationConfig{})
	id := secrets.DeviceID{ProductKey: regPK, DeviceName: regDN}
	if _, err := f.register(regDN); err != nil {
		t.Fatal(err)
	}
	stored, _ := f.reg.secret(id)
	// A repeat call: ALREADY_EXISTS, no platform call, nothing written.
	_, err := f.register(regDN)
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), "iot/data/devices/") {
		t.Fatalf("repeat RegisterDevice = %v, want ALREADY_EXISTS naming the path", err)
	}
	if n := f.pf.calls.Load(); n != 1 {
		t.Errorf("%d platform calls, want 1", n)
	}
	if got, _ := f.reg.secret(id); got != stored || f.reg.creates != 1 {
		t.Errorf("the repeat call wrote (%d creates)", f.reg.creates)
	}
	if cur, _ := f.emu.DeviceSecret(regPK, regDN); cur != stored {
		t.Error("the repeat call changed the platform's secret")
	}

	// A device loaded into Vault beforehand (e.g. by signerctl import).
	other := secrets.DeviceID{ProductKey: regPK, DeviceName: "imported-01"}
	f.reg.devices[other] = "imported-secret-0123456789abcdef"
	f.emu.AllowRegistration(regPK, "imported-01")
	if _, err := f.register("imported-01"); status.Code(err) != codes.AlreadyExists {
		t.Errorf("imported device: %v, want ALREADY_EXISTS", err)
	}
	if n := f.pf.calls.Load(); n != 1 {
		t.Errorf("%d platform calls, want still 1", n)
	}
	noSecretsIn(t, "the error", status.Convert(err).Message(), stored)
}

// TestRegisterDeviceConcurrent fires many calls for one device at once:
// the platform is called once, exactly one call succeeds and the others
// get ALREADY_EXISTS.
func TestRegisterDeviceConcurrent(t *testing.T) {
	f := newReg(t, service.RegistrationConfig{})
	// Hold the platform's answer so that every call joins the flight.
	f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: 200 * time.Millisecond, Times: 1})
	const n = 25
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = f.register(regDN) })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.AlreadyExists:
		default:
			t.Errorf("call %d: %v", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d calls succeeded, want exactly 1", ok)
	}
	if calls, reqs := f.pf.calls.Load(), len(f.registerRequests()); calls != 1 || reqs != 1 {
		t.Errorf("%d platform calls (%d requests), want 1", calls, reqs)
	}
	if f.reg.creates != 1 {
		t.Errorf("%d writes, want 1", f.reg.creates)
	}
	issued, _ := f.emu.DeviceSecret(regPK, regDN)
	if got, _ := f.reg.secret(secrets.DeviceID{ProductKey: regPK, DeviceName: regDN}); got != issued {
		t.Error("stored secret is not the platform's newest")
	}
}

// TestRegisterDeviceCASConflict lets another writer store a secret
// between the check and the write: the call gets ALREADY_EXISTS, the other
// writer's secret stays, and the issued secret appears nowhere.
func TestRegisterDeviceCASConflict(t *testing.T) {
	f := newReg(t, service.RegistrationConfig{})
	id := secrets.DeviceID{ProductKey: regPK, DeviceName: regDN}
	const theirs = "written-by-someone-else-01234567"
	f.pf.after = func() {
		f.reg.mu.Lock()
		f.reg.devices[id] = theirs
		f.reg.mu.Unlock()
	}
	_, err := f.register(regDN)
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("RegisterDevice = %v, want ALREADY_EXISTS", err)
	}
	if got, _ := f.reg.secret(id); got != theirs {
		t.Error("the other writer's secret was replaced")
	}
	issued, _ := f.emu.DeviceSecret(regPK, regDN)
	if !strings.Contains(f.logs.String(), "appeared in Vault while it was being registered") {
		t.Errorf("no warning about the conflict:\n%s", f.logs)
	}
	noSecretsIn(t, "the logs", f.logs.String(), issued, theirs, regProductSecret)
	noSecretsIn(t, "the error", err.Error(), issued, theirs)
	if len(f.reg.forgotten) != 0 {
		t.Error("a failed registration invalidated the cache")
	}
}

// TestRegisterDeviceStoreFails: Vault fails after the platform issued a
// secret. The caller gets UNAVAILABLE, the log says what to do, and a
// retry registers the device with a new secret.
func TestRegisterDeviceStoreFails(t *testing.T) {
	f := newReg(t, service.RegistrationConfig{})
	id := secrets.DeviceID{ProductKey: regPK, DeviceName: regDN}
	var fail atomic.Bool
	fail.Store(true)
	f.reg.beforeCreate = func(secrets.DeviceID) error {
		if fail.Load() {
			return fmt.Errorf("device %s: %w: connection refused", id, secrets.ErrUnavailable)
		}
		return nil
	}
	_, err := f.register(regDN)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("RegisterDevice = %v, want UNAVAILABLE", err)
	}
	lost, _ := f.emu.DeviceSecret(regPK, regDN)
	if !strings.Contains(f.logs.String(), "Call RegisterDevice again") {
		t.Errorf("the log does not say what to do:\n%s", f.logs)
	}
	fail.Store(false)
	if _, err := f.register(regDN); err != nil {
		t.Fatalf("retry: %v", err)
	}
	issued, _ := f.emu.DeviceSecret(regPK, regDN)
	if got, _ := f.reg.secret(id); got != issued || issued == lost {
		t.Error("the retry did not store the platform's new secret")
	}
	noSecretsIn(t, "the logs", f.logs.String(), lost, issued, regProductSecret)
}

// TestRegisterDeviceCallerGivesUp: the caller's deadline passes while the
// platform is slow; the flight still stores the issued secret.
func TestRegisterDeviceCallerGivesUp(t *testing.T) {
	f := newReg(t, service.RegistrationConfig{})
	id := secrets.DeviceID{ProductKey: regPK, DeviceName: regDN}
	f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultDelay, Delay: 300 * time.Millisecond, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.svc.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: regPK, DeviceName: regDN})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("RegisterDevice = %v, want DEADLINE_EXCEEDED", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := f.reg.secret(id); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the issued secret was never stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
	issued, _ := f.emu.DeviceSecret(regPK, regDN)
	if got, _ := f.reg.secret(id); got != issued {
		t.Error("stored secret is not the platform's")
	}
	if _, err := f.register(regDN); status.Code(err) != codes.AlreadyExists {
		t.Errorf("retry = %v, want ALREADY_EXISTS", err)
	}
}

func TestRegisterDeviceErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *regFixture)
		dn       string
		wantCode codes.Code
		wantMsg  string
		// wantPlatform is the number of platform calls expected.
		wantPlatform int64
	}{
		{name: "no ProductSecret", setup: func(f *regFixture) { delete(f.reg.products, regPK) },
			wantCode: codes.FailedPrecondition, wantMsg: "vault iot/data/products/" + regPK + " field productSecret"},
		{name: "empty ProductSecret", setup: func(f *regFixture) { f.reg.products[regPK] = "" },
			wantCode: codes.FailedPrecondition, wantMsg: "no usable ProductSecret"},
		{name: "Vault policy lacks registration", setup: func(f *regFixture) { f.reg.products[regPK] = "denied" },
			wantCode: codes.FailedPrecondition, wantMsg: "policy-registration.hcl"},
		{name: "wrong ProductSecret", setup: func(f *regFixture) { f.reg.products[regPK] = "not-the-platforms-0123456789" },
			wantCode: codes.FailedPrecondition, wantMsg: "does not match", wantPlatform: 1},
		{name: "device not pre-registered", dn: "unknown-device-01",
			wantCode: codes.NotFound, wantMsg: "add it to the product", wantPlatform: 1},
		{name: "device already activated", setup: func(f *regFixture) { f.emu.Activate(regPK, regDN) },
			wantCode: codes.FailedPrecondition, wantMsg: "ResetThing", wantPlatform: 1},
		{name: "device not found (code 6100)", setup: func(f *regFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 6100, Message: "device not exist"})
		}, wantCode: codes.NotFound, wantPlatform: 1},
		{name: "platform unreachable", setup: func(f *regFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultHandshakeFailure})
		}, wantCode: codes.Unavailable, wantMsg: "retry later", wantPlatform: 1},
		{name: "platform answers 503", setup: func(f *regFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultHTTPStatus, Status: 503})
		}, wantCode: codes.Aborted, wantMsg: "REGISTRATION_OUTCOME_UNKNOWN", wantPlatform: 1},
		{name: "platform answers without a secret", setup: func(f *regFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultMissingFields})
		}, wantCode: codes.Aborted, wantMsg: "REGISTRATION_OUTCOME_UNKNOWN", wantPlatform: 1},
		{name: "platform refuses the sign with code 400", setup: func(f *regFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 400, Message: "request error"})
		}, wantCode: codes.FailedPrecondition, wantMsg: "vault iot/data/products/" + regPK + " field productSecret", wantPlatform: 1},
		{name: "platform rejects a parameter", setup: func(f *regFixture) {
			f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: 460, Message: "request parameter error"})
		}, wantCode: codes.InvalidArgument, wantMsg: "request parameter error", wantPlatform: 1},
		{name: "Transit product", setup: func(*regFixture) {},
			wantCode: codes.FailedPrecondition, wantMsg: "product " + regPK + " keeps its device secrets in Vault Transit; RegisterDevice stores secrets in Vault KV only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []service.Option
			if tc.name == "Transit product" {
				opts = append(opts, service.WithProducts(&signing.Products{Products: map[string]signing.Product{regPK: {Transit: true}}}))
			}
			f := newReg(t, service.RegistrationConfig{}, opts...)
			if tc.setup != nil {
				tc.setup(f)
			}
			dn := regDN
			if tc.dn != "" {
				dn = tc.dn
			}
			before, _ := f.emu.DeviceSecret(regPK, regDN)
			_, err := f.register(dn)
			if status.Code(err) != tc.wantCode || !strings.Contains(status.Convert(err).Message(), tc.wantMsg) {
				t.Fatalf("RegisterDevice = %v, want %v containing %q", err, tc.wantCode, tc.wantMsg)
			}
			if n := f.pf.calls.Load(); n != tc.wantPlatform {
				t.Errorf("%d platform calls, want %d", n, tc.wantPlatform)
			}
			if f.reg.creates != 0 || len(f.reg.devices) != 0 {
				t.Errorf("a failed registration wrote to the registry")
			}
			after, _ := f.emu.DeviceSecret(regPK, regDN)
			noSecretsIn(t, "the error", err.Error(), before, after, regProductSecret, "not-the-platforms-0123456789")
			noSecretsIn(t, "the logs", f.logs.String(), before, after, regProductSecret, "not-the-platforms-0123456789")
		})
	}
}

// TestRegisterDeviceOutcomeUnknown: the platform processed the
// registration (and issued a secret) but its answer was lost. signerd does
// not register again (the platform saw one registration), answers ABORTED
// with the reason REGISTRATION_OUTCOME_UNKNOWN, logs it at ERROR, counts
// it, and leaves Vault empty.
func TestRegisterDeviceOutcomeUnknown(t *testing.T) {
	m := metrics.New()
	f := newReg(t, service.RegistrationConfig{})
	f.svc = service.New(f.reg, service.WithAuthorizer(auth.AllowAll()),
		service.WithClock(f.clock.now),
		service.WithLogger(slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		service.WithRegistration(&countingRegistrar{c: regClient(t, f.emu, m)}, f.reg, service.RegistrationConfig{Forget: f.reg.forget}))
	f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultDropAnswer})

	_, err := f.register(regDN)
	st := status.Convert(err)
	if st.Code() != codes.Aborted || !strings.Contains(st.Message(), "REGISTRATION_OUTCOME_UNKNOWN") ||
		!strings.Contains(st.Message(), "ResetThing") || !strings.Contains(st.Message(), regPK+"/"+regDN) {
		t.Fatalf("RegisterDevice = %v, want ABORTED REGISTRATION_OUTCOME_UNKNOWN naming the device and the reset", err)
	}
	if ei := errorInfo(err); ei.GetReason() != service.ReasonOutcomeUnknown || ei.GetDomain() != "signerd" {
		t.Errorf("ErrorInfo %v, want reason %s", ei, service.ReasonOutcomeUnknown)
	}
	reqs := f.registerRequests()
	if len(reqs) != 1 || !reqs[0].Accepted() || f.emu.Calls() != 1 {
		t.Errorf("the platform saw %d requests (%+v), want exactly one, processed", f.emu.Calls(), reqs)
	}
	if got := counterValue(t, m, "signerd_platform_registration_outcome_unknown_total"); got != 1 {
		t.Errorf("signerd_platform_registration_outcome_unknown_total = %v, want 1", got)
	}
	if f.reg.creates != 0 || len(f.reg.devices) != 0 {
		t.Error("Vault was written without a secret to write")
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"level":"ERROR","msg":"registration outcome unknown`) || !strings.Contains(logs, `"reason":"REGISTRATION_OUTCOME_UNKNOWN"`) {
		t.Errorf("no ERROR log line with the reason:\n%s", logs)
	}
	issued, _ := f.emu.DeviceSecret(regPK, regDN)
	noSecretsIn(t, "the error", err.Error(), issued, regProductSecret, reqs[0].Form.Get("sign"))
	noSecretsIn(t, "the logs", logs, issued, regProductSecret, reqs[0].Form.Get("sign"))
}

// counterValue returns the value of the counter name in m's registry.
func counterValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

func TestRegisterDeviceValidation(t *testing.T) {
	f := newReg(t, service.RegistrationConfig{})
	_, err := f.svc.RegisterDevice(context.Background(), &signerv1.RegisterDeviceRequest{ProductKey: "a1|x", DeviceName: "ab"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("RegisterDevice = %v, want INVALID_ARGUMENT", err)
	}
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if strings.Join(fields, ",") != "product_key,device_name" {
		t.Errorf("violations %v, want product_key and device_name", fields)
	}
	if f.pf.calls.Load() != 0 {
		t.Error("an invalid request reached the platform")
	}
}

func TestRegisterDeviceNotEnabled(t *testing.T) {
	svc := service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll()))
	_, err := svc.RegisterDevice(context.Background(), &signerv1.RegisterDeviceRequest{ProductKey: regPK, DeviceName: regDN})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("RegisterDevice without registration = %v, want UNIMPLEMENTED", err)
	}
}

// TestRegisterDeviceDistinctRandoms checks that every registration form
// carries its own random.
func TestRegisterDeviceDistinctRandoms(t *testing.T) {
	f := newReg(t, service.RegistrationConfig{})
	seen := map[string]bool{}
	for i := range 5 {
		dn := fmt.Sprintf("rand-device-%02d", i)
		f.emu.AllowRegistration(regPK, dn)
		if _, err := f.register(dn); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range f.registerRequests() {
		seen[r.Form.Get("random")] = true
	}
	if len(seen) != 5 {
		t.Errorf("%d distinct randoms in 5 registrations", len(seen))
	}
}
