package aliyun

import (
	"errors"
	"fmt"
	"sort"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/signerd/signerd/device"
)

// Product holds the per-product settings an answer depends on: where the
// product's devices connect, how they keep the session, where the platform's
// auth endpoint is, and whether Vault Transit holds their keys.
type Product struct {
	// Region of a public instance (legacy endpoint); default cn-shanghai.
	Region string `json:"region,omitempty"`
	// InstanceID of an enterprise instance; wins over Region.
	InstanceID string `json:"instanceId,omitempty"`
	// Host, when set, is used as is and wins over both.
	Host string `json:"host,omitempty"`
	// Transit keeps this product's device secrets in Vault Transit: Vault
	// computes every HMAC and signerd never holds a secret. Only
	// hmacsha256 can be served (Transit has no SHA-1 or MD5 HMAC).
	Transit bool `json:"transit,omitempty"`
	// AuthBaseURL overrides the platform's auth endpoint for PreVerify
	// (https://iot-auth.{region}.aliyuncs.com): private deployments, tests.
	AuthBaseURL string `json:"authBaseUrl,omitempty"`
	// Ports per transport; defaults 1883 (TCP, TLS) and 443 (WSS).
	TCPPort int `json:"tcpPort,omitempty"`
	TLSPort int `json:"tlsPort,omitempty"`
	WSSPort int `json:"wssPort,omitempty"`
	// KeepAliveSeconds is handed to devices; the platform accepts 30–1200.
	KeepAliveSeconds int `json:"keepAliveSeconds,omitempty"`
	// CleanSession is handed to devices; nil means true.
	CleanSession *bool `json:"cleanSession,omitempty"`
}

// Platform limits and defaults for MQTT keep-alive.
const (
	DefaultKeepAliveSeconds = 300
	MinKeepAliveSeconds     = 30
	MaxKeepAliveSeconds     = 1200
)

// Products is the per-product settings table: defaults plus overrides by
// productKey. The zero value serves every product with the defaults.
type Products struct {
	Defaults Product            `json:"defaults"`
	Products map[string]Product `json:"products"`
}

// Lookup returns the settings for one product: its entry with unset fields
// taken from the defaults.
func (p *Products) Lookup(productKey string) Product {
	d := p.Defaults
	o, ok := p.Products[productKey]
	if !ok {
		return withBuiltins(d)
	}
	// The endpoint is chosen as a whole: a product that names any of
	// region, instance or host does not inherit the others from the
	// defaults, or a default instance id would silently beat its region.
	if o.Region == "" && o.InstanceID == "" && o.Host == "" {
		o.Region, o.InstanceID, o.Host = d.Region, d.InstanceID, d.Host
	}
	if o.AuthBaseURL == "" {
		o.AuthBaseURL = d.AuthBaseURL
	}
	o.Transit = o.Transit || d.Transit
	if o.TCPPort == 0 {
		o.TCPPort = d.TCPPort
	}
	if o.TLSPort == 0 {
		o.TLSPort = d.TLSPort
	}
	if o.WSSPort == 0 {
		o.WSSPort = d.WSSPort
	}
	if o.KeepAliveSeconds == 0 {
		o.KeepAliveSeconds = d.KeepAliveSeconds
	}
	if o.CleanSession == nil {
		o.CleanSession = d.CleanSession
	}
	return withBuiltins(o)
}

func withBuiltins(p Product) Product {
	if p.KeepAliveSeconds == 0 {
		p.KeepAliveSeconds = DefaultKeepAliveSeconds
	}
	if p.CleanSession == nil {
		t := true
		p.CleanSession = &t
	}
	return p
}

// Validate reports every problem in the table, one line each.
func (p *Products) Validate() error {
	var errs []error
	check := func(name string, pr Product) {
		if err := pr.settings().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if k := pr.KeepAliveSeconds; k != 0 && (k < MinKeepAliveSeconds || k > MaxKeepAliveSeconds) {
			errs = append(errs, fmt.Errorf("%s: keepAliveSeconds %d is outside the platform's range %d–%d",
				name, k, MinKeepAliveSeconds, MaxKeepAliveSeconds))
		}
	}
	check("defaults", p.Defaults)
	keys := make([]string, 0, len(p.Products))
	for k := range p.Products {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := device.ValidateProductKey(k); err != nil {
			errs = append(errs, fmt.Errorf("products: key %q: %w", k, err))
		}
		check("products."+k, p.Products[k])
	}
	return errors.Join(errs...)
}

// ParseProducts reads a products file, YAML or JSON (JSON is YAML). Unknown
// keys are errors: a misspelt setting must not silently fall back to a
// default.
func ParseProducts(data []byte) (*Products, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse products: %w", err)
	}
	// Strict: unknown keys, duplicate keys and keys in the wrong case
	// ("Products:") are errors, not silently ignored settings.
	var p Products
	strict, err := sigsjson.UnmarshalStrict(js, &p)
	if err != nil {
		return nil, fmt.Errorf("parse products: %w", errors.Join(append(strict, err)...))
	}
	// Unknown keys do not stop the checks of the known ones: every problem
	// of the file is reported at once.
	if err := errors.Join(append(strict, p.Validate())...); err != nil {
		return nil, fmt.Errorf("invalid products:\n%w", err)
	}
	return &p, nil
}

// Endpoint resolves the MQTT endpoint productKey's devices connect to over
// transport t, from this product's settings.
func (p Product) Endpoint(productKey string, t Transport) (Endpoint, error) {
	return ResolveEndpoint(productKey, p.settings(), t)
}

func (p Product) settings() ProductSettings {
	return ProductSettings{
		Region: p.Region, InstanceID: p.InstanceID, Host: p.Host,
		TCPPort: p.TCPPort, TLSPort: p.TLSPort, WSSPort: p.WSSPort,
	}
}

// AuthBaseURLs returns the auth endpoint overrides: by productKey for every
// listed product, and by region for the defaults.
func (p *Products) AuthBaseURLs() (byRegion, byProduct map[string]string) {
	byRegion, byProduct = map[string]string{}, map[string]string{}
	if u := p.Defaults.AuthBaseURL; u != "" {
		r := p.Defaults.Region
		if r == "" {
			r = DefaultRegion
		}
		byRegion[r] = u
	}
	for k := range p.Products {
		if u := p.Lookup(k).AuthBaseURL; u != "" {
			byProduct[k] = u
		}
	}
	return byRegion, byProduct
}

// InTransit reports whether productKey's device keys are in Vault Transit
// (its own setting or the defaults'), for secrets.NewRouter.
func (p *Products) InTransit(productKey string) bool { return p.Lookup(productKey).Transit }

// AnyTransit reports whether some product uses Transit mode.
func (p *Products) AnyTransit() bool {
	if p.Defaults.Transit {
		return true
	}
	for _, pr := range p.Products {
		if pr.Transit {
			return true
		}
	}
	return false
}
