package main

import (
	"context"
	"strings"
	"syscall"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/internal/vaulttest"
	"github.com/signerd/signerd/internal/vectors"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// TestE2ETransit runs signerd with every product in Transit mode against a
// real Vault holding the secrets only as imported Transit keys (KV is
// empty): the hmacsha256 vectors come out byte-identical over both
// transports, and other methods get FAILED_PRECONDITION saying why.
func TestE2ETransit(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.StartT(t)
	cfg := vault.DefaultConfig()
	cfg.Address = srv.Addr
	client, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(srv.RootToken)
	tr, err := secrets.NewTransit(client, secrets.TransitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var sha256Cases, otherCases []vectors.Case
	for _, c := range vectors.MustLoad() {
		if c.Input.SignMethod == "hmacsha256" {
			id := secrets.DeviceID{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName}
			if err := tr.Import(ctx, id, []byte(c.Input.DeviceSecret)); err != nil {
				t.Fatal(err)
			}
			sha256Cases = append(sha256Cases, c)
		} else {
			otherCases = append(otherCases, c)
		}
	}

	tokenFile := writeFile(t, "vault-token", srv.RootToken)
	products := writeFile(t, "products.yaml", "defaults:\n  transit: true\n")
	tc := newTLSFixture(t)
	p := startSignerd(t, append(tc.args, "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-metrics-addr", "off",
		"-vault-addr", srv.Addr, "-vault-token-file", tokenFile, "-products", products)...)
	p.tls = tc.backend
	grpcc := p.grpcClient(t)

	for i, c := range sha256Cases {
		req := vectorRequest(t, c)
		g, err := grpcc.SignMqttConnect(ctx, req)
		if err != nil {
			t.Fatalf("case %d: gRPC: %v", i, err)
		}
		r, err := p.postREST(t, c.Input.ProductKey, c.Input.DeviceName, restBody(t, req))
		if err != nil {
			t.Fatalf("case %d: REST: %v", i, err)
		}
		for transport, got := range map[string]*signerv1.SignMqttConnectResponse{"gRPC": g, "REST": r} {
			if got.GetPassword() != c.Expect.Password || got.GetClientId() != c.Expect.ClientID || got.GetUsername() != c.Expect.Username {
				t.Errorf("case %d: %s answer = %q %q %q, want %q %q %q", i, transport,
					got.GetClientId(), got.GetUsername(), got.GetPassword(), c.Expect.ClientID, c.Expect.Username, c.Expect.Password)
			}
		}
	}
	for _, c := range otherCases[:3] {
		_, err := grpcc.SignMqttConnect(ctx, vectorRequest(t, c))
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "SIGN_METHOD_HMAC_SHA256") {
			t.Errorf("%s in Transit mode = %v, want FAILED_PRECONDITION naming SIGN_METHOD_HMAC_SHA256", c.Input.SignMethod, err)
		}
	}
	p.stop(t, syscall.SIGTERM)
	logs := p.logs()
	for _, c := range sha256Cases {
		if strings.Contains(logs, c.Input.DeviceSecret) || strings.Contains(logs, c.Expect.Password) {
			t.Errorf("logs contain a secret or password of %s/%s", c.Input.ProductKey, c.Input.DeviceName)
		}
	}
}
