package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/signerd/signerd/auth"
)

func TestPolicyAuthorizer(t *testing.T) {
	p, err := auth.ParsePolicy([]byte(`deviceRpcs: [SignMqttConnect, SignSubDeviceLogin]
backends:
  - identity: spiffe://example.org/fleet
    products: [a1GwPK]
    rpcs: [SignMqttConnect, BatchSignMqttConnect]
gateways:
  - gateway: a1GwPK/gw-0001
    subDevices: ["a1SubPK/*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := auth.NewAuthorizer(p)
	bg := context.Background()
	gwID := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1GwPK", DeviceName: "gw-0001", Method: "mtls"}
	gwCtx := auth.WithIdentity(bg, gwID)
	fleet := auth.WithIdentity(bg, auth.Identity{Kind: auth.KindBackend, Name: "spiffe://example.org/fleet", Method: "mtls"})
	anon := auth.WithIdentity(bg, auth.Identity{Kind: auth.KindAnonymous, Method: "none"})
	gw := auth.Device{ProductKey: "a1GwPK", DeviceName: "gw-0001"}
	sub := auth.Device{ProductKey: "a1SubPK", DeviceName: "sub-0001"}
	other := auth.Device{ProductKey: "a1OtherPK", DeviceName: "sub-0001"}

	tests := []struct {
		name   string
		decide func() error
		// reason is the denial's; "" means allowed.
		reason string
	}{
		{"device for itself", func() error { return a.AuthorizeDevice(gwCtx, "SignMqttConnect", gw) }, ""},
		{"device for another", func() error { return a.AuthorizeDevice(gwCtx, "SignMqttConnect", sub) },
			"policy: " + gwID.String() + " may not call SignMqttConnect for this device"},
		{"device, RPC not granted", func() error { return a.AuthorizeDevice(gwCtx, "PreVerify", gw) },
			"policy: " + gwID.String() + " may not call PreVerify for this device"},
		{"backend, granted product", func() error { return a.AuthorizeDevice(fleet, "SignMqttConnect", gw) }, ""},
		{"backend, other product", func() error { return a.AuthorizeDevice(fleet, "SignMqttConnect", sub) },
			"policy: backend:spiffe://example.org/fleet may not call SignMqttConnect for this device"},
		{"no identity", func() error { return a.AuthorizeDevice(bg, "SignMqttConnect", gw) },
			"policy: unauthenticated may not call SignMqttConnect for this device"},
		{"anonymous (-dev)", func() error { return a.AuthorizeDevice(anon, "RegisterDevice", other) }, ""},
		{"call granted", func() error { return a.AuthorizeCall(fleet, "BatchSignMqttConnect") }, ""},
		{"call not granted", func() error { return a.AuthorizeCall(fleet, "StreamSignMqttConnect") },
			"policy: backend:spiffe://example.org/fleet may not call StreamSignMqttConnect"},
		{"device calls batch", func() error { return a.AuthorizeCall(gwCtx, "BatchSignMqttConnect") },
			"policy: " + gwID.String() + " may not call BatchSignMqttConnect"},
		{"call, no identity", func() error { return a.AuthorizeCall(bg, "BatchSignMqttConnect") },
			"policy: unauthenticated may not call BatchSignMqttConnect"},
		{"call, anonymous", func() error { return a.AuthorizeCall(anon, "StreamSignMqttConnect") }, ""},
		{"assigned sub-device", func() error { return a.AuthorizeSubDevice(gwCtx, gw, sub) }, ""},
		{"unassigned sub-device", func() error { return a.AuthorizeSubDevice(gwCtx, gw, other) },
			"policy: " + gwID.String() + " may not sign sub-device a1OtherPK/sub-0001 for gateway a1GwPK/gw-0001"},
		{"sub-device, no identity", func() error { return a.AuthorizeSubDevice(bg, gw, sub) },
			"policy: unauthenticated may not sign sub-device a1SubPK/sub-0001 for gateway a1GwPK/gw-0001"},
		{"sub-device, anonymous", func() error { return a.AuthorizeSubDevice(anon, gw, other) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decide()
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			var d *auth.Denial
			if !errors.As(err, &d) || !errors.Is(err, auth.ErrDenied) {
				t.Fatalf("got %v, want a *Denial that is ErrDenied", err)
			}
			if d.Reason != tc.reason || err.Error() != "permission denied" {
				t.Errorf("reason %q, error %q; want %q, \"permission denied\"", d.Reason, err.Error(), tc.reason)
			}
		})
	}
}

func TestDenials(t *testing.T) {
	d1, d2 := &auth.Denial{Reason: "one"}, &auth.Denial{Reason: "two"}
	err := errors.Join(errors.New("other"), d1, fmtWrap(d2))
	ds := auth.Denials(err)
	if len(ds) != 2 || ds[0] != d1 || ds[1] != d2 {
		t.Errorf("Denials = %v, want [d1 d2]", ds)
	}
	if auth.Denials(errors.New("x")) != nil || auth.Denials(nil) != nil {
		t.Error("Denials of an error without one is not empty")
	}
}

type wrapped struct{ err error }

func (w wrapped) Error() string { return "wrapped: " + w.err.Error() }
func (w wrapped) Unwrap() error { return w.err }

func fmtWrap(err error) error { return wrapped{err} }

func TestNilPolicyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewAuthorizer(nil) did not panic")
		}
	}()
	auth.NewAuthorizer(nil)
}
