package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/server"
)

func TestSubDeviceAuthorizer(t *testing.T) {
	p, err := auth.ParsePolicy([]byte(`deviceRpcs: [SignMqttConnect, SignSubDeviceLogin]
gateways:
  - gateway: a1GwPK/gw-0001
    subDevices: ["a1SubPK/*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	authz := server.SubDeviceAuthorizer(p)
	gw := auth.WithIdentity(context.Background(), auth.Identity{Kind: auth.KindDevice, ProductKey: "a1GwPK", DeviceName: "gw-0001", Method: "mtls"})
	if err := authz(gw, "a1GwPK", "gw-0001", "a1SubPK", "sub-0001"); err != nil {
		t.Errorf("assigned sub-device: %v", err)
	}
	if err := authz(gw, "a1GwPK", "gw-0001", "a1OtherPK", "sub-0001"); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("unassigned sub-device: %v, want ErrDenied", err)
	}
	if err := authz(context.Background(), "a1GwPK", "gw-0001", "a1SubPK", "sub-0001"); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("no identity: %v, want ErrDenied", err)
	}
	anon := auth.WithIdentity(context.Background(), auth.Identity{Kind: auth.KindAnonymous, Method: "none"})
	if err := authz(anon, "a1GwPK", "gw-0001", "a1OtherPK", "sub-0001"); err != nil {
		t.Errorf("anonymous (-dev): %v, want allowed", err)
	}
}
