package azure

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	azuresign "github.com/signerd/signerd/signing/azure"
)

// rpcDPS is the DPS registration login RPC.
const rpcDPS = "SignAzureDpsMqttConnect"

// dpsSigner signs DPS registration logins of devices of symmetric-key
// enrollment groups.
type dpsSigner struct {
	// scopes are the DPS instances by ID scope. Read-only once configured.
	scopes map[string]*dpsSettings
}

// RPC implements platform.Signer.
func (*dpsSigner) RPC() string { return rpcDPS }

// Device implements platform.Signer.
func (*dpsSigner) Device(req proto.Message) (device.ID, error) {
	r, ok := req.(*signerv1.SignAzureDpsMqttConnectRequest)
	if !ok {
		return device.ID{}, errRequestType(rpcDPS, req)
	}
	return device.ID{Platform: azuresign.PlatformDPS, ProductKey: r.GetIdScope(), DeviceName: r.GetRegistrationId()}, nil
}

// Sign implements platform.Signer: the registration's key is derived from
// the key of the enrollment group the settings put it in.
func (d *dpsSigner) Sign(ctx context.Context, req proto.Message, now time.Time, keys platform.Keys) (platform.Login, error) {
	r, ok := req.(*signerv1.SignAzureDpsMqttConnectRequest)
	if !ok {
		return platform.Login{}, errRequestType(rpcDPS, req)
	}
	lifetime, ttlErr := ttl(r.GetTtlSeconds())
	if err := fieldErrors(azuresign.ValidateIDScope(r.GetIdScope()), azuresign.ValidateRegistrationID(r.GetRegistrationId()), ttlErr); err != nil {
		return platform.Login{}, err
	}
	group, err := d.group(r.GetIdScope(), r.GetRegistrationId())
	if err != nil {
		return platform.Login{}, err
	}
	mac, err := azuresign.DerivedMAC(groupMAC(ctx, keys, r.GetIdScope(), group), r.GetRegistrationId())
	if err != nil {
		return platform.Login{}, fmt.Errorf("derive the key of DPS registration %s/%s from enrollment group %s: %w", r.GetIdScope(), r.GetRegistrationId(), group, err)
	}
	l, err := azuresign.SignDPS(azuresign.DPSRequest{
		IDScope:        r.GetIdScope(),
		RegistrationID: r.GetRegistrationId(),
		IssuedAt:       now,
		TTL:            lifetime,
	}, mac)
	if err != nil {
		return platform.Login{}, fmt.Errorf("sign the DPS login of %s/%s: %w", r.GetIdScope(), r.GetRegistrationId(), err)
	}
	ep := azuresign.DPSEndpoint()
	return platform.Login{
		Host:             ep.Host,
		Port:             ep.Port,
		ClientID:         l.ClientID,
		Username:         l.Username,
		Password:         l.Password,
		Transport:        signerv1.Transport_TRANSPORT_TLS,
		URI:              ep.URI,
		KeepAliveSeconds: keepAliveSeconds,
		CleanSession:     dpsCleanSession,
		ProtocolVersion:  protocolVersion,
		ExpiresAt:        time.Unix(l.ExpiresAt, 0).UTC(),
	}, nil
}

// group returns the name of the enrollment group of registration id in
// scope: the first group with a matching pattern. An unknown scope or a
// registration of no group is an unknown device (NOT_FOUND), as a device
// without a key in Vault is.
func (d *dpsSigner) group(scope, id string) (string, error) {
	s := d.scopes[scope]
	if s == nil {
		return "", fmt.Errorf("DPS registration %s/%s: the ID scope is not in the azure platform settings: %w", scope, id, secrets.ErrNotFound)
	}
	for _, g := range s.Groups {
		for _, p := range g.Registrations {
			if matches(p, id) {
				return g.Name, nil
			}
		}
	}
	return "", fmt.Errorf("DPS registration %s/%s belongs to no enrollment group of the azure platform settings: %w", scope, id, secrets.ErrNotFound)
}
