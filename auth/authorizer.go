package auth

import (
	"context"

	"github.com/signerd/signerd/device"
)

// Device names one device by its productKey and deviceName: the identity
// every layer shares, so that a denial, an audit record and a store lookup
// name a device the same way.
type Device = device.ID

// Authorizer is the one authorization decision of signerd: the service asks
// it about every device a call touches (the request's device, each batch
// and stream item, each sub-device, the device to register), before any
// secret is looked up. It decides on names alone, so that "not yours" and
// "does not exist" cannot be told apart. A refusal is a *Denial.
type Authorizer interface {
	// AuthorizeCall decides whether the caller in ctx may call rpc at
	// all: the gate of the RPCs that name their devices only inside the
	// request (batch and stream), whose items AuthorizeDevice then decides.
	AuthorizeCall(ctx context.Context, rpc string) error
	// AuthorizeDevice decides whether the caller in ctx may call rpc for
	// dev.
	AuthorizeDevice(ctx context.Context, rpc string, dev Device) error
	// AuthorizeSubDevice decides whether the caller in ctx may have the
	// SignSubDeviceLogin answer for sub, logged in by gateway.
	AuthorizeSubDevice(ctx context.Context, gateway, sub Device) error
}

// Denial is a refusal by the Authorizer. Its Error is the one answer a
// caller gets ("permission denied", errors.Is ErrDenied); its Reason, for
// the audit record only, says which rule refused whom.
type Denial struct {
	Caller string // Identity.String(), or "unauthenticated"
	RPC    string
	// Device is the refused device; zero when the whole call was refused
	// (AuthorizeCall).
	Device Device
	// Gateway is set for a refused sub-device.
	Gateway Device
	Reason  string
}

func (d *Denial) Error() string { return ErrDenied.Error() }

// Is makes every Denial errors.Is ErrDenied.
func (d *Denial) Is(target error) bool { return target == ErrDenied }

// Denials returns every *Denial in err's tree, in order.
func Denials(err error) []*Denial {
	var out []*Denial
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if d, ok := e.(*Denial); ok {
			out = append(out, d)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// NewAuthorizer returns the Authorizer of policy p for the identity that
// authentication put in the context. An anonymous caller (admitted by
// -dev's Authenticator only) is allowed everything; a context without an
// identity is refused.
func NewAuthorizer(p *Policy) Authorizer {
	if p == nil {
		panic("auth.NewAuthorizer: nil policy")
	}
	return policyAuthorizer{p}
}

type policyAuthorizer struct{ p *Policy }

func caller(ctx context.Context) (Identity, string, bool) {
	id, ok := FromContext(ctx)
	if !ok {
		return id, "unauthenticated", false
	}
	return id, id.String(), true
}

func (a policyAuthorizer) AuthorizeCall(ctx context.Context, rpc string) error {
	id, name, ok := caller(ctx)
	if ok && (id.Kind == KindAnonymous || a.p.MayCall(id, rpc)) {
		return nil
	}
	return &Denial{Caller: name, RPC: rpc, Reason: "policy: " + name + " may not call " + rpc}
}

func (a policyAuthorizer) AuthorizeDevice(ctx context.Context, rpc string, dev Device) error {
	id, name, ok := caller(ctx)
	if ok && (id.Kind == KindAnonymous || a.p.AuthorizeID(id, rpc, dev) == nil) {
		return nil
	}
	return &Denial{Caller: name, RPC: rpc, Device: dev,
		Reason: "policy: " + name + " may not call " + rpc + " for this device"}
}

func (a policyAuthorizer) AuthorizeSubDevice(ctx context.Context, gateway, sub Device) error {
	id, name, ok := caller(ctx)
	// Gateways and their topology are Alibaba's only.
	if ok && gateway.Platform == "" && sub.Platform == "" && (id.Kind == KindAnonymous ||
		a.p.AuthorizeSubDevice(id, gateway.ProductKey, gateway.DeviceName, sub.ProductKey, sub.DeviceName) == nil) {
		return nil
	}
	return &Denial{Caller: name, RPC: rpcSubDeviceLogin, Device: sub, Gateway: gateway,
		Reason: "policy: " + name + " may not sign sub-device " + sub.String() + " for gateway " + gateway.String()}
}

// AllowAll is an Authorizer that allows every call: for tests that say so,
// never for a server.
func AllowAll() Authorizer { return allowAll{} }

type allowAll struct{}

func (allowAll) AuthorizeCall(context.Context, string) error              { return nil }
func (allowAll) AuthorizeDevice(context.Context, string, Device) error    { return nil }
func (allowAll) AuthorizeSubDevice(context.Context, Device, Device) error { return nil }
