package huawei

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/device"
)

// certWithURI returns a leaf certificate whose one URI SAN is raw.
func certWithURI(t *testing.T, raw string) *x509.Certificate {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertificateIdentity: a device certificate names a device of this
// platform in the registered scheme, by the platform's name rules, and in
// no other shape.
func TestCertificateIdentity(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want device.ID // zero: refused
	}{
		{"huawei-iot://5e4b2c1a_node-01", device.ID{Platform: "huawei", DeviceName: "5e4b2c1a_node-01"}},
		{"huawei-iot://D39564861q3gDa", device.ID{Platform: "huawei", DeviceName: "D39564861q3gDa"}},
		{"huawei-iot://product/D39564861q3gDa", device.ID{}},
		{"huawei-iot://dev.1", device.ID{}},
		{"huawei-iot://dev-1:8883", device.ID{}},
	} {
		id, err := auth.CertConfig{}.IdentityFromCert(certWithURI(t, tc.uri))
		if tc.want == (device.ID{}) {
			if err == nil {
				t.Errorf("%s: identity %v, want refused", tc.uri, id)
			}
			continue
		}
		if err != nil || id.Kind != auth.KindDevice || id.Device() != tc.want {
			t.Errorf("%s: %v, %v; want device %v", tc.uri, id, err, tc.want)
		}
	}
}
