package onenet

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
		platformtest.Entry{Path: "onenet/" + testPID + "/" + testName, Data: map[string]any{"deviceKey": testPsk}},
		platformtest.Entry{Path: "onenet/" + testPID + "/dev-bad", Data: map[string]any{"deviceKey": notBase64}},
	)
	s := c.Signers[0]
	ctx := context.Background()
	now := time.Unix(1700000000, 0)

	got, err := s.Sign(ctx, &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: testName}, now, keys)
	// The signing package's example, whose key this is.
	if want := "version=2018-10-31&res=products%2FCk2AF9QD2K%2Fdevices%2Fdev-001&et=1700003600&method=sha256&sign=v8DH6OylDZzdfVh7jWt7kWS2zU9IPlll%2BZJPTqhu6fs%3D"; err != nil || got.Password != want {
		t.Fatalf("Sign = %+v, %v; want the example's token", got, err)
	}

	_, err = s.Sign(ctx, &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: "dev-bad"}, now, keys)
	if !errors.Is(err, secrets.ErrUnusable) || !strings.Contains(err.Error(), "onenet/"+testPID+"/dev-bad") || strings.Contains(err.Error(), notBase64) {
		t.Errorf("Sign with a key that is not base64: %v; want ErrUnusable naming the path, not the value", err)
	}

	_, err = s.Sign(ctx, &signerv1.SignOnenetMqttConnectRequest{ProductId: testPID, DeviceName: "dev-002"}, now, keys)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Sign for a device without a key: %v, want ErrNotFound", err)
	}
}
