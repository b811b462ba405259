package tencent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/platform/internal/kvsettings"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	sign "github.com/signerd/signerd/signing/tencent"
)

// RPC is the SignerService method the Signer answers.
const RPC = "SignTencentMqttConnect"

// KeepAliveSeconds is the keep-alive handed to devices: the interval of
// Tencent's own device SDK (QCLOUD_IOT_MQTT_KEEP_ALIVE_INTERNAL, 240 s, in
// qcloud-iot-sdk-embedded-c's qcloud_iot_export.h), inside the range the
// MQTT access guide allows ("KeepAlive: the time to keep the connection
// alive, which ranges from 0 to 900s",
// https://www.tencentcloud.com/document/product/1105/41824).
const KeepAliveSeconds = 240

// DefaultLocation is where the devices' keys are unless settings say
// otherwise: the devicePsk, base64 as the console shows it.
var DefaultLocation = secrets.Location{
	Mount:        "iot",
	PathTemplate: "tencent/{productKey}/{deviceName}",
	Field:        "devicePsk",
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
		Signers:   []platform.Signer{&signer{connID: randomConnID}},
		Locations: map[string]secrets.Location{sign.PlatformName: loc},
	}, nil
}

// signer answers SignTencentMqttConnect.
type signer struct {
	// connID draws the login's connection ID (tests fix it).
	connID func() (string, error)
}

func (*signer) RPC() string { return RPC }

// Device implements platform.Signer.
func (*signer) Device(req proto.Message) (device.ID, error) {
	r, err := request(req)
	if err != nil {
		return device.ID{}, err
	}
	return deviceID(r), nil
}

func request(req proto.Message) (*signerv1.SignTencentMqttConnectRequest, error) {
	r, ok := req.(*signerv1.SignTencentMqttConnectRequest)
	if !ok || r == nil {
		return nil, fmt.Errorf("%s: request is %T, want *signerv1.SignTencentMqttConnectRequest", RPC, req)
	}
	return r, nil
}

func deviceID(r *signerv1.SignTencentMqttConnectRequest) device.ID {
	return device.ID{Platform: sign.PlatformName, ProductKey: r.GetProductId(), DeviceName: r.GetDeviceName()}
}

// algorithms maps each method to the HMAC the key's home computes.
var algorithms = map[sign.Method]secrets.Algorithm{
	sign.MethodHMACSHA256: secrets.HMACSHA256,
	sign.MethodHMACSHA1:   secrets.HMACSHA1,
}

// Sign implements platform.Signer.
func (s *signer) Sign(ctx context.Context, req proto.Message, now time.Time, keys platform.Keys) (platform.Login, error) {
	r, err := request(req)
	if err != nil {
		return platform.Login{}, err
	}
	id := deviceID(r)
	// Every invalid field at once, before anything is drawn or looked up.
	method, methodErr := sign.ParseMethod(r.GetSignMethod())
	ttl := time.Duration(r.GetTtlSeconds()) * time.Second
	transport, port, scheme, transportErr := endpoint(r.GetTransport())
	if err := errors.Join(id.Validate(), methodErr, sign.ValidateTTL(ttl), transportErr); err != nil {
		return platform.Login{}, err
	}
	connID, err := s.connID()
	if err != nil {
		return platform.Login{}, fmt.Errorf("%s: drawing the connection ID: %w", RPC, err)
	}
	mac := func(m sign.Method, content []byte) ([]byte, error) {
		return keys.MAC(ctx, id, algorithms[m], content)
	}
	login, err := sign.SignConnect(sign.Request{
		ProductID: id.ProductKey, DeviceName: id.DeviceName, ConnID: connID,
		Method: method, TTL: ttl, IssuedAt: now,
	}, mac)
	if err != nil {
		return platform.Login{}, serverErr(err)
	}
	host := sign.Host(id.ProductKey)
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

// endpoint returns the transport a request asks for (plain TCP on 1883
// when it names none, the access guide's port for key-authenticated
// devices), its port and URI scheme, or a transport *FieldError.
func endpoint(t signerv1.Transport) (signerv1.Transport, int, string, error) {
	switch t {
	case signerv1.Transport_TRANSPORT_UNSPECIFIED, signerv1.Transport_TRANSPORT_TCP:
		return signerv1.Transport_TRANSPORT_TCP, sign.DefaultPort, "tcp", nil
	case signerv1.Transport_TRANSPORT_TLS:
		return signerv1.Transport_TRANSPORT_TLS, sign.DefaultTLSPort, "mqtts", nil
	}
	return 0, 0, "", &device.FieldError{Field: "transport", Reason: "must be TRANSPORT_TCP (1883, the default) or TRANSPORT_TLS (8883)"}
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

// connIDChars are the characters of a connection ID.
const connIDChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomConnID draws 5 characters of [a-zA-Z0-9] from crypto/rand, each
// uniformly, as Tencent's SDK draws the connId.
func randomConnID() (string, error) {
	b := make([]byte, 5)
	n := big.NewInt(int64(len(connIDChars)))
	for i := range b {
		k, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", err
		}
		b[i] = connIDChars[k.Int64()]
	}
	return string(b), nil
}
