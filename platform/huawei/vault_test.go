package huawei

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signerd/signerd/platform/internal/platformtest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// TestSignWithVault signs with a secret read from a real Vault at the
// default location, through signerd's shipped Vault policy.
func TestSignWithVault(t *testing.T) {
	c, err := Module{}.Configure([]byte(`{"host":"` + testHost + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	keys := platformtest.VaultKeys(t, c,
		platformtest.Entry{Path: "huawei/devices/" + testID, Data: map[string]any{"secret": testSecret}},
	)
	s := c.Signers[0]
	ctx := context.Background()

	// The documentation's worked example: secret 12345678 at 2025041401.
	got, err := s.Sign(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: testID}, time.Date(2025, 4, 14, 1, 0, 0, 0, time.UTC), keys)
	if err != nil || got.Password != "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a" || got.ClientID != testID+"_0_1_2025041401" {
		t.Fatalf("Sign = %+v, %v; want the documented example", got, err)
	}

	_, err = s.Sign(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: "other-device"}, time.Unix(1700000000, 0), keys)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Sign for a device without a secret: %v, want ErrNotFound", err)
	}
}
