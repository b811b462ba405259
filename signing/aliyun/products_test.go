package aliyun_test

import (
	"strings"
	"testing"

	"github.com/signerd/signerd/signing/aliyun"
)

func TestParseProducts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// check inspects a successful result.
		pk        string
		wantHost  string
		wantKeep  int
		wantClean bool
	}{
		{name: "empty file", in: "", pk: "a1X", wantKeep: 300, wantClean: true},
		{name: "JSON", in: `{"defaults":{"host":"broker.example.com","keepAliveSeconds":1200}}`,
			pk: "a1X", wantHost: "broker.example.com", wantKeep: 1200, wantClean: true},
		{name: "product inherits defaults", in: "defaults:\n  host: broker.example.com\n  keepAliveSeconds: 30\n  cleanSession: false\nproducts:\n  a1X:\n    tlsPort: 8883\n",
			pk: "a1X", wantHost: "broker.example.com", wantKeep: 30, wantClean: false},
		{name: "product overrides defaults", in: "defaults:\n  host: broker.example.com\nproducts:\n  a1X:\n    host: other.example.com\n    keepAliveSeconds: 600\n",
			pk: "a1X", wantHost: "other.example.com", wantKeep: 600, wantClean: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := aliyun.ParseProducts([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseProducts(%q) error: %v", tc.in, err)
			}
			got := p.Lookup(tc.pk)
			if got.Host != tc.wantHost || got.KeepAliveSeconds != tc.wantKeep || got.CleanSession == nil || *got.CleanSession != tc.wantClean {
				t.Errorf("Lookup(%q) = host %q, keepalive %d, clean %v; want %q, %d, %v",
					tc.pk, got.Host, got.KeepAliveSeconds, got.CleanSession, tc.wantHost, tc.wantKeep, tc.wantClean)
			}
		})
	}
}

func TestParseProductsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// want are substrings the error must contain: the setting and
		// where it is.
		want []string
	}{
		{"unknown key in defaults", "defaults:\n  regoin: cn-beijing\n", []string{`"defaults.regoin"`}},
		{"unknown key in a product", "products:\n  a1X:\n    keepalive: 60\n", []string{`"products.a1X.keepalive"`}},
		{"key in the wrong case", "Products:\n  a1X:\n    keepAliveSeconds: 60\n", []string{`"Products"`}},
		{"unknown top-level key", "product:\n  a1X: {}\n", []string{`"product"`}},
		{"keepalive too short", "products:\n  a1X:\n    keepAliveSeconds: 29\n", []string{"products.a1X", "keepAliveSeconds", "29"}},
		{"keepalive too long", "defaults:\n  keepAliveSeconds: 1201\n", []string{"defaults", "keepAliveSeconds", "1201"}},
		{"keepalive negative", "defaults:\n  keepAliveSeconds: -1\n", []string{"defaults", "keepAliveSeconds"}},
		{"keepalive not a number", "defaults:\n  keepAliveSeconds: long\n", []string{"keepAliveSeconds"}},
		{"product key with a dash", "products:\n  a1-bad:\n    region: cn-beijing\n", []string{`"a1-bad"`, "productKey"}},
		{"product key too long", "products:\n  " + strings.Repeat("a", 33) + ":\n    region: cn-beijing\n", []string{strings.Repeat("a", 33)}},
		{"bad region", "defaults:\n  region: CN_Shanghai\n", []string{"defaults", "region"}},
		{"bad instance id", "products:\n  a1X:\n    instanceId: iot_1\n", []string{"products.a1X", "instanceId"}},
		{"bad host", "products:\n  a1X:\n    host: 'mqtt example.com'\n", []string{"products.a1X", "host"}},
		{"port out of range", "products:\n  a1X:\n    tlsPort: 65536\n", []string{"products.a1X", "tlsPort"}},
		{"negative port", "defaults:\n  wssPort: -443\n", []string{"defaults", "wssPort"}},
		{"not YAML", "defaults: [\n", []string{"parse products"}},
		{"every problem at once", "defaults:\n  keepAliveSeconds: 5\nproducts:\n  a1-bad: {}\n  a1Y:\n    tcpPort: 99999\n",
			[]string{"defaults: keepAliveSeconds", `"a1-bad"`, "products.a1Y", "tcpPort"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := aliyun.ParseProducts([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseProducts(%q) = %+v, want an error", tc.in, p)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseProducts(%q) error %q does not contain %q", tc.in, err, w)
				}
			}
		})
	}
}

// TestProductsLookup checks how a product's settings combine with the
// defaults: the endpoint is taken as a whole (a product naming its region
// does not inherit the defaults' instance id), the rest field by field.
func TestProductsLookup(t *testing.T) {
	const file = `
defaults:
  instanceId: iot-default
  authBaseUrl: https://auth.default.example
  tlsPort: 8883
products:
  a1Region:
    region: cn-beijing
  a1Plain:
    keepAliveSeconds: 60
  a1Transit:
    transit: true
    authBaseUrl: https://auth.transit.example
`
	p, err := aliyun.ParseProducts([]byte(file))
	if err != nil {
		t.Fatalf("ParseProducts: %v", err)
	}
	tests := []struct {
		pk        string
		wantURI   string
		wantKeep  int
		wantTrans bool
	}{
		{"a1Region", "mqtts://a1Region.iot-as-mqtt.cn-beijing.aliyuncs.com:8883", 300, false},
		{"a1Plain", "mqtts://iot-default.mqtt.iothub.aliyuncs.com:8883", 60, false},
		{"a1Transit", "mqtts://iot-default.mqtt.iothub.aliyuncs.com:8883", 300, true},
		{"a1Unlisted", "mqtts://iot-default.mqtt.iothub.aliyuncs.com:8883", 300, false},
	}
	for _, tc := range tests {
		t.Run(tc.pk, func(t *testing.T) {
			got := p.Lookup(tc.pk)
			ep, err := got.Endpoint(tc.pk, aliyun.TransportTLS)
			if err != nil {
				t.Fatalf("Endpoint: %v", err)
			}
			if ep.URI != tc.wantURI || got.KeepAliveSeconds != tc.wantKeep || got.Transit != tc.wantTrans || p.InTransit(tc.pk) != tc.wantTrans {
				t.Errorf("Lookup(%q) = uri %q, keepalive %d, transit %v/%v; want %q, %d, %v",
					tc.pk, ep.URI, got.KeepAliveSeconds, got.Transit, p.InTransit(tc.pk), tc.wantURI, tc.wantKeep, tc.wantTrans)
			}
		})
	}
	if !p.AnyTransit() {
		t.Error("AnyTransit() = false with a1Transit in Transit mode")
	}
	byRegion, byProduct := p.AuthBaseURLs()
	if len(byRegion) != 1 || byRegion[aliyun.DefaultRegion] != "https://auth.default.example" {
		t.Errorf("AuthBaseURLs byRegion = %v, want the defaults' URL under %s", byRegion, aliyun.DefaultRegion)
	}
	wantByProduct := map[string]string{
		"a1Region":  "https://auth.default.example",
		"a1Plain":   "https://auth.default.example",
		"a1Transit": "https://auth.transit.example",
	}
	if len(byProduct) != len(wantByProduct) {
		t.Errorf("AuthBaseURLs byProduct = %v, want %v", byProduct, wantByProduct)
	}
	for k, v := range wantByProduct {
		if byProduct[k] != v {
			t.Errorf("AuthBaseURLs byProduct[%q] = %q, want %q", k, byProduct[k], v)
		}
	}

	var zero aliyun.Products
	if zero.AnyTransit() || zero.InTransit("a1X") {
		t.Error("the zero Products reports Transit mode")
	}
	if got := zero.Lookup("a1X"); got.KeepAliveSeconds != aliyun.DefaultKeepAliveSeconds || got.CleanSession == nil || !*got.CleanSession {
		t.Errorf("zero Products Lookup = keepalive %d, clean %v; want %d, true", got.KeepAliveSeconds, got.CleanSession, aliyun.DefaultKeepAliveSeconds)
	}
}
