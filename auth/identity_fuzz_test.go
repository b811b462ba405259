package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/internal/pkitest"
)

// FuzzIdentityFromCert encodes arbitrary URI SANs and CNs into real
// certificates and checks the one property that rules out aliases: whatever
// IdentityFromCert accepts, formatted again, is byte for byte what the
// certificate says. A name that had been decoded, case-folded or trimmed on
// the way could not pass. The seeds (run by every `go test`) hold the forms
// that have fooled URL-based readers; `go test -fuzz FuzzIdentityFromCert
// ./auth` searches further.
func FuzzIdentityFromCert(f *testing.F) {
	for _, s := range [][3]string{
		{"aliyun-iot://a1BravoProd/dev%2Db-0002", "", ""},
		{"aliyun-iot://a1BravoProd/dev-b-0002", "", ""},
		{"aliyun-iot://a1PK/dev:0001", "", "a1PK.dev-0002"},
		{"aliyun-iot://a1PK/a-b_c.d@e:f", "https://example.com/x", ""},
		{"aliyun-iot://a1PK/dev%3A01", "", ""},
		{"aliyun-iot://a1PK/%64%65%76%2D%30%30%30%31", "", ""},
		{"ALIYUN-IOT://a1PK/dev-0001", "", ""},
		{"aliyun-iot://user@a1PK/dev-0001", "", ""},
		{"aliyun-iot://a1PK:443/dev-0001", "", ""},
		{"aliyun-iot://a1PK/dev-0001?x", "", ""},
		{"aliyun-iot://a1PK/dev-0001#x", "", ""},
		{"aliyun-iot://a1PK/x/../dev-0001", "", ""},
		{"aliyun-iot:a1PK/dev-0001", "", ""},
		{"aliyun-iot://a1PK/dev-0001", "aliyun-iot://a1PK/dev%2D0001", ""},
		{"spiffe://signerd.test/fleet/provisioner", "", ""},
		{"spiffe://td/sv%63", "", ""},
		{"spiffe://TD/svc", "", ""},
		{"spiffe://td/ns/../svc", "", ""},
		{"spiffe://td:443/svc", "", ""},
		{"spiffe://td/svc/", "", ""},
		{"spiffe://td", "", ""},
		{"spiffe://td/svc", "https://example.com/x", ""},
		{"", "", "a1PK.dev-0001"},
		{"", "", "a1PK.dev.0001:x@y"},
		{"", "", "a1PK.d/v"},
		{"", "", " a1PK.dev-0001"},
		{"fuzzplat-iot://hub-1/dev-1", "", ""},
		{"fuzzplat-iot://hub-1/dev-1/mod-1", "", ""},
		{"fuzzplat-iot://hub-1/dev%2D1", "", ""},
		{"fuzzplat-iot://hub-1/dev-1/mod-1/x", "", ""},
		{"fuzzplat-iot://hub-1/dev-1/", "", ""},
		{"fuzzplat-iot://hub-1//dev-1", "", ""},
		{"fuzzplat-iot://hub-1:80/dev-1", "", ""},
		{"fuzzplat-iot://u@hub-1/dev-1", "", ""},
		{"FUZZPLAT-IOT://hub-1/dev-1", "", ""},
		{"fuzzplat-iot://hub-1/dev-1", "aliyun-iot://a1PK/dev-0001", ""},
		{"fuzzsolo-iot://dev-1", "", ""},
		{"fuzzsolo-iot://dev-1/x", "", ""},
		{"fuzzsolo-iot://hub-1/dev-1", "", ""},
		{"fuzzplat-iot://hub-1/dev-1", "", "a1PK.dev-0001"},
	} {
		f.Add(s[0], s[1], s[2])
	}

	// One CA key for every input: an Ed25519 signature costs microseconds.
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	leafPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	configs := []auth.CertConfig{{}, {DeviceCNSeparator: "."}}

	f.Fuzz(func(t *testing.T, uri1, uri2, cn string) {
		var sans []string
		for _, u := range []string{uri1, uri2} {
			if u != "" {
				sans = append(sans, u)
			}
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
			NotBefore: ca.NotBefore, NotAfter: ca.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature}
		if len(sans) > 0 {
			tmpl.ExtraExtensions = []pkix.Extension{pkitest.RawSAN(t, tmpl, sans...)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, leafPub, caKey)
		if err != nil {
			return // not encodable (a CN that is not UTF-8, say)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return // the TLS stack refuses it before signerd sees it
		}
		for _, cfg := range configs {
			id, err := cfg.IdentityFromCert(cert)
			if err != nil {
				if id != (auth.Identity{}) {
					t.Errorf("%+v: error %v with identity %+v", cfg, err, id)
				}
				continue
			}
			if strings.ContainsRune(id.String(), '%') {
				t.Errorf("%+v: accepted %q as %s, which holds a percent-escape", cfg, sans, id)
			}
			switch id.Kind {
			case auth.KindDevice:
				if id.Device().Validate() != nil {
					t.Errorf("%+v: accepted %q, CN %q as %s, whose names are not valid", cfg, sans, cn, id)
				}
				uri := cfg.URIFor(id.Device())
				fromURI := slices.Contains(sans, uri)
				fromCN := id.Platform == "" && cfg.DeviceCNSeparator != "" && cfg.DeviceCN(id.ProductKey, id.DeviceName) == cn
				if !fromURI && !fromCN {
					t.Errorf("%+v: accepted SANs %q, CN %q as %s: neither %q nor the CN is what the certificate says", cfg, sans, cn, id, uri)
				}
				// Exactly one identity URI: no other SAN may also name a
				// device or backend, in any spelling.
				for _, s := range sans {
					if s != uri && identityLike(s) {
						t.Errorf("%+v: accepted %s beside another identity URI %q", cfg, id, s)
					}
				}
				if !fromURI && slices.ContainsFunc(sans, identityLike) {
					t.Errorf("%+v: accepted the CN %q beside an identity URI in %q", cfg, cn, sans)
				}
			case auth.KindBackend:
				if len(sans) != 1 || sans[0] != id.Name {
					t.Errorf("%+v: accepted SANs %q as backend %q: want its only URI SAN, byte for byte", cfg, sans, id.Name)
				}
				if err := auth.ValidateBackendName(id.Name); err != nil {
					t.Errorf("%+v: accepted backend %q, not a valid name: %v", cfg, id.Name, err)
				}
			default:
				t.Errorf("%+v: accepted %q as %+v", cfg, sans, id)
			}
		}
	})
}

// identityLike reports whether a URI SAN's scheme is an identity scheme, in
// any case.
func identityLike(s string) bool {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	_, platform := device.ByScheme(strings.ToLower(scheme))
	return platform || strings.EqualFold(scheme, "aliyun-iot") || strings.EqualFold(scheme, "spiffe")
}
