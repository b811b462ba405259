package auth_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/pkitest"
)

// certWith is a certificate from ca carrying the given URI SANs, byte for
// byte as written, and the CN: parsed from DER, as the TLS stack would hand
// it over.
func certWith(t *testing.T, ca *pkitest.CA, cn string, uris ...string) *x509.Certificate {
	t.Helper()
	return ca.Issue(t, pkitest.Options{CommonName: cn, RawURIs: uris}).Leaf
}

func TestIdentityFromCert(t *testing.T) {
	device := func(pk, dn string) auth.Identity {
		return auth.Identity{Kind: auth.KindDevice, ProductKey: pk, DeviceName: dn, Method: "mtls"}
	}
	backend := func(name string) auth.Identity {
		return auth.Identity{Kind: auth.KindBackend, Name: name, Method: "mtls"}
	}
	cnSep := auth.CertConfig{DeviceCNSeparator: "."}
	tests := []struct {
		name string
		cfg  auth.CertConfig
		cn   string
		uris []string
		want auth.Identity
	}{
		{name: "device", uris: []string{"aliyun-iot://a1PK/dev-0001"}, want: device("a1PK", "dev-0001")},
		{name: "device name with colon", uris: []string{"aliyun-iot://a1PK/dev:0001"}, want: device("a1PK", "dev:0001")},
		{name: "device name with at", uris: []string{"aliyun-iot://a1PK/dev@site"}, want: device("a1PK", "dev@site")},
		{name: "device name with dots", uris: []string{"aliyun-iot://a1PK/dev.floor.1"}, want: device("a1PK", "dev.floor.1")},
		{name: "device name with every special character", uris: []string{"aliyun-iot://a1PK/a-b_c.d@e:f"}, want: device("a1PK", "a-b_c.d@e:f")},
		{name: "device name starting with at", uris: []string{"aliyun-iot://a1PK/@dev"}, want: device("a1PK", "@dev")},
		{name: "productKey case is kept", uris: []string{"aliyun-iot://A1pk/Dev-01"}, want: device("A1pk", "Dev-01")},
		{name: "maximum lengths", uris: []string{"aliyun-iot://a1234567890123456789012345678901/d1234567890123456789012345678901"},
			want: device("a1234567890123456789012345678901", "d1234567890123456789012345678901")},
		{name: "device beside an unrelated URI", uris: []string{"https://example.com/x", "aliyun-iot://a1PK/dev-0001"}, want: device("a1PK", "dev-0001")},
		{name: "device beside a relative reference", uris: []string{"a1PK/dev-0002", "aliyun-iot://a1PK/dev-0001"}, want: device("a1PK", "dev-0001")},
		{name: "CN ignored without a separator", cn: "a1PK.dev-0001", uris: []string{"aliyun-iot://a1PK/dev-0002"}, want: device("a1PK", "dev-0002")},
		{name: "URI SAN wins over the CN fallback", cfg: cnSep, cn: "a1PK.dev-0001", uris: []string{"aliyun-iot://a1PK/dev-0002"}, want: device("a1PK", "dev-0002")},
		{name: "CN fallback when configured", cfg: cnSep, cn: "a1PK.dev-0001", want: device("a1PK", "dev-0001")},
		{name: "CN fallback with dots in the name", cfg: cnSep, cn: "a1PK.dev.0001:x@y", want: device("a1PK", "dev.0001:x@y")},
		{name: "CN fallback with another separator", cfg: auth.CertConfig{DeviceCNSeparator: "/"}, cn: "a1PK/dev-0001", want: device("a1PK", "dev-0001")},
		{name: "custom device scheme", cfg: auth.CertConfig{DeviceURIScheme: "acme-dev"}, uris: []string{"acme-dev://a1PK/dev-0001"}, want: device("a1PK", "dev-0001")},
		{name: "backend", uris: []string{"spiffe://signerd.test/fleet/provisioner"}, want: backend("spiffe://signerd.test/fleet/provisioner")},
		{name: "backend with a device-like CN", cfg: cnSep, cn: "a1PK.dev-0001", uris: []string{"spiffe://signerd.test/fleet/provisioner"},
			want: backend("spiffe://signerd.test/fleet/provisioner")},
		{name: "backend with every path character", uris: []string{"spiffe://t-d_1.example/A-z_0.9/x"}, want: backend("spiffe://t-d_1.example/A-z_0.9/x")},
		{name: "backend of 2048 bytes", uris: []string{longSPIFFE(2048)}, want: backend(longSPIFFE(2048))},
		{name: "custom backend scheme", cfg: auth.CertConfig{BackendURISchemes: []string{"acme-svc"}}, uris: []string{"acme-svc://td/svc"}, want: backend("acme-svc://td/svc")},
	}
	ca := pkitest.NewCA(t, "identity CA")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.IdentityFromCert(certWith(t, ca, tc.cn, tc.uris...))
			if err != nil {
				t.Fatalf("IdentityFromCert(CN %q, URIs %q): %v", tc.cn, tc.uris, err)
			}
			if got != tc.want {
				t.Errorf("IdentityFromCert(CN %q, URIs %q) = %+v, want %+v", tc.cn, tc.uris, got, tc.want)
			}
		})
	}
}

func TestIdentityFromCertErrors(t *testing.T) {
	cnSep := auth.CertConfig{DeviceCNSeparator: "."}
	tests := []struct {
		name string
		cfg  auth.CertConfig
		cn   string
		uris []string
		// noIdentity: the error must be ErrNoIdentity (else any other error).
		noIdentity bool
		// ca issues a CA certificate; extraCN adds a second CN.
		ca      bool
		extraCN string
	}{
		{name: "nothing", noIdentity: true},
		{name: "CN only, fallback off", cn: "a1PK.dev-0001", noIdentity: true},
		{name: "CN not a device", cfg: cnSep, cn: "signerd backend", noIdentity: true},
		{name: "CN with a bad device name", cfg: cnSep, cn: "a1PK.d/v", noIdentity: true},
		{name: "CN with a bad productKey", cfg: cnSep, cn: "a1-PK.dev-0001", noIdentity: true},
		{name: "unrelated URI only", uris: []string{"https://example.com/a1PK/dev-0001"}, noIdentity: true},
		{name: "device scheme not the configured one", cfg: auth.CertConfig{DeviceURIScheme: "acme-dev"}, uris: []string{"aliyun-iot://a1PK/dev-0001"}, noIdentity: true},
		{name: "backend scheme not the configured one", cfg: auth.CertConfig{BackendURISchemes: []string{"acme-svc"}}, uris: []string{"spiffe://td/svc"}, noIdentity: true},

		{name: "two devices", uris: []string{"aliyun-iot://a1PK/dev-0001", "aliyun-iot://a1PK/dev-0002"}},
		{name: "the same device twice", uris: []string{"aliyun-iot://a1PK/dev-0001", "aliyun-iot://a1PK/dev-0001"}},
		{name: "device and backend", uris: []string{"aliyun-iot://a1PK/dev-0001", "spiffe://td/svc"}},
		{name: "two backends", uris: []string{"spiffe://td/a", "spiffe://td/b"}},

		{name: "device opaque URI", uris: []string{"aliyun-iot:a1PK/dev-0001"}},
		{name: "device with user info", uris: []string{"aliyun-iot://user@a1PK/dev-0001"}},
		{name: "device with productKey as user info", uris: []string{"aliyun-iot://a1PK@evil/dev-0001"}},
		{name: "device with a query", uris: []string{"aliyun-iot://a1PK/dev-0001?device=dev-0002"}},
		{name: "device with a fragment", uris: []string{"aliyun-iot://a1PK/dev-0001#x"}},
		{name: "device with a port", uris: []string{"aliyun-iot://a1PK:443/dev-0001"}},
		{name: "device without productKey", uris: []string{"aliyun-iot:///dev-0001"}},
		{name: "device without name", uris: []string{"aliyun-iot://a1PK/"}},
		{name: "device without path", uris: []string{"aliyun-iot://a1PK"}},
		{name: "device name too short", uris: []string{"aliyun-iot://a1PK/dev"}},
		{name: "device name too long", uris: []string{"aliyun-iot://a1PK/d12345678901234567890123456789012"}},
		{name: "device name with a slash", uris: []string{"aliyun-iot://a1PK/dev/0001"}},
		{name: "device name with an encoded slash", uris: []string{"aliyun-iot://a1PK/dev%2F0001"}},
		{name: "device name with a trailing slash", uris: []string{"aliyun-iot://a1PK/dev-0001/"}},
		{name: "device name with a space", uris: []string{"aliyun-iot://a1PK/dev%200001"}},
		{name: "productKey with a dash", uris: []string{"aliyun-iot://a1-PK/dev-0001"}},
		{name: "productKey is an IP literal", uris: []string{"aliyun-iot://[::1]/dev-0001"}},
		{name: "malformed device URI beside a backend", uris: []string{"spiffe://td/svc", "aliyun-iot://a1PK/dev?x"}},
		{name: "backend without trust domain", uris: []string{"spiffe:///svc"}},
		{name: "backend opaque", uris: []string{"spiffe:td/svc"}},
		{name: "backend with a query", uris: []string{"spiffe://td/svc?x=1"}},
		{name: "backend with a fragment", uris: []string{"spiffe://td/svc#x"}},
		{name: "backend with user info", uris: []string{"spiffe://admin@td/svc"}},
		{name: "backend with a port", uris: []string{"spiffe://td:443/svc"}},
		{name: "backend with an empty port", uris: []string{"spiffe://td:/svc"}},
		{name: "backend with an empty query", uris: []string{"spiffe://td/svc?"}},
		{name: "backend with an empty fragment", uris: []string{"spiffe://td/svc#"}},
		{name: "backend percent-encoded", uris: []string{"spiffe://td/sv%63"}},
		{name: "backend percent-encoded slash", uris: []string{"spiffe://td/a%2Fb"}},
		{name: "backend scheme in capitals", uris: []string{"SPIFFE://td/svc"}},
		{name: "backend scheme in mixed case", uris: []string{"Spiffe://td/svc"}},
		{name: "backend trust domain in capitals", uris: []string{"spiffe://TD/svc"}},
		{name: "backend without a path", uris: []string{"spiffe://td"}},
		{name: "backend with a root path", uris: []string{"spiffe://td/"}},
		{name: "backend with a trailing slash", uris: []string{"spiffe://td/svc/"}},
		{name: "backend with an empty segment", uris: []string{"spiffe://td//svc"}},
		{name: "backend with a dot segment", uris: []string{"spiffe://td/./svc"}},
		{name: "backend with a dot-dot segment", uris: []string{"spiffe://td/ns/../svc"}},
		{name: "backend ending in a dot-dot segment", uris: []string{"spiffe://td/svc/.."}},
		{name: "backend with a tilde", uris: []string{"spiffe://td/~svc"}},
		{name: "backend with a colon in the path", uris: []string{"spiffe://td/svc:1"}},
		{name: "backend with an at in the path", uris: []string{"spiffe://td/svc@x"}},
		{name: "backend with a space", uris: []string{"spiffe://td/s vc"}},
		{name: "backend of 2049 bytes", uris: []string{longSPIFFE(2049)}},
		{name: "backend beside an unrelated URI", uris: []string{"https://example.com/x", "spiffe://td/svc"}},
		{name: "custom backend scheme in capitals", cfg: auth.CertConfig{BackendURISchemes: []string{"acme-svc"}}, uris: []string{"ACME-SVC://td/svc"}},
		{name: "custom backend scheme, not a SPIFFE ID", cfg: auth.CertConfig{BackendURISchemes: []string{"acme-svc"}}, uris: []string{"acme-svc://td/a/../b"}},

		// Issue 12: a percent-escape decoded into another device's name.
		{name: "device name percent-encoded into another device", uris: []string{"aliyun-iot://a1BravoProd/dev%2Db-0002"}},
		{name: "device name with a lower-case escape", uris: []string{"aliyun-iot://a1PK/dev%2d0001"}},
		{name: "device name with an encoded colon", uris: []string{"aliyun-iot://a1PK/dev%3A01"}},
		{name: "device name with an encoded percent", uris: []string{"aliyun-iot://a1PK/dev%25-0001"}},
		{name: "device name entirely encoded", uris: []string{"aliyun-iot://a1PK/%64%65%76%2D%30%30%30%31"}},
		{name: "device scheme in capitals", uris: []string{"ALIYUN-IOT://a1PK/dev-0001"}},
		{name: "device scheme in mixed case", uris: []string{"Aliyun-IoT://a1PK/dev-0001"}},
		{name: "device scheme with one slash", uris: []string{"aliyun-iot:/a1PK/dev-0001"}},
		{name: "device scheme with three slashes", uris: []string{"aliyun-iot:///a1PK/dev-0001"}},
		{name: "device with an empty port", uris: []string{"aliyun-iot://a1PK:/dev-0001"}},
		{name: "device with an empty query", uris: []string{"aliyun-iot://a1PK/dev-0001?"}},
		{name: "device with an empty fragment", uris: []string{"aliyun-iot://a1PK/dev-0001#"}},
		{name: "device with empty user info", uris: []string{"aliyun-iot://@a1PK/dev-0001"}},
		{name: "device with a dot segment", uris: []string{"aliyun-iot://a1PK/./dev-0001"}},
		{name: "device with a dot-dot segment", uris: []string{"aliyun-iot://a1PK/x/../dev-0001"}},
		{name: "device with a double slash", uris: []string{"aliyun-iot://a1PK//dev-0001"}},
		{name: "device productKey in capitals beside the real one", uris: []string{"aliyun-iot://a1PK/dev-0001", "ALIYUN-IOT://a1PK/dev-0002"}},
		{name: "device beside its own encoded alias", uris: []string{"aliyun-iot://a1PK/dev-0001", "aliyun-iot://a1PK/dev%2D0001"}},
		{name: "device CA certificate", uris: []string{"aliyun-iot://a1PK/dev-0001"}, ca: true},
		{name: "backend CA certificate", uris: []string{"spiffe://td/svc"}, ca: true},
		{name: "two CNs, each a device", cfg: cnSep, cn: "a1PK.dev-0001", extraCN: "a1PK.dev-0002"},
		{name: "two CNs, the same device", cfg: cnSep, cn: "a1PK.dev-0001", extraCN: "a1PK.dev-0001"},
	}
	ca := pkitest.NewCA(t, "identity CA")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := pkitest.Options{CommonName: tc.cn, RawURIs: tc.uris, IsCA: tc.ca}
			if tc.extraCN != "" {
				// ExtraNames replace the CommonName field: give both.
				cn := asn1.ObjectIdentifier{2, 5, 4, 3}
				o.ExtraSubject = []pkix.AttributeTypeAndValue{{Type: cn, Value: tc.cn}, {Type: cn, Value: tc.extraCN}}
			}
			got, err := tc.cfg.IdentityFromCert(ca.Issue(t, o).Leaf)
			if err == nil {
				t.Fatalf("IdentityFromCert(CN %q, URIs %q) = %+v, want an error", tc.cn, tc.uris, got)
			}
			if got != (auth.Identity{}) {
				t.Errorf("IdentityFromCert(CN %q, URIs %q) returned %+v with its error, want the zero Identity", tc.cn, tc.uris, got)
			}
			if tc.noIdentity != errors.Is(err, auth.ErrNoIdentity) {
				t.Errorf("IdentityFromCert(CN %q, URIs %q) error %v: errors.Is(ErrNoIdentity) = %v, want %v",
					tc.cn, tc.uris, err, !tc.noIdentity, tc.noIdentity)
			}
		})
	}
}

// TestIdentityFromIssuedCert reads identities back from real certificates
// (the SAN survives DER encoding).
func TestIdentityFromIssuedCert(t *testing.T) {
	ca := pkitest.NewCA(t, "identity CA")
	for _, dn := range []string{"dev-0001", "dev:0001", "dev@0001", "dev.0001", "a:b@c.d_e-f"} {
		c := ca.Device(t, "a1PK", dn)
		got, err := auth.CertConfig{}.IdentityFromCert(c.Leaf)
		if err != nil {
			t.Errorf("device %q: %v", dn, err)
			continue
		}
		if want := (auth.Identity{Kind: auth.KindDevice, ProductKey: "a1PK", DeviceName: dn, Method: "mtls"}); got != want {
			t.Errorf("device %q: got %+v, want %+v", dn, got, want)
		}
		if s := got.String(); s != "device:a1PK/"+dn {
			t.Errorf("device %q: String() = %q", dn, s)
		}
	}
	b := ca.Backend(t, "spiffe://signerd.test/ns/fleet/sa/provisioner")
	got, err := auth.CertConfig{}.IdentityFromCert(b.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != auth.KindBackend || got.Name != "spiffe://signerd.test/ns/fleet/sa/provisioner" || got.String() != "backend:spiffe://signerd.test/ns/fleet/sa/provisioner" {
		t.Errorf("backend: got %+v (%s)", got, got)
	}
}

// longSPIFFE is a valid SPIFFE ID of n bytes.
func longSPIFFE(n int) string {
	const prefix = "spiffe://td/"
	return prefix + strings.Repeat("a", n-len(prefix))
}

// TestIdentityFromCertInMemory: a certificate that was never encoded has no
// SANs as written, so it names nobody, whatever its url.URLs say.
func TestIdentityFromCertInMemory(t *testing.T) {
	for _, raw := range []string{"aliyun-iot://a1PK/dev-0001", "spiffe://td/svc"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		c := &x509.Certificate{URIs: []*url.URL{u}}
		if got, err := (auth.CertConfig{}).IdentityFromCert(c); err == nil {
			t.Errorf("in-memory certificate with URI %q: %+v, want an error", raw, got)
		}
	}
	c := &x509.Certificate{Subject: pkix.Name{CommonName: "a1PK.dev-0001"}}
	if got, err := (auth.CertConfig{DeviceCNSeparator: "."}).IdentityFromCert(c); err == nil {
		t.Errorf("in-memory certificate with a device CN: %+v, want an error", got)
	}
}

func TestCertConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  auth.CertConfig
		want string // substring of the error; "" for none
	}{
		{cfg: auth.CertConfig{}},
		{cfg: auth.CertConfig{DeviceURIScheme: "acme-dev", DeviceCNSeparator: ".", BackendURISchemes: []string{"spiffe", "acme-svc"}}},
		{cfg: auth.CertConfig{DeviceCNSeparator: "::"}},
		{cfg: auth.CertConfig{DeviceCNSeparator: "1"}, want: "separator"},
		{cfg: auth.CertConfig{DeviceCNSeparator: ".x"}, want: "separator"},
		{cfg: auth.CertConfig{DeviceURIScheme: "Aliyun-IoT"}, want: "device URI scheme"},
		{cfg: auth.CertConfig{DeviceURIScheme: "aliyun iot"}, want: "device URI scheme"},
		{cfg: auth.CertConfig{BackendURISchemes: []string{"SPIFFE"}}, want: "backend URI scheme"},
		{cfg: auth.CertConfig{BackendURISchemes: []string{"aliyun-iot"}}, want: "also the device URI scheme"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v, want no error", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}
