package auth

import (
	"errors"
	"fmt"

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
	// Products it may act for; "*" means every product.
	Products []string `json:"products"`
	// RPCs it may call, by method name (e.g. "SignMqttConnect",
	// "StreamSignMqttConnect": see RPCNames); "*" means every RPC. A name
	// that is not a SignerService method is an error, as a misspelt one
	// would otherwise deny without a word.
	RPCs []string `json:"rpcs"`
}

// DefaultDeviceRPCs are the RPCs a device may call for itself.
var DefaultDeviceRPCs = []string{"SignMqttConnect", "PreVerify"}

// ParsePolicy reads a policy file (YAML or JSON); unknown keys, bad
// productKeys and unknown RPC names are errors naming the field.
func ParsePolicy(data []byte) (*Policy, error) {
	js, err := yaml.YAMLToJSON(data)
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
			if pk != "*" && device.ValidateProductKey(pk) != nil {
				errs = append(errs, fmt.Errorf("backends[%d].products: %q is not a productKey", i, pk))
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
// "SignMqttConnect") for the device productKey/deviceName. It never looks at
// the secret store: the decision is made on names alone.
func (p *Policy) Authorize(id Identity, rpc, productKey, deviceName string) error {
	switch id.Kind {
	case KindDevice:
		if contains(p.DeviceRPCs, rpc) && id.ProductKey == productKey && id.DeviceName == deviceName {
			return nil
		}
	case KindBackend:
		g := p.byName[id.Name]
		if g != nil && (contains(g.RPCs, "*") || contains(g.RPCs, rpc)) &&
			(contains(g.Products, "*") || contains(g.Products, productKey)) {
			return nil
		}
	}
	return ErrDenied
}
