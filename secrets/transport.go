package secrets

import (
	"net/http"

	vault "github.com/hashicorp/vault/api"
)

// VaultTransport is vault/api's default transport, with the TLS settings it
// reads from VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_SKIP_VERIFY…, keeping
// up to idle connections to Vault open between requests. vault/api keeps
// GOMAXPROCS+1 of them: concurrent requests beyond that (cache misses in
// signerd, import workers in signerctl) would each open a new connection,
// with a TLS handshake, and leave it in TIME_WAIT. Both commands get their
// transport here, so that instrumenting or sizing it keeps the standard
// TLS configuration.
func VaultTransport(idle int) http.RoundTripper {
	rt := vault.DefaultConfig().HttpClient.Transport
	if t, ok := rt.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = idle
		t.MaxIdleConns = max(t.MaxIdleConns, idle)
	}
	return rt
}
