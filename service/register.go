package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signerd/signerd/device"
	platform "github.com/signerd/signerd/platform/aliyun"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// Registrar posts a signed dynamic registration form to the platform;
// *platform.Client is the production one.
type Registrar interface {
	RegisterDevice(ctx context.Context, region string, form url.Values) (platform.Registration, error)
}

// Registry is where registration reads ProductSecrets and creates device
// secrets; *secrets.Registry is the production one.
type Registry interface {
	// ProductSecret returns the product's ProductSecret (errors wrap
	// secrets.ErrNotFound or secrets.ErrUnusable when there is none).
	ProductSecret(ctx context.Context, productKey string) (secrets.Secret, error)
	// ProductLocation names where the ProductSecret is kept, for messages.
	ProductLocation(productKey string) string
	// CheckAbsent returns nil if the device has no secret, or an error
	// wrapping secrets.ErrExists.
	CheckAbsent(ctx context.Context, id secrets.DeviceID) error
	// Create stores the device's secret only if it has none (errors wrap
	// secrets.ErrExists otherwise) and returns its version.
	Create(ctx context.Context, id secrets.DeviceID, secret secrets.Secret) (int, error)
}

// RegistrationConfig configures RegisterDevice.
type RegistrationConfig struct {
	// Method signs the registration form; default hmacsha256.
	Method signing.Method
	// Timeout bounds the Vault reads and the platform call of one
	// registration; default 30 s. Storing the issued secret has a bound of
	// its own (StoreTimeout), so that a slow platform cannot leave an
	// issued secret unstored.
	Timeout time.Duration
	// StoreTimeout bounds storing the issued secret; default 10 s.
	StoreTimeout time.Duration
	// Forget, if set, is told about each device whose secret was just
	// created, so that a cache drops a "not found" it may hold
	// (*secrets.Cache.Forget).
	Forget func(secrets.DeviceID)
	// Random returns the random string of a registration form; default 16
	// characters from crypto/rand.
	Random func() string
}

// Defaults of RegistrationConfig.
const (
	DefaultRegistrationTimeout = 30 * time.Second
	DefaultStoreTimeout        = 10 * time.Second
	registrationRandomLen      = 16
)

// WithRegistration enables RegisterDevice: ProductSecrets are read from
// and new device secrets created in reg, registrations are posted through
// p.
func WithRegistration(p Registrar, reg Registry, cfg RegistrationConfig) Option {
	return func(s *Server) {
		if cfg.Method == signing.MethodUnspecified {
			cfg.Method = signing.MethodHMACSHA256
		}
		if cfg.Timeout <= 0 {
			cfg.Timeout = DefaultRegistrationTimeout
		}
		if cfg.StoreTimeout <= 0 {
			cfg.StoreTimeout = DefaultStoreTimeout
		}
		if cfg.Random == nil {
			cfg.Random = func() string { return rand.Text()[:registrationRandomLen] }
		}
		s.registrar = &registrar{platform: p, reg: reg, cfg: cfg}
	}
}

// registrar holds RegisterDevice's state: one registration per device at
// a time.
type registrar struct {
	platform Registrar
	reg      Registry
	cfg      RegistrationConfig
	group    singleflight.Group
	calls    atomic.Uint64
}

// registered is the outcome of one registration flight.
type registered struct {
	// call is the id of the call that started the flight: it alone is
	// answered with success; the calls that joined it get ALREADY_EXISTS.
	call uint64
	at   time.Time
}

// RegisterDevice implements signerv1.SignerServiceServer.
//
// The flow: validate; if Vault has a secret for the device, ALREADY_EXISTS
// without calling the platform; read the product's ProductSecret (missing:
// FAILED_PRECONDITION naming where it belongs); sign and post the
// registration; create the device's secret in Vault with check-and-set
// (cas=0), so an existing secret is never replaced; answer with the
// device's identity only. The DeviceSecret is in no answer, error or log
// record.
//
// Concurrent calls for one device share one flight, so the platform is
// called once: the call that started it gets the answer, the others
// ALREADY_EXISTS (the device is registered, by another call). A caller
// that gives up does not stop a flight that reached the platform: the
// issued secret is still stored, and a retry gets ALREADY_EXISTS.
func (s *Server) RegisterDevice(ctx context.Context, req *signerv1.RegisterDeviceRequest) (_ *signerv1.RegisterDeviceResponse, err error) {
	defer func() { reportDevice(ctx, req.GetProductKey(), req.GetDeviceName(), err) }()
	if err := s.authorizeDevice(ctx, "RegisterDevice", req.GetProductKey(), req.GetDeviceName()); err != nil {
		return nil, err
	}
	r := s.registrar
	if r == nil {
		return nil, status.Error(codes.Unimplemented, "RegisterDevice is not enabled on this server (it needs Vault)")
	}
	var vs violations
	vs.add("product_key", device.ValidateProductKey(req.GetProductKey()))
	vs.add("device_name", device.ValidateDeviceName(req.GetDeviceName()))
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	id := secrets.DeviceID{ProductKey: req.GetProductKey(), DeviceName: req.GetDeviceName()}
	product := s.products.Lookup(id.ProductKey)
	if err := s.keys.InStore(id.ProductKey); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v; RegisterDevice stores secrets in Vault KV only", err)
	}

	call := r.calls.Add(1)
	ch := r.group.DoChan(id.String(), func() (any, error) {
		// Detached from the caller: its cancellation must neither fail
		// the calls sharing the flight nor strand an issued secret.
		return s.register(context.WithoutCancel(ctx), id, product, call)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, s.registerStatus(ctx, id, res.Err)
		}
		out := res.Val.(registered)
		if out.call != call {
			return nil, status.Errorf(codes.AlreadyExists, "device %s was registered by a concurrent call", id)
		}
		return &signerv1.RegisterDeviceResponse{
			ProductKey:   id.ProductKey,
			DeviceName:   id.DeviceName,
			RegisteredAt: timestamppb.New(out.at),
		}, nil
	case <-ctx.Done():
		return nil, toStatus(ctx, s.log, ctx.Err())
	}
}

// errProductSecret marks a ProductSecret that cannot be had.
type errProductSecret struct{ err error }

func (e errProductSecret) Error() string { return e.err.Error() }
func (e errProductSecret) Unwrap() error { return e.err }

// register is one registration flight, started by call.
func (s *Server) register(ctx context.Context, id secrets.DeviceID, product signing.Product, call uint64) (registered, error) {
	r := s.registrar
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if err := r.reg.CheckAbsent(rctx, id); err != nil {
		return registered{}, err
	}
	ps, err := r.reg.ProductSecret(rctx, id.ProductKey)
	if err != nil {
		return registered{}, errProductSecret{err}
	}
	form, err := signing.SignRegister(signing.RegisterRequest{
		ProductKey: id.ProductKey, DeviceName: id.DeviceName, Random: r.cfg.Random(), Method: r.cfg.Method,
	}, signing.ProductSecretMAC(ps.Bytes()))
	if err != nil {
		return registered{}, err
	}
	region := product.Region
	if region == "" {
		region = signing.DefaultRegion
	}
	reg, err := r.platform.RegisterDevice(rctx, region, form)
	if err != nil {
		return registered{}, err
	}

	// The platform has issued the secret (and superseded any earlier one):
	// store it whatever became of the caller and of rctx.
	wctx, wcancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	defer wcancel()
	version, err := r.reg.Create(wctx, id, secrets.NewSecret([]byte(reg.DeviceSecret)))
	switch {
	case errors.Is(err, secrets.ErrExists):
		s.log.WarnContext(ctx, "a secret for the device appeared in Vault while it was being registered; the stored one was kept and the issued one discarded. "+
			"If it was stored by another registration of the device, only the secret the platform issued last is valid: check the device with PreVerify",
			"product_key", id.ProductKey, "device_name", id.DeviceName, "error", err)
		return registered{}, err
	case err != nil:
		s.log.ErrorContext(ctx, "the platform issued a secret for the device, but storing it in Vault failed; the secret is discarded. "+
			"Call RegisterDevice again: a device that has not connected yet gets a new secret",
			"product_key", id.ProductKey, "device_name", id.DeviceName, "error", err)
		return registered{}, err
	}
	if r.cfg.Forget != nil {
		r.cfg.Forget(id)
	}
	s.log.InfoContext(ctx, "device registered", "product_key", id.ProductKey, "device_name", id.DeviceName,
		"vault_version", version)
	return registered{call: call, at: s.now()}, nil
}

// registerStatus maps a registration failure to the caller's status. The
// failures particular to registration are answered here; the rest go
// through toStatus.
func (s *Server) registerStatus(ctx context.Context, id secrets.DeviceID, err error) error {
	var pse errProductSecret
	var fe *device.FieldError
	var pe *platform.Error
	switch {
	case errors.As(err, &pse) && (errors.Is(err, secrets.ErrNotFound) || errors.Is(err, secrets.ErrUnusable)):
		return status.Errorf(codes.FailedPrecondition,
			"product %s has no usable ProductSecret: store it at %s to register its devices", id.ProductKey, s.registrar.reg.ProductLocation(id.ProductKey))
	case errors.Is(err, secrets.ErrPermission):
		s.log.ErrorContext(ctx, "signerd's Vault token may not register devices: grant it deploy/vault/policy-registration.hcl", "error", err)
		return status.Error(codes.FailedPrecondition,
			"signerd's Vault policy does not allow dynamic registration (deploy/vault/policy-registration.hcl is needed)")
	case errors.As(err, &pe) && (errors.Is(err, platform.ErrSignatureMismatch) || errors.Is(err, platform.ErrRequestRefused)):
		// A refusal of the sign (401, or 400 as the endpoint answers it):
		// the ProductSecret is wrong, and a retry cannot fix that.
		s.log.ErrorContext(ctx, "the platform rejected the registration's sign: the ProductSecret in Vault does not match the platform's",
			"product_key", id.ProductKey, "error", err)
		reason := ReasonSignatureMismatch
		if errors.Is(err, platform.ErrRequestRefused) {
			reason = ReasonRequestRefused
		}
		return platformStatus(codes.FailedPrecondition, reason, fmt.Sprintf(
			"the platform rejected the registration's sign%s: the ProductSecret at %s does not match the platform's",
			platformSaid(pe), s.registrar.reg.ProductLocation(id.ProductKey)), pe)
	case errors.As(err, &pe) && errors.Is(err, platform.ErrDeviceNotFound):
		return platformStatus(codes.NotFound, ReasonDeviceNotFound, fmt.Sprintf(
			"the platform has no device %s to register%s: add it to the product on the platform first (dynamic registration needs pre-registered devices)",
			id, platformSaid(pe)), pe)
	case errors.As(err, &pe) && errors.Is(err, platform.ErrOutcomeUnknown):
		// The platform may have issued a secret that is now lost, and may
		// count the device as activated: no retry can recover it, a
		// person must look. Loud, and audited through the message.
		s.log.ErrorContext(ctx, "registration outcome unknown: the platform may have registered the device and issued a secret that is lost; "+
			"check the device on the platform and reset it there (ResetThing) before registering it again",
			"product_key", id.ProductKey, "device_name", id.DeviceName, "reason", ReasonOutcomeUnknown, "error", err)
		return platformStatus(codes.Aborted, ReasonOutcomeUnknown, fmt.Sprintf(
			"%s: the platform may now have registered device %s, but its answer was lost%s; nothing was stored in Vault. "+
				"If RegisterDevice is then refused as already activated, reset the device on the platform (ResetThing) and register it again",
			ReasonOutcomeUnknown, id, platformSaid(pe)), pe)
	case errors.As(err, &fe):
		// The ProductSecret cannot sign, e.g. too short for FIPS 140-only mode.
		return status.Errorf(codes.FailedPrecondition, "the ProductSecret of product %s cannot sign the registration: %s: %s", id.ProductKey, fe.Field, fe.Reason)
	}
	return toStatus(ctx, s.log, err)
}
