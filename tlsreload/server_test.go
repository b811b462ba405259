package tlsreload_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/tlsreload"
)

// TestServerConfig handshakes real clients with a listener on
// ServerConfig: the floor is TLS 1.2, the certificate is the key pair's,
// and a client certificate is taken whatever its issuer (the authenticator
// judges it per call) but not required.
func TestServerConfig(t *testing.T) {
	ca := pkitest.NewCA(t, "server CA")
	certFile, keyFile := pkitest.WriteFiles(t, t.TempDir(), "server", ca.Issue(t, pkitest.Options{CommonName: "signerd", Server: true}))
	kp, err := tlsreload.NewKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsreload.ServerConfig(kp)
	if cfg.ClientAuth != tls.RequestClientCert || len(cfg.Certificates) != 0 || cfg.InsecureSkipVerify {
		t.Errorf("policy: ClientAuth %v, %d static certificates", cfg.ClientAuth, len(cfg.Certificates))
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	type seen struct {
		state tls.ConnectionState
		err   error
	}
	server := make(chan seen, 1)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			err = c.(*tls.Conn).Handshake()
			server <- seen{c.(*tls.Conn).ConnectionState(), err}
			c.Close()
		}
	}()

	stranger := pkitest.NewCA(t, "unknown CA").Issue(t, pkitest.Options{CommonName: "someone"})
	tests := []struct {
		name        string
		min, max    uint16
		cert        *tls.Certificate
		wantErr     bool
		wantVersion uint16
		wantPeer    string // CN of the client certificate the server saw
	}{
		{name: "TLS 1.0 refused", min: tls.VersionTLS10, max: tls.VersionTLS10, wantErr: true},
		{name: "TLS 1.1 refused", min: tls.VersionTLS10, max: tls.VersionTLS11, wantErr: true},
		{name: "TLS 1.2 without a certificate", min: tls.VersionTLS12, max: tls.VersionTLS12, wantVersion: tls.VersionTLS12},
		{name: "TLS 1.3 without a certificate", min: tls.VersionTLS13, max: tls.VersionTLS13, wantVersion: tls.VersionTLS13},
		{name: "unknown issuer is not the handshake's to judge", min: tls.VersionTLS12, max: tls.VersionTLS13, cert: &stranger,
			wantVersion: tls.VersionTLS13, wantPeer: "someone"},
		{name: "TLS 1.2 with a certificate", min: tls.VersionTLS12, max: tls.VersionTLS12, cert: &stranger,
			wantVersion: tls.VersionTLS12, wantPeer: "someone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc := pkitest.ClientTLS(ca.Pool(), tc.cert)
			cc.MinVersion, cc.MaxVersion = tc.min, tc.max
			c, err := tls.Dial("tcp", lis.Addr().String(), cc)
			s := <-server
			if tc.wantErr {
				if err == nil || s.err == nil {
					t.Fatalf("handshake succeeded: client %v, server %v", err, s.err)
				}
				return
			}
			if err != nil || s.err != nil {
				t.Fatalf("handshake: client %v, server %v", err, s.err)
			}
			defer c.Close()
			if v := c.ConnectionState().Version; v != tc.wantVersion {
				t.Errorf("version %x, want %x", v, tc.wantVersion)
			}
			if leaf := c.ConnectionState().PeerCertificates[0]; leaf.Subject.CommonName != "signerd" {
				t.Errorf("served certificate %q, want the key pair's", leaf.Subject.CommonName)
			}
			if got := peerCN(s.state.PeerCertificates); got != tc.wantPeer {
				t.Errorf("server saw client certificate %q, want %q", got, tc.wantPeer)
			}
		})
	}
}

func peerCN(certs []*x509.Certificate) string {
	if len(certs) == 0 {
		return ""
	}
	return certs[0].Subject.CommonName
}
