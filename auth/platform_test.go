package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/internal/pkitest"
)

// Two test platforms, registered as a platform package registers itself:
// one with products and modules (Azure's shape), one whose device ids
// stand alone (Huawei's shape).
func init() {
	name := device.Chars(true, "-._")
	v := func(field, s string) error {
		return device.ValidateChars(field, "1–16 of [A-Za-z0-9-._]", s, 1, 16, name)
	}
	device.Register(device.Platform{Name: "fuzzplat", Scheme: "fuzzplat-iot", Products: true, Modules: true,
		Validate: func(id device.ID) error {
			errs := []error{v("hub", id.ProductKey), v("deviceId", id.DeviceName)}
			if id.Module != "" {
				errs = append(errs, v("moduleId", id.Module))
			}
			return errors.Join(errs...)
		}})
	device.Register(device.Platform{Name: "fuzzsolo", Scheme: "fuzzsolo-iot",
		Validate: func(id device.ID) error {
			if id.ProductKey != "" {
				return &device.FieldError{Field: "productKey", Reason: "must be empty"}
			}
			return v("deviceId", id.DeviceName)
		}})
}

func TestPlatformIdentityFromCert(t *testing.T) {
	ca := pkitest.NewCA(t, "platform CA")
	cfg := auth.CertConfig{}
	good := []struct {
		uri  string
		want device.ID
	}{
		{"fuzzplat-iot://hub-1/dev-1", device.ID{Platform: "fuzzplat", ProductKey: "hub-1", DeviceName: "dev-1"}},
		{"fuzzplat-iot://hub-1/dev.1/mod_1", device.ID{Platform: "fuzzplat", ProductKey: "hub-1", DeviceName: "dev.1", Module: "mod_1"}},
		{"fuzzsolo-iot://dev-1", device.ID{Platform: "fuzzsolo", DeviceName: "dev-1"}},
	}
	for _, g := range good {
		cert := ca.Issue(t, pkitest.Options{CommonName: "x", RawURIs: []string{g.uri}})
		id, err := cfg.IdentityFromCert(cert.Leaf)
		if err != nil {
			t.Fatalf("%s: %v", g.uri, err)
		}
		if id.Kind != auth.KindDevice || id.Device() != g.want || id.Method != "mtls" {
			t.Errorf("%s: identity %+v, want device %v", g.uri, id, g.want)
		}
		if got := cfg.URIFor(id.Device()); got != g.uri {
			t.Errorf("URIFor(%v) = %q, want %q", id.Device(), got, g.uri)
		}
		if want := "device:" + g.want.String(); id.String() != want {
			t.Errorf("String() = %q, want %q", id.String(), want)
		}
	}
	bad := []struct{ uri, why string }{
		{"fuzzplat-iot://hub-1/dev%2D1", "percent-encoding"},
		{"fuzzplat-iot://hub-1/dev-1?x", "a query"},
		{"fuzzplat-iot://hub-1/dev-1#x", "a fragment"},
		{"fuzzplat-iot://u@hub-1/dev-1", "user info"},
		{"fuzzplat-iot://hub-1:80/dev-1", "a port"},
		{"fuzzplat-iot://hub-1", "0 path segments"},
		{"fuzzplat-iot://hub-1/dev-1/mod-1/x", "3 path segments"},
		{"fuzzplat-iot://hub-1/dev-1/", "an empty segment"},
		{"fuzzplat-iot://hub-1//dev-1", "an empty segment"},
		{"fuzzplat-iot://hub+1/dev-1", "hub"},
		{"fuzzplat-iot://hub-1/d~1", "deviceId"},
		{"FUZZPLAT-IOT://hub-1/dev-1", "scheme"},
		{"fuzzplat-iot:hub-1/dev-1", "scheme"},
		{"fuzzsolo-iot://hub-1/dev-1", "1 path segments"},
	}
	for _, b := range bad {
		cert := ca.Issue(t, pkitest.Options{CommonName: "x", RawURIs: []string{b.uri}})
		id, err := cfg.IdentityFromCert(cert.Leaf)
		if err == nil || !strings.Contains(err.Error(), b.why) {
			t.Errorf("%q: identity %+v, error %v; want a refusal naming %q", b.uri, id, err, b.why)
		}
	}
	// A certificate naming a device of two platforms (or of a platform and
	// Alibaba) names two identities: refused.
	cert := ca.Issue(t, pkitest.Options{CommonName: "x", RawURIs: []string{"fuzzplat-iot://hub-1/dev-1", "aliyun-iot://a1PK/dev-0001"}})
	if _, err := cfg.IdentityFromCert(cert.Leaf); err == nil || !strings.Contains(err.Error(), "2 identities") {
		t.Errorf("two identities: %v", err)
	}
	// The Alibaba scheme setting cannot take a platform's scheme.
	if err := (auth.CertConfig{DeviceURIScheme: "fuzzplat-iot"}).Validate(); err == nil {
		t.Error("Validate accepted a platform's scheme as Alibaba's")
	}
}

// TestPlatformAuthorization: a device is only ever itself, platform
// included; a backend's grant names each platform's products explicitly,
// and a plain "*" stays Alibaba's.
func TestPlatformAuthorization(t *testing.T) {
	p, err := auth.ParsePolicy([]byte(`
deviceRpcs: [SignMqttConnect, SignAzureMqttConnect]
backends:
  - {identity: "spiffe://t/alibaba-all", products: ["*"], rpcs: ["*"]}
  - {identity: "spiffe://t/hub1", products: ["fuzzplat:hub-1"], rpcs: ["*"]}
  - {identity: "spiffe://t/plat-all", products: ["fuzzplat:*"], rpcs: [SignAzureMqttConnect]}
  - {identity: "spiffe://t/solo", products: ["fuzzsolo:*"], rpcs: ["*"]}
  - {identity: "spiffe://t/everything", products: ["*:*"], rpcs: ["*"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	alibabaDev := device.ID{ProductKey: "hub1", DeviceName: "dev-0001"}
	platDev := device.ID{Platform: "fuzzplat", ProductKey: "hub1", DeviceName: "dev-0001"}
	platDev2 := device.ID{Platform: "fuzzplat", ProductKey: "hub-1", DeviceName: "dev-0001"}
	module := device.ID{Platform: "fuzzplat", ProductKey: "hub-1", DeviceName: "dev-0001", Module: "m1"}
	solo := device.ID{Platform: "fuzzsolo", DeviceName: "dev-0001"}
	devID := func(d device.ID) auth.Identity {
		return auth.Identity{Kind: auth.KindDevice, Platform: d.Platform, ProductKey: d.ProductKey, DeviceName: d.DeviceName, Module: d.Module}
	}
	backend := func(n string) auth.Identity { return auth.Identity{Kind: auth.KindBackend, Name: "spiffe://t/" + n} }
	for _, tc := range []struct {
		who   auth.Identity
		rpc   string
		dev   device.ID
		allow bool
	}{
		{devID(alibabaDev), "SignMqttConnect", alibabaDev, true},
		{devID(alibabaDev), "SignAzureMqttConnect", platDev, false}, // same names, other platform
		{devID(platDev), "SignAzureMqttConnect", platDev, true},
		{devID(platDev), "SignMqttConnect", alibabaDev, false},
		{devID(platDev2), "SignAzureMqttConnect", module, false}, // a device is not its module
		{devID(module), "SignAzureMqttConnect", module, true},
		{devID(module), "SignAzureMqttConnect", platDev2, false},
		{backend("alibaba-all"), "SignMqttConnect", alibabaDev, true},
		{backend("alibaba-all"), "SignAzureMqttConnect", platDev, false}, // "*" is Alibaba's only
		{backend("hub1"), "SignAzureMqttConnect", platDev2, true},
		{backend("hub1"), "SignAzureMqttConnect", module, true},
		{backend("hub1"), "SignAzureMqttConnect", platDev, false},
		{backend("hub1"), "SignMqttConnect", device.ID{ProductKey: "hub-1", DeviceName: "dev-0001"}, false},
		{backend("plat-all"), "SignAzureMqttConnect", platDev, true},
		{backend("plat-all"), "SignTencentMqttConnect", platDev, false},
		{backend("plat-all"), "SignAzureMqttConnect", solo, false},
		{backend("solo"), "SignHuaweiMqttConnect", solo, true},
		{backend("everything"), "SignHuaweiMqttConnect", solo, true},
		{backend("everything"), "SignMqttConnect", alibabaDev, true},
	} {
		err := p.AuthorizeID(tc.who, tc.rpc, tc.dev)
		if (err == nil) != tc.allow {
			t.Errorf("%s calling %s for %v: %v, want allowed=%v", tc.who, tc.rpc, tc.dev, err, tc.allow)
		}
	}
	for entry, why := range map[string]string{
		"nosuch:*":     "not one this server knows",
		"fuzzsolo:x":   "has no products",
		"*:hub":        `"*:*"`,
		"fuzzplat:a/b": "not a product name",
		"fuzzplat:":    "not a product name",
		"hub-1":        "not an Alibaba productKey",
	} {
		_, err := auth.ParsePolicy([]byte(`backends: [{identity: "spiffe://t/x", products: ["` + entry + `"], rpcs: ["*"]}]`))
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("products [%q]: %v, want an error with %q", entry, err, why)
		}
	}
}
