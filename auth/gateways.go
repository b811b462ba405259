package auth

import (
	"fmt"
	"strings"

	"github.com/signerd/signerd/device"
)

// rpcSubDeviceLogin is the RPC a gateway's sub-devices are signed with.
const rpcSubDeviceLogin = "SignSubDeviceLogin"

// GatewayGrant assigns sub-devices to one gateway device: the gateway (or a
// backend acting for it) may have SignSubDeviceLogin answers for them, and
// for no other sub-device. In a policy file:
//
//	gateways:
//	  - gateway: a1GwProduct/gw-0001
//	    subDevices: ["a1Sensors/*", "a1Meters/meter-0001"]
type GatewayGrant struct {
	// Gateway is the gateway device, "{productKey}/{deviceName}".
	Gateway string `json:"gateway"`
	// SubDevices are "{productKey}/{deviceName}" or "{productKey}/*" (every
	// device of the product).
	SubDevices []string `json:"subDevices"`

	// Parsed by Policy.init.
	productKey, deviceName string
	devices                map[[2]string]bool
	products               map[string]bool
}

// splitDevice parses "{productKey}/{deviceName}"; with wildcard, the name
// may be "*".
func splitDevice(s string, wildcard bool) (pk, dn string, ok bool) {
	pk, dn, ok = strings.Cut(s, "/")
	if !ok || device.ValidateProductKey(pk) != nil {
		return "", "", false
	}
	if wildcard && dn == "*" {
		return pk, dn, true
	}
	return pk, dn, device.ValidateDeviceName(dn) == nil
}

// initGateways validates and indexes p.Gateways; it returns one error per
// problem, naming the entry.
func (p *Policy) initGateways() []error {
	var errs []error
	seen := make(map[string]int, len(p.Gateways))
	for i := range p.Gateways {
		g := &p.Gateways[i]
		pk, dn, ok := splitDevice(g.Gateway, false)
		switch {
		case g.Gateway == "":
			errs = append(errs, fmt.Errorf("gateways[%d].gateway: required", i))
		case !ok:
			errs = append(errs, fmt.Errorf("gateways[%d].gateway: %q is not {productKey}/{deviceName}", i, g.Gateway))
		default:
			if j, dup := seen[g.Gateway]; dup {
				errs = append(errs, fmt.Errorf("gateways[%d].gateway %q: listed twice (also gateways[%d])", i, g.Gateway, j))
			}
			seen[g.Gateway] = i
		}
		g.productKey, g.deviceName = pk, dn
		if len(g.SubDevices) == 0 {
			errs = append(errs, fmt.Errorf("gateways[%d].subDevices: required", i))
		}
		g.devices, g.products = make(map[[2]string]bool), make(map[string]bool)
		for _, s := range g.SubDevices {
			spk, sdn, ok := splitDevice(s, true)
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("gateways[%d].subDevices: %q is not {productKey}/{deviceName} or {productKey}/*", i, s))
			case spk == pk && sdn == dn:
				errs = append(errs, fmt.Errorf("gateways[%d].subDevices: %q is the gateway itself", i, s))
			case sdn == "*":
				g.products[spk] = true
			default:
				g.devices[[2]string{spk, sdn}] = true
			}
		}
	}
	return errs
}

// assigned reports whether the policy assigns subPK/subDN to the gateway
// gwPK/gwDN.
func (p *Policy) assigned(gwPK, gwDN, subPK, subDN string) bool {
	if gwPK == subPK && gwDN == subDN {
		return false
	}
	for i := range p.Gateways {
		g := &p.Gateways[i]
		if g.productKey == gwPK && g.deviceName == gwDN {
			return g.products[subPK] || g.devices[[2]string{subPK, subDN}]
		}
	}
	return false
}

// AuthorizeSubDevice decides whether id may have the SignSubDeviceLogin
// answer for the sub-device subPK/subDN, logged in by the gateway
// gwPK/gwDN. The policy must assign the sub-device to the gateway, and the
// caller must be
//
//   - the gateway device itself, with SignSubDeviceLogin in deviceRpcs; or
//   - a backend granted SignSubDeviceLogin on both the gateway's and the
//     sub-device's products.
//
// Like Authorize, it decides on names alone, never asking the secret store.
func (p *Policy) AuthorizeSubDevice(id Identity, gwPK, gwDN, subPK, subDN string) error {
	if !p.assigned(gwPK, gwDN, subPK, subDN) {
		return ErrDenied
	}
	switch id.Kind {
	case KindDevice:
		if id.Device() == (device.ID{ProductKey: gwPK, DeviceName: gwDN}) && contains(p.DeviceRPCs, rpcSubDeviceLogin) {
			return nil
		}
	case KindBackend:
		if p.Authorize(id, rpcSubDeviceLogin, gwPK, gwDN) == nil && p.Authorize(id, rpcSubDeviceLogin, subPK, subDN) == nil {
			return nil
		}
	}
	return ErrDenied
}
