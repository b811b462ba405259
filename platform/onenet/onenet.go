package onenet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/platform/internal/kvsettings"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	sign "github.com/signerd/signerd/signing/onenet"
)

// RPC is the SignerService method the Signer answers.
const RPC = "SignOnenetMqttConnect"

// KeepAliveSeconds is the keep-alive handed to devices. OneNET accepts
// 10–1800 s and closes a connection silent for 1.5 times it (the MQTTS
// development guide, "设备保活": "keepalive支持范围为：10~1800，单位为秒") and
// recommends no value; 120 s is well inside that range and the interval
// Huawei IoTDA recommends for the same cellular and Wi-Fi devices.
const KeepAliveSeconds = 120

// DefaultLocation is where the devices' keys are unless settings say
// otherwise: the deviceKey, base64 as the console shows it.
var DefaultLocation = secrets.Location{
	Mount:        "iot",
	PathTemplate: "onenet/{productKey}/{deviceName}",
	Field:        "deviceKey",
	Encoding:     secrets.EncodingBase64,
}

// Module is the platform as cmd/signerd wires it.
type Module struct{}

var _ platform.Module = Module{}

// Name implements platform.Module.
func (Module) Name() string { return sign.PlatformName }

// settings is the platform's section of the platforms file.
type settings struct {
	Vault *kvsettings.Vault `json:"vault"`
}

// Configure implements platform.Module.
func (Module) Configure(section []byte) (platform.Config, error) {
	var s settings
	checked, decodeErr := kvsettings.Decode(section, &s)
	if !checked {
		return platform.Config{}, decodeErr
	}
	loc, locErr := s.Vault.Location(DefaultLocation)
	if err := errors.Join(decodeErr, locErr); err != nil {
		return platform.Config{}, err
	}
	return platform.Config{
		Signers:   []platform.Signer{signer{}},
		Locations: map[string]secrets.Location{sign.PlatformName: loc},
	}, nil
}

// signer answers SignOnenetMqttConnect.
type signer struct{}

func (signer) RPC() string { return RPC }

// Device implements platform.Signer.
func (signer) Device(req proto.Message) (device.ID, error) {
	r, err := request(req)
	if err != nil {
		return device.ID{}, err
	}
	return deviceID(r), nil
}

func request(req proto.Message) (*signerv1.SignOnenetMqttConnectRequest, error) {
	r, ok := req.(*signerv1.SignOnenetMqttConnectRequest)
	if !ok || r == nil {
		return nil, fmt.Errorf("%s: request is %T, want *signerv1.SignOnenetMqttConnectRequest", RPC, req)
	}
	return r, nil
}

func deviceID(r *signerv1.SignOnenetMqttConnectRequest) device.ID {
	return device.ID{Platform: sign.PlatformName, ProductKey: r.GetProductId(), DeviceName: r.GetDeviceName()}
}

// algorithms maps each method to the HMAC the key's home computes.
var algorithms = map[sign.Method]secrets.Algorithm{
	sign.MethodSHA256: secrets.HMACSHA256,
	sign.MethodSHA1:   secrets.HMACSHA1,
	sign.MethodMD5:    secrets.HMACMD5,
}

// Sign implements platform.Signer.
func (signer) Sign(ctx context.Context, req proto.Message, now time.Time, keys platform.Keys) (platform.Login, error) {
	r, err := request(req)
	if err != nil {
		return platform.Login{}, err
	}
	id := deviceID(r)
	// Every invalid field at once, before the key is looked up.
	method, methodErr := sign.ParseMethod(r.GetSignMethod())
	ttl := time.Duration(r.GetTtlSeconds()) * time.Second
	transport, host, port, scheme, transportErr := endpoint(r.GetTransport())
	if err := errors.Join(id.Validate(), methodErr, sign.ValidateTTL(ttl), transportErr); err != nil {
		return platform.Login{}, err
	}
	mac := func(m sign.Method, content []byte) ([]byte, error) {
		return keys.MAC(ctx, id, algorithms[m], content)
	}
	login, err := sign.SignConnect(sign.Request{
		ProductID: id.ProductKey, DeviceName: id.DeviceName, Method: method, TTL: ttl, IssuedAt: now,
	}, mac)
	if err != nil {
		return platform.Login{}, serverErr(err)
	}
	return platform.Login{
		Host:             host,
		Port:             port,
		ClientID:         login.ClientID,
		Username:         login.Username,
		Password:         login.Password,
		Transport:        transport,
		URI:              scheme + "://" + host + ":" + strconv.Itoa(port),
		KeepAliveSeconds: KeepAliveSeconds,
		CleanSession:     true,
		ProtocolVersion:  "3.1.1",
		ExpiresAt:        time.Unix(login.ExpiresAt, 0).UTC(),
	}, nil
}

// endpoint returns the transport a request asks for (TLS when it names
// none: the token is a bearer credential until it expires, so it should
// not cross the network in the clear by default), its host, port and URI
// scheme, or a transport *FieldError.
func endpoint(t signerv1.Transport) (signerv1.Transport, string, int, string, error) {
	switch t {
	case signerv1.Transport_TRANSPORT_UNSPECIFIED, signerv1.Transport_TRANSPORT_TLS:
		return signerv1.Transport_TRANSPORT_TLS, sign.TLSHost, sign.TLSPort, "mqtts", nil
	case signerv1.Transport_TRANSPORT_TCP:
		return signerv1.Transport_TRANSPORT_TCP, sign.Host, sign.Port, "tcp", nil
	}
	return 0, "", 0, "", &device.FieldError{Field: "transport", Reason: "must be TRANSPORT_TLS (8883, the default) or TRANSPORT_TCP (1883)"}
}

// serverErr passes SignConnect's errors on, except that an issuedAt
// *FieldError is the server's clock, not the caller's input: it becomes a
// plain error (INTERNAL) that no longer reads as a field violation.
func serverErr(err error) error {
	var fe *device.FieldError
	if errors.As(err, &fe) && fe.Field == "issuedAt" {
		return fmt.Errorf("%s: the server's clock gives an issue time the token cannot carry (%s)", RPC, fe.Reason)
	}
	return err
}
