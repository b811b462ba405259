package azure

import (
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/secrets"
	azuresign "github.com/signerd/signerd/signing/azure"
)

// Module is the Azure platform as cmd/signerd wires it: its section
// "azure" of the platforms file.
type Module struct{}

// Name implements platform.Module.
func (Module) Name() string { return "azure" }

// Configure implements platform.Module. The IoT Hub RPC is always served
// (a hub needs no settings: its host and key paths have defaults); the DPS
// RPC only when dps names at least one ID scope, since without its groups
// no registration's key can be derived.
func (Module) Configure(section []byte) (platform.Config, error) {
	s, err := parseSettings(section)
	if err != nil {
		return platform.Config{}, err
	}
	c := platform.Config{
		Signers: []platform.Signer{&hubSigner{hubs: s.Hubs}},
		Locations: map[string]secrets.Location{
			azuresign.PlatformHub:      s.hubLocation(),
			azuresign.PlatformDPSGroup: s.groupLocation(),
		},
	}
	if len(s.DPS) > 0 {
		c.Signers = append(c.Signers, &dpsSigner{scopes: s.DPS})
	}
	return c, nil
}
