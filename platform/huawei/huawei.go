package huawei

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
	sign "github.com/signerd/signerd/signing/huawei"
)

// RPC is the SignerService method the Signer answers.
const RPC = "SignHuaweiMqttConnect"

// KeepAliveSeconds is the keep-alive handed to devices: IoTDA accepts
// 30–1200 s and recommends 120 s ("心跳时间限定为30至1200秒，推荐设置为120秒",
// MQTT usage limits, https://support.huaweicloud.com/devg-iothub/iot_02_2200.html).
const KeepAliveSeconds = 120

// DefaultLocation is where the devices' secrets are unless settings say
// otherwise: the secret string as the platform issued it, whose bytes are
// the HMAC's message.
var DefaultLocation = secrets.Location{
	Mount:        "iot",
	PathTemplate: "huawei/devices/{deviceName}",
	Field:        "secret",
	Encoding:     secrets.EncodingRaw,
}

// Module is the platform as cmd/signerd wires it.
type Module struct{}

var _ platform.Module = Module{}

// Name implements platform.Module.
func (Module) Name() string { return sign.PlatformName }

// settings is the platform's section of the platforms file.
type settings struct {
	// Host is the instance's device access address; nil (left out) turns
	// the platform off.
	Host  *string           `json:"host"`
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
	var hostErr error
	if s.Host != nil {
		if err := sign.ValidateHost(*s.Host); err != nil {
			var fe *device.FieldError
			errors.As(err, &fe)
			hostErr = fmt.Errorf("host %q: %s", *s.Host, fe.Reason)
		}
	}
	if err := errors.Join(decodeErr, hostErr, locErr); err != nil {
		return platform.Config{}, err
	}
	c := platform.Config{Locations: map[string]secrets.Location{sign.PlatformName: loc}}
	if s.Host != nil {
		c.Signers = []platform.Signer{signer{host: *s.Host}}
	}
	return c, nil
}

// signer answers SignHuaweiMqttConnect for the devices of one instance.
type signer struct {
	host string
}

func (signer) RPC() string { return RPC }

// Device implements platform.Signer.
func (signer) Device(req proto.Message) (device.ID, error) {
	r, err := request(req)
	if err != nil {
		return device.ID{}, err
	}
	return deviceID(r), nil
}

func request(req proto.Message) (*signerv1.SignHuaweiMqttConnectRequest, error) {
	r, ok := req.(*signerv1.SignHuaweiMqttConnectRequest)
	if !ok || r == nil {
		return nil, fmt.Errorf("%s: request is %T, want *signerv1.SignHuaweiMqttConnectRequest", RPC, req)
	}
	return r, nil
}

func deviceID(r *signerv1.SignHuaweiMqttConnectRequest) device.ID {
	return device.ID{Platform: sign.PlatformName, DeviceName: r.GetDeviceId()}
}

// Sign implements platform.Signer.
func (s signer) Sign(ctx context.Context, req proto.Message, now time.Time, keys platform.Keys) (platform.Login, error) {
	r, err := request(req)
	if err != nil {
		return platform.Login{}, err
	}
	id := deviceID(r)
	transport, port, scheme, transportErr := endpoint(r.GetTransport())
	if err := errors.Join(id.Validate(), transportErr); err != nil {
		return platform.Login{}, err
	}
	// The API's default is a checked timestamp; only an explicit false
	// asks for a login the platform accepts at any time.
	check := r.CheckTimestamp == nil || *r.CheckTimestamp
	mac := func(key []byte) ([]byte, error) {
		return keys.MACSecret(ctx, id, secrets.HMACSHA256, key)
	}
	login, err := sign.SignConnect(sign.Request{DeviceID: id.DeviceName, CheckTimestamp: check, IssuedAt: now}, mac)
	if err != nil {
		return platform.Login{}, serverErr(err)
	}
	var expiresAt time.Time // zero: an unchecked login does not expire
	if login.ExpiresAt != 0 {
		expiresAt = time.Unix(login.ExpiresAt, 0).UTC()
	}
	return platform.Login{
		Host:             s.host,
		Port:             port,
		ClientID:         login.ClientID,
		Username:         login.Username,
		Password:         login.Password,
		Transport:        transport,
		URI:              scheme + "://" + s.host + ":" + strconv.Itoa(port),
		KeepAliveSeconds: KeepAliveSeconds,
		CleanSession:     true,
		ProtocolVersion:  "3.1.1",
		ExpiresAt:        expiresAt,
	}, nil
}

// endpoint returns the transport a request asks for (MQTTS when it names
// none, as the platform recommends), its port and URI scheme, or a
// transport *FieldError.
func endpoint(t signerv1.Transport) (signerv1.Transport, int, string, error) {
	switch t {
	case signerv1.Transport_TRANSPORT_UNSPECIFIED, signerv1.Transport_TRANSPORT_TLS:
		return signerv1.Transport_TRANSPORT_TLS, sign.DefaultMQTTSPort, "mqtts", nil
	case signerv1.Transport_TRANSPORT_TCP:
		return signerv1.Transport_TRANSPORT_TCP, sign.DefaultMQTTPort, "tcp", nil
	}
	return 0, 0, "", &device.FieldError{Field: "transport", Reason: "must be TRANSPORT_TLS (8883, the default) or TRANSPORT_TCP (1883)"}
}

// serverErr passes SignConnect's errors on, except that an issuedAt
// *FieldError is the server's clock, not the caller's input: it becomes a
// plain error (INTERNAL) that no longer reads as a field violation.
func serverErr(err error) error {
	var fe *device.FieldError
	if errors.As(err, &fe) && fe.Field == "issuedAt" {
		return fmt.Errorf("%s: the server's clock gives an issue time the login cannot carry (%s)", RPC, fe.Reason)
	}
	return err
}
