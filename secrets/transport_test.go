package secrets

import (
	"net/http"
	"testing"
)

// TestVaultTransport: the transport is sized as asked and still carries
// vault/api's TLS settings from the environment.
func TestVaultTransport(t *testing.T) {
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	for _, idle := range []int{4, 64, 260} {
		tr, ok := VaultTransport(idle).(*http.Transport)
		if !ok {
			t.Fatalf("VaultTransport(%d) is %T, want *http.Transport", idle, tr)
		}
		if tr.MaxIdleConnsPerHost != idle || tr.MaxIdleConns < idle {
			t.Errorf("VaultTransport(%d): MaxIdleConnsPerHost %d, MaxIdleConns %d", idle, tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
		}
		if tr.TLSClientConfig == nil || !tr.TLSClientConfig.InsecureSkipVerify {
			t.Errorf("VaultTransport(%d) lost VAULT_SKIP_VERIFY", idle)
		}
	}
}
