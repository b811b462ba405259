// Package pkitest makes the certificates tests need: a CA, server
// certificates for 127.0.0.1, and client certificates for devices
// (aliyun-iot://{productKey}/{deviceName}) and backends (spiffe://…), plus
// the broken ones (expired, not yet valid, self-signed, wrong CA). Real
// X.509 and real TLS: nothing is mocked.
package pkitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// NewCA makes a self-signed CA.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &CA{Cert: c, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pool returns a pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Options shape an issued certificate.
type Options struct {
	CommonName string
	URIs       []string
	// NotBefore/NotAfter default to an hour ago / a day ahead.
	NotBefore, NotAfter time.Time
	// Server makes a server certificate for 127.0.0.1 and localhost.
	Server bool
	// SelfSigned ignores the CA and signs with the certificate's own key.
	SelfSigned bool
	// RawURIs are written into the subjectAltName byte for byte, after
	// URIs: crypto/x509 would re-encode a url.URL ("%2D" may come out as
	// "-"), and tests of identity parsing need the SAN as an attacker's CA
	// would write it.
	RawURIs []string
	// ExtraSubject are further subject attributes (a second CN, say).
	ExtraSubject []pkix.AttributeTypeAndValue
	// IsCA marks the certificate as a CA (basic constraints, keyCertSign).
	IsCA bool
}

// Issue makes a key pair signed by ca.
func (ca *CA) Issue(t testing.TB, o Options) tls.Certificate {
	t.Helper()
	key := newKey(t)
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: o.CommonName},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if o.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	for _, u := range o.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if len(o.RawURIs) > 0 {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, RawSAN(t, tmpl, o.RawURIs...))
	}
	tmpl.Subject.ExtraNames = o.ExtraSubject
	if o.IsCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	parent, signer := ca.Cert, ca.Key
	if o.SelfSigned {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// RawSAN is a subjectAltName extension holding tmpl's DNS names, IP
// addresses and URIs as crypto/x509 would write them, then rawURIs exactly
// as given.
func RawSAN(t testing.TB, tmpl *x509.Certificate, rawURIs ...string) pkix.Extension {
	t.Helper()
	var names []asn1.RawValue
	for _, d := range tmpl.DNSNames {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
	}
	for _, ip := range tmpl.IPAddresses {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: ip})
	}
	for _, u := range tmpl.URIs {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u.String())})
	}
	for _, u := range rawURIs {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)})
	}
	v, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: v}
}

// Device issues a client certificate for one device.
func (ca *CA) Device(t testing.TB, productKey, deviceName string) tls.Certificate {
	t.Helper()
	return ca.Issue(t, Options{CommonName: productKey + "." + deviceName,
		URIs: []string{"aliyun-iot://" + productKey + "/" + deviceName}})
}

// Backend issues a client certificate for a backend's SPIFFE ID.
func (ca *CA) Backend(t testing.TB, spiffeID string) tls.Certificate {
	t.Helper()
	return ca.Issue(t, Options{CommonName: "backend", URIs: []string{spiffeID}})
}

// WriteFiles writes a key pair as PEM files in dir and returns their paths.
func WriteFiles(t testing.TB, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	var certPEM []byte
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// ClientTLS is a client configuration presenting cert (if any) and trusting
// roots.
func ClientTLS(roots *x509.CertPool, cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
