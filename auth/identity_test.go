package auth_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"testing"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/pkitest"
)

// certWith is an (unsigned) certificate carrying the given URI SANs and CN:
// IdentityFromCert reads names only, the chain is verified elsewhere.
func certWith(t *testing.T, cn string, uris ...string) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", s, err)
		}
		c.URIs = append(c.URIs, u)
	}
	return c
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
		{name: "percent-encoded colon decodes", uris: []string{"aliyun-iot://a1PK/dev%3A01"}, want: device("a1PK", "dev:01")},
		{name: "CN ignored without a separator", cn: "a1PK.dev-0001", uris: []string{"aliyun-iot://a1PK/dev-0002"}, want: device("a1PK", "dev-0002")},
		{name: "URI SAN wins over the CN fallback", cfg: cnSep, cn: "a1PK.dev-0001", uris: []string{"aliyun-iot://a1PK/dev-0002"}, want: device("a1PK", "dev-0002")},
		{name: "CN fallback when configured", cfg: cnSep, cn: "a1PK.dev-0001", want: device("a1PK", "dev-0001")},
		{name: "CN fallback with dots in the name", cfg: cnSep, cn: "a1PK.dev.0001:x@y", want: device("a1PK", "dev.0001:x@y")},
		{name: "CN fallback with another separator", cfg: auth.CertConfig{DeviceCNSeparator: "/"}, cn: "a1PK/dev-0001", want: device("a1PK", "dev-0001")},
		{name: "custom device scheme", cfg: auth.CertConfig{DeviceURIScheme: "acme-dev"}, uris: []string{"acme-dev://a1PK/dev-0001"}, want: device("a1PK", "dev-0001")},
		{name: "backend", uris: []string{"spiffe://signerd.test/fleet/provisioner"}, want: backend("spiffe://signerd.test/fleet/provisioner")},
		{name: "backend with a device-like CN", cfg: cnSep, cn: "a1PK.dev-0001", uris: []string{"spiffe://signerd.test/fleet/provisioner"},
			want: backend("spiffe://signerd.test/fleet/provisioner")},
		{name: "backend beside an unrelated URI", uris: []string{"https://example.com/x", "spiffe://td/svc"}, want: backend("spiffe://td/svc")},
		{name: "custom backend scheme", cfg: auth.CertConfig{BackendURISchemes: []string{"acme-svc"}}, uris: []string{"acme-svc://td/svc"}, want: backend("acme-svc://td/svc")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.IdentityFromCert(certWith(t, tc.cn, tc.uris...))
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.IdentityFromCert(certWith(t, tc.cn, tc.uris...))
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
