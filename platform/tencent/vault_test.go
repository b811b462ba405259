package tencent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/platform/internal/platformtest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// TestSignWithVault signs with keys read from a real Vault at the default
// locations, through signerd's shipped Vault policy.
func TestSignWithVault(t *testing.T) {
	c, err := Module{}.Configure(nil)
	if err != nil {
		t.Fatal(err)
	}
	const notBase64 = "not base64!"
	keys := platformtest.VaultKeys(t, c,
		platformtest.Entry{Path: "tencent/" + testPID + "/" + testName, Data: map[string]any{"devicePsk": testPsk}},
		platformtest.Entry{Path: "tencent/" + testPID + "/dev-bad", Data: map[string]any{"devicePsk": notBase64}},
	)
	s := c.Signers[0].(*signer)
	s.connID = func() (string, error) { return "aB3dE", nil }
	ctx := context.Background()
	now := time.Unix(1700000000, 0)

	got, err := s.Sign(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: testName}, now, keys)
	// The signing package's example, whose key this is.
	if err != nil || got.Password != "8c276bd9387057ff84db5367d3cdf77fb56799dd139041520e539e24d12e6b73;hmacsha256" {
		t.Fatalf("Sign = %+v, %v; want the example's password", got, err)
	}

	_, err = s.Sign(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: "dev-bad"}, now, keys)
	if !errors.Is(err, secrets.ErrUnusable) || !strings.Contains(err.Error(), "tencent/"+testPID+"/dev-bad") || strings.Contains(err.Error(), notBase64) {
		t.Errorf("Sign with a key that is not base64: %v; want ErrUnusable naming the path, not the value", err)
	}

	_, err = s.Sign(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: testPID, DeviceName: "dev-002"}, now, keys)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Sign for a device without a key: %v, want ErrNotFound", err)
	}
}
