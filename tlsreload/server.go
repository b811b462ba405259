package tlsreload

import "crypto/tls"

// ServerConfig is the TLS policy of signerd's listeners, gRPC and HTTP
// alike, serving kp's current certificate:
//
//   - TLS 1.2 or later: devices' TLS stacks (mbedTLS in the Link SDK) do
//     1.2, and nothing older is safe.
//   - Cipher suites and key exchanges are Go's defaults: Go keeps them
//     current (it has dropped RSA key exchange and 3DES from them), where
//     a list of our own would go stale.
//   - A client certificate is requested, not verified here: the
//     authenticator verifies the chain per call against the current CA
//     bundle, so that a bad or unknown certificate gets UNAUTHENTICATED
//     naming the reason, not a broken handshake, and a caller with a
//     bearer token needs no certificate at all.
func ServerConfig(kp *KeyPair) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: kp.GetCertificate,
		ClientAuth:     tls.RequestClientCert,
	}
}
