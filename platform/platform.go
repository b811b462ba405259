package platform

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/device"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// Keys is what a platform's signer may ask about a device's key. The key
// itself is never handed out: the signer gets MACs, computed wherever the
// key lives (secrets.Router implements it).
type Keys interface {
	// MAC is the HMAC of content keyed by the device's key.
	MAC(ctx context.Context, id device.ID, alg secrets.Algorithm, content []byte) ([]byte, error)
	// MACSecret is the HMAC of the device's key, keyed by key (platforms
	// that key the HMAC with a public value, as Huawei IoTDA does).
	MACSecret(ctx context.Context, id device.ID, alg secrets.Algorithm, key []byte) ([]byte, error)
}

// Login is an MQTT login as every platform's sign RPC answers it; the
// service adds the issue time and writes it as a SignMqttConnectResponse.
type Login struct {
	Host               string
	Port               int
	ClientID, Username string
	Password           string
	Transport          signerv1.Transport
	URI                string
	KeepAliveSeconds   int
	CleanSession       bool
	ProtocolVersion    string
	ExpiresAt          time.Time // zero: the credential does not expire
}

// Signer answers one SignerService RPC that signs a platform's MQTT login.
// A platform's package provides one per RPC, and the server is given them
// at start-up (service.WithSigners): the service itself knows no
// platform's rules, and a new platform is a new Signer, its RPC in the
// proto and a line of wiring.
//
// The service calls Device first and asks the Authorizer about that
// device, then Sign; it reports the outcome to the audit log and maps
// errors to codes. So a Signer validates, signs and nothing else.
type Signer interface {
	// RPC is the method it answers, such as "SignAzureMqttConnect".
	RPC() string
	// Device names the device req asks for, as the platform identifies
	// it (device.ID with the platform's name). It must not validate beyond
	// what it needs to build the ID, nor do I/O: authorization decides on
	// this ID before anything else happens.
	Device(req proto.Message) (device.ID, error)
	// Sign validates req (errors: *device.FieldError values naming the
	// request's JSON fields, joined) and returns the login, with MACs
	// from keys and now as the issue time.
	Sign(ctx context.Context, req proto.Message, now time.Time, keys Keys) (Login, error)
}

// Module is a platform as the command wires it: its settings section in
// the platforms file (-platforms), and what it serves with them. A
// platform's package exports one; cmd/signerd lists them, and that list is
// the only place outside a platform's own tree that names it.
type Module interface {
	// Name is the platform's key in the platforms file, such as "azure".
	Name() string
	// Configure reads the platform's section (JSON; nil when the file has
	// none or there is no file) strictly, reporting every bad setting at
	// once, and returns what the platform serves with it.
	Configure(section []byte) (Config, error)
}

// Config is what a configured platform serves.
type Config struct {
	// Signers answer the platform's RPCs. None means the platform is off
	// (its RPCs answer UNIMPLEMENTED), as when it needs settings it was
	// not given.
	Signers []Signer
	// Locations say where in Vault KV the keys of its devices are, by
	// device.ID.Platform (a platform may name more than one kind of key,
	// as Azure does DPS group keys).
	Locations map[string]secrets.Location
}
