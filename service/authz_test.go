package service_test

import (
	"context"

	"github.com/signerd/signerd/auth"
)

// fakeAuthz is an auth.Authorizer of functions; a nil one allows.
type fakeAuthz struct {
	call   func(ctx context.Context, rpc string) error
	device func(ctx context.Context, rpc string, dev auth.Device) error
	sub    func(ctx context.Context, gw, sub auth.Device) error
}

func (f fakeAuthz) AuthorizeCall(ctx context.Context, rpc string) error {
	if f.call == nil {
		return nil
	}
	return f.call(ctx, rpc)
}

func (f fakeAuthz) AuthorizeDevice(ctx context.Context, rpc string, dev auth.Device) error {
	if f.device == nil {
		return nil
	}
	return f.device(ctx, rpc, dev)
}

func (f fakeAuthz) AuthorizeSubDevice(ctx context.Context, gw, sub auth.Device) error {
	if f.sub == nil {
		return nil
	}
	return f.sub(ctx, gw, sub)
}
