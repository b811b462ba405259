package auth

import (
	"errors"
	"fmt"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/signerd/signerd/device"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// ErrDenied is the one answer to a caller that may not have a device,
// whether or not the device exists.
var ErrDenied = errors.New("permission denied")

// Policy grants backend identities products and RPCs. Devices need no
// entry: a device may use the device RPCs for itself only.
type Policy struct {
	Backends []Grant `json:"backends"`
	// DeviceRPCs are the RPCs a device may call for itself; default
	// SignMqttConnect and PreVerify. Method names only: no "*".
	DeviceRPCs []string `json:"deviceRpcs,omitempty"`
	// Gateways assign sub-devices to gateway devices for
	// SignSubDeviceLogin (see gateways.go).
	Gateways []GatewayGrant `json:"gateways,omitempty"`

	byName map[string]*Grant
}

// Grant is one backend's permissions.
type Grant struct {
	// Identity is the backend's URI SAN (spiffe://…) or JWT subject.
	Identity string `json:"identity"`
	// Products it may act for: an Alibaba productKey, or "*" for every
	// Alibaba product; another platform's as "{platform}:{product}" (Azure:
	// the hub; DPS: the ID scope) or "{platform}:*" for all of that
	// platform's (the only form for a platform without products, such as
	// "huawei:*"); "*:*" for every product of every platform. A plain "*"
	// stays Alibaba's, as it was before other platforms existed, so that no
	// existing grant widens to them unasked.
	Products []string `json:"products"`
	// RPCs it may call, by method name (e.g. "SignMqttConnect",
	// "StreamSignMqttConnect": see RPCNames); "*" means every RPC. A name
	// that is not a SignerService method is an error, as a misspelt one
	// would otherwise deny without a word.
	RPCs []string `json:"rpcs"`
}

// DefaultDeviceRPCs are the RPCs a device may call for itself: its own
// platform's sign RPC (a device's identity carries its platform, so a
// device of one platform never matches another platform's device) and
// Alibaba's PreVerify.
var DefaultDeviceRPCs = []string{"SignMqttConnect", "PreVerify",
	"SignAzureMqttConnect", "SignAzureDpsMqttConnect", "SignTencentMqttConnect", "SignHuaweiMqttConnect", "SignOnenetMqttConnect"}

// ParsePolicy reads a policy file (YAML or JSON); unknown keys, bad
// productKeys and unknown RPC names are errors naming the field.
func ParsePolicy(data []byte) (*Policy, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	// Strict: unknown keys, duplicate keys and keys in the wrong case
	// ("Products:") are errors, not silently ignored settings.
	var p Policy
	strict, err := sigsjson.UnmarshalStrict(js, &p)
	if err != nil {
		return nil, fmt.Errorf("parse policy: %w", errors.Join(append(strict, err)...))
	}
	// Unknown keys do not stop the checks of the known ones: every problem
	// of the file is reported at once.
	if err := errors.Join(append(strict, p.init())...); err != nil {
		return nil, fmt.Errorf("policy:\n%w", err)
	}
	return &p, nil
}

// NewPolicy builds a policy from grants (tests, -dev).
func NewPolicy(grants ...Grant) (*Policy, error) {
	p := &Policy{Backends: grants}
	return p, p.init()
}

func (p *Policy) init() error {
	var errs []error
	if len(p.DeviceRPCs) == 0 {
		p.DeviceRPCs = DefaultDeviceRPCs
	}
	for _, rpc := range p.DeviceRPCs {
		// No wildcard for devices: an RPC added later must not become
		// callable by every device without a policy change.
		if !knownRPC(rpc) {
			errs = append(errs, fmt.Errorf("deviceRpcs: %q is not an RPC (want one of %v)", rpc, RPCNames()))
		}
	}
	p.byName = make(map[string]*Grant, len(p.Backends))
	for i := range p.Backends {
		g := &p.Backends[i]
		switch {
		case g.Identity == "":
			errs = append(errs, fmt.Errorf("backends[%d].identity: required", i))
		case p.byName[g.Identity] != nil:
			errs = append(errs, fmt.Errorf("backends[%d].identity %q: listed twice", i, g.Identity))
		default:
			// An entry no certificate or token can name would deny without
			// a word; one with look-alike characters would mislead.
			if err := ValidateBackendName(g.Identity); err != nil {
				errs = append(errs, fmt.Errorf("backends[%d].identity: %w", i, err))
			}
		}
		if len(g.Products) == 0 {
			errs = append(errs, fmt.Errorf("backends[%d].products: required (use \"*\" for all)", i))
		}
		for _, pk := range g.Products {
			if err := checkProductGrant(pk); err != nil {
				errs = append(errs, fmt.Errorf("backends[%d].products: %q: %w", i, pk, err))
			}
		}
		if len(g.RPCs) == 0 {
			errs = append(errs, fmt.Errorf("backends[%d].rpcs: required (use \"*\" for all)", i))
		}
		for _, rpc := range g.RPCs {
			// A misspelt RPC would silently deny: refuse it instead.
			if rpc != "*" && !knownRPC(rpc) {
				errs = append(errs, fmt.Errorf("backends[%d].rpcs: %q is not an RPC (want \"*\" or one of %v)", i, rpc, RPCNames()))
			}
		}
		p.byName[g.Identity] = g
	}
	errs = append(errs, p.initGateways()...)
	return errors.Join(errs...)
}

// RPCNames are the names a policy may grant: every method of
// SignerService, unary and streaming alike (the service descriptor lists
// them apart), so that no RPC needs "*" to be callable.
func RPCNames() []string {
	desc := signerv1.SignerService_ServiceDesc
	names := make([]string, 0, len(desc.Methods)+len(desc.Streams))
	for _, m := range desc.Methods {
		names = append(names, m.MethodName)
	}
	for _, s := range desc.Streams {
		names = append(names, s.StreamName)
	}
	return names
}

func knownRPC(name string) bool { return contains(RPCNames(), name) }

// MayCall reports whether the policy grants id the RPC for some device: the
// gate of the RPCs that name their devices only inside the request (batch
// and stream), whose items Authorize then checks one by one.
func (p *Policy) MayCall(id Identity, rpc string) bool {
	switch id.Kind {
	case KindDevice:
		return contains(p.DeviceRPCs, rpc)
	case KindBackend:
		g := p.byName[id.Name]
		return g != nil && (contains(g.RPCs, "*") || contains(g.RPCs, rpc))
	}
	return false
}

// Authorize decides whether id may call rpc (the method name, e.g.
// "SignMqttConnect") for the Alibaba device productKey/deviceName: see
// AuthorizeID.
func (p *Policy) Authorize(id Identity, rpc, productKey, deviceName string) error {
	return p.AuthorizeID(id, rpc, device.ID{ProductKey: productKey, DeviceName: deviceName})
}

// AuthorizeID decides whether id may call rpc for dev. A device may call
// its deviceRpcs for itself only, the whole ID equal (platform and module
// included); a backend, the RPCs and products its grant names. It never
// looks at the secret store: the decision is made on names alone.
func (p *Policy) AuthorizeID(id Identity, rpc string, dev device.ID) error {
	switch id.Kind {
	case KindDevice:
		if contains(p.DeviceRPCs, rpc) && id.Device() == dev {
			return nil
		}
	case KindBackend:
		g := p.byName[id.Name]
		if g != nil && (contains(g.RPCs, "*") || contains(g.RPCs, rpc)) && grantsProduct(g.Products, dev) {
			return nil
		}
	}
	return ErrDenied
}

// grantsProduct reports whether the product entries of a grant cover dev.
func grantsProduct(products []string, dev device.ID) bool {
	for _, e := range products {
		platform, product, qualified := strings.Cut(e, ":")
		switch {
		case !qualified:
			if dev.Platform == "" && (e == "*" || e == dev.ProductKey) {
				return true
			}
		case platform == "*":
			return true // "*:*", the only form checkProductGrant lets through
		case platform == dev.Platform && (product == "*" || product == dev.ProductKey):
			return true
		}
	}
	return false
}

// checkProductGrant checks one products entry of a grant.
func checkProductGrant(e string) error {
	platform, product, qualified := strings.Cut(e, ":")
	switch {
	case !qualified:
		if e != "*" && device.ValidateProductKey(e) != nil {
			return errors.New("not an Alibaba productKey (another platform's product is written {platform}:{product})")
		}
		return nil
	case platform == "*":
		if product != "*" {
			return errors.New(`every platform is written "*:*"`)
		}
		return nil
	}
	pl, ok := device.Lookup(platform)
	switch {
	case !ok:
		return fmt.Errorf("platform %q is not one this server knows", platform)
	case product == "*":
		return nil
	case !pl.Products:
		return fmt.Errorf(`platform %s has no products: grant "%s:*"`, platform, platform)
	case product == "" || strings.ContainsAny(product, "/:*"):
		return errors.New("not a product name")
	}
	for i := 0; i < len(product); i++ {
		if product[i] <= ' ' || product[i] >= 0x7f {
			return errors.New("not a product name")
		}
	}
	return nil
}
