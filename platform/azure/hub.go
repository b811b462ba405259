package azure

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	azuresign "github.com/signerd/signerd/signing/azure"
)

// rpcHub is the IoT Hub login RPC.
const rpcHub = "SignAzureMqttConnect"

// hubSigner signs IoT Hub logins of devices and modules.
type hubSigner struct {
	// hubs are the hubs with settings; any other hub signs with the
	// defaults. Read-only once configured.
	hubs map[string]*hubSettings
}

// RPC implements platform.Signer.
func (*hubSigner) RPC() string { return rpcHub }

// Device implements platform.Signer.
func (*hubSigner) Device(req proto.Message) (device.ID, error) {
	r, ok := req.(*signerv1.SignAzureMqttConnectRequest)
	if !ok {
		return device.ID{}, errRequestType(rpcHub, req)
	}
	return device.ID{Platform: azuresign.PlatformHub, ProductKey: r.GetHub(), DeviceName: r.GetDeviceId(), Module: r.GetModuleId()}, nil
}

// Sign implements platform.Signer: the device's (or module's) key signs,
// or, on a hub whose devices were provisioned through a DPS enrollment
// group, the device key derived from the group's key for the device id
// (a module has a key of its own: DPS provisions devices, not modules).
func (h *hubSigner) Sign(ctx context.Context, req proto.Message, now time.Time, keys platform.Keys) (platform.Login, error) {
	r, ok := req.(*signerv1.SignAzureMqttConnectRequest)
	if !ok {
		return platform.Login{}, errRequestType(rpcHub, req)
	}
	hs := h.hubs[r.GetHub()]
	if hs == nil {
		hs = &hubSettings{}
	}
	derive := hs.DPSGroup != nil && r.GetModuleId() == ""

	// Every bad field at once, before any key is asked for.
	errs := []error{azuresign.ValidateHub(r.GetHub()), azuresign.ValidateDeviceID(r.GetDeviceId())}
	if r.GetModuleId() != "" {
		errs = append(errs, azuresign.ValidateModuleID(r.GetModuleId()))
	} else if derive && errs[1] == nil && azuresign.ValidateRegistrationID(r.GetDeviceId()) != nil {
		errs = append(errs, &device.FieldError{Field: fieldDeviceID, Reason: reasonDerived})
	}
	lifetime, err := ttl(r.GetTtlSeconds())
	errs = append(errs, err)
	transport, err := hubTransport(r.GetTransport())
	errs = append(errs, err)
	if err := fieldErrors(errs...); err != nil {
		return platform.Login{}, err
	}

	host := hs.Host
	if host == "" {
		host = azuresign.HubHost(r.GetHub())
	}
	ep, err := azuresign.HubEndpoint(host, transport)
	if err != nil { // the host was checked with the settings
		return platform.Login{}, fmt.Errorf("azure hub %s: %w", r.GetHub(), err)
	}
	id, _ := h.Device(r)
	mac := keyMAC(ctx, keys, id)
	if derive {
		g := hs.DPSGroup
		if mac, err = azuresign.DerivedMAC(groupMAC(ctx, keys, g.IDScope, g.Group), r.GetDeviceId()); err != nil {
			return platform.Login{}, fmt.Errorf("derive the key of %s from DPS enrollment group %s/%s: %w", id, g.IDScope, g.Group, err)
		}
	}
	l, err := azuresign.SignHub(azuresign.HubRequest{
		Hub:      r.GetHub(),
		Host:     hs.Host,
		DeviceID: r.GetDeviceId(),
		ModuleID: r.GetModuleId(),
		IssuedAt: now,
		TTL:      lifetime,
	}, mac)
	if err != nil {
		return platform.Login{}, fmt.Errorf("sign the IoT Hub login of %s: %w", id, err)
	}
	return platform.Login{
		Host:             ep.Host,
		Port:             ep.Port,
		ClientID:         l.ClientID,
		Username:         l.Username,
		Password:         l.Password,
		Transport:        signerTransport(transport),
		URI:              ep.URI,
		KeepAliveSeconds: keepAliveSeconds,
		CleanSession:     hubCleanSession,
		ProtocolVersion:  protocolVersion,
		ExpiresAt:        time.Unix(l.ExpiresAt, 0).UTC(),
	}, nil
}

// hubTransport maps the request's transport; unspecified is TLS.
func hubTransport(t signerv1.Transport) (azuresign.Transport, error) {
	switch t {
	case signerv1.Transport_TRANSPORT_UNSPECIFIED, signerv1.Transport_TRANSPORT_TLS:
		return azuresign.TransportTLS, nil
	case signerv1.Transport_TRANSPORT_WEBSOCKET_TLS:
		return azuresign.TransportWebSocketTLS, nil
	}
	return 0, &device.FieldError{Field: fieldTransport, Reason: reasonTransport}
}

func signerTransport(t azuresign.Transport) signerv1.Transport {
	if t == azuresign.TransportWebSocketTLS {
		return signerv1.Transport_TRANSPORT_WEBSOCKET_TLS
	}
	return signerv1.Transport_TRANSPORT_TLS
}
