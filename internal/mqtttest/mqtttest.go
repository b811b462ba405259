// Package mqtttest runs an embedded MQTT 3.1.1 broker (mochi-mqtt) that
// checks logins the way each IoT platform signerd signs for does, for tests
// that must show a real MQTT client gets online with signerd's answers.
//
// Every listener is on 127.0.0.1 at an ephemeral port, TLS ones with a
// server certificate from internal/pkitest, and belongs to one platform:
// the listener a CONNECT comes in on decides whose rule applies (see
// Platform and the Listener* constants; Broker.URI gives a client's broker
// URI). Every verdict is recorded as a Login with the platform and, on
// refusal, the reason; a device's second login forces its earlier
// connection offline, and a device uses only its own platform's topics.
//
// Alibaba (listeners tcp, tls and wss): plain TCP (securemode=3), TLS and
// MQTT over WebSocket over TLS (securemode=2). Its auth hook
//
//   - parses the CONNECT clientId "{id}|securemode=…,signmethod=…,timestamp=…|"
//     and username "{deviceName}&{productKey}", recomputes the password
//     with the secret given to AddDevice and compares it as the platform
//     does (hex in either case), requires the securemode of the listener,
//     a keep-alive of 30–1200 s, MQTT 3.1.1 and no will;
//   - accepts username iotId / password iotToken over TLS when the
//     emulated auth endpoint (platform/aliyun/aliyuntest) issued the pair for
//     that client id (TrustPlatform);
//   - lets a device publish and subscribe under its own topics only, and
//     forces a device's earlier connection offline when it logs in again;
//   - answers a gateway's sub-device login
//     (/ext/session/{pk}/{dn}/combine/login and combine/batch_login) on
//     the "_reply" topic after checking each sign with the sub-device's
//     secret and the gateway's topology (AddTopology).
//
// Azure IoT Hub (device and module SAS tokens, over TLS and over WebSocket
// at /$iothub/websocket), Azure DPS registration (group enrollment, the
// device key derived by the broker from the group key), Tencent, Huawei
// IoTDA and OneNET: each platform's clientId and username shape, its
// signature recomputed from the key registered with Add{Platform}Device
// (as Vault stores it) and compared in constant time, and expiry times
// and Huawei's checked timestamp against the broker's clock (WithClock).
// The rules are those of shared/PLATFORMS.md; each check's comment says
// what it enforces.
//
// The signing rules are implemented here from the platforms' descriptions,
// on crypto/hmac directly: this package must not import signerd's signing
// packages, or a bug there would be mirrored here and pass unnoticed.
package mqtttest

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/signerd/signerd/internal/pkitest"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
)

// Listener ids, as recorded in Login.Listener.
const (
	ListenerTCP = "tcp"
	ListenerTLS = "tls"
	ListenerWSS = "wss"
)

// Platform limits the broker enforces.
const (
	MinKeepAlive   = 30
	MaxKeepAlive   = 1200
	maxClientIDLen = 64
	// MaxBatchLogin is the most sub-devices one batch_login may carry.
	MaxBatchLogin = 50
)

// Codes of the sub-device login reply. 200 and 460 are the platform's
// documented success and parameter-error codes; the others are this
// broker's reading of the platform's failures (a client should treat any
// code but 200 as a failed login).
const (
	CodeSuccess        = 200
	CodeSignMismatch   = 401
	CodeBadParameter   = 460
	CodeDeviceNotFound = 6100
	CodeNoTopology     = 6401
)

// Device names a device.
type Device struct {
	ProductKey, DeviceName string
}

func (d Device) String() string { return d.ProductKey + "/" + d.DeviceName }

// Login is the broker's verdict on one CONNECT.
type Login struct {
	Listener string
	// Platform is the platform whose rule was applied: the listener's.
	Platform Platform
	ClientID string
	Username string
	// Auth is "sign" (HMAC password), "token" (Alibaba iotId/iotToken or
	// OneNET token) or "sas" (Azure shared access signature).
	Auth string
	// Device is set when accepted; see Platform for what its two fields
	// hold on each platform.
	Device   Device
	Accepted bool
	// Reason says why a login was refused.
	Reason string
}

// Message is one message a device published.
type Message struct {
	Platform Platform
	Device   Device
	Topic    string
	Payload  []byte
}

// SubDeviceLogin is one sub-device login message a gateway published.
type SubDeviceLogin struct {
	Gateway Device
	Topic   string
	Devices []Device // as named in the message
	Code    int
	Message string
}

// Option configures a Broker.
type Option func(*config)

type config struct {
	ca  *pkitest.CA
	log *slog.Logger
	now func() time.Time
	// before and after are extra hooks around the broker's own, for this
	// package's tests to hold a connection at a point of mochi's connect
	// sequence (see export_test.go).
	before, after []mqtt.Hook
}

// WithCA issues the broker's server certificate from ca (default: a new
// CA).
func WithCA(ca *pkitest.CA) Option { return func(c *config) { c.ca = ca } }

// WithClock sets the clock the broker checks expiry times and Huawei's
// checked timestamps against (default: time.Now), so a test can make a
// credential expired without waiting for it. now is called from the
// broker's connection goroutines, so it must be safe for concurrent use.
// A credential is valid strictly before its expiry second.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithLogger sets the broker's logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Broker is a running test broker. It is safe for concurrent use.
type Broker struct {
	srv *mqtt.Server
	ca  *pkitest.CA
	now func() time.Time

	tcpAddr, tlsAddr, wssAddr string
	// addrs holds every listener's host:port, by listener id.
	addrs map[string]string

	mu      sync.Mutex
	secrets map[Device][]byte
	// keys of the other platforms, as the broker checks them (decoded).
	azure    map[azureID][]byte
	dps      map[dpsID][]byte
	tencent  map[Device][]byte
	huawei   map[string][]byte
	onenet   map[Device][]byte
	topology map[Device]map[Device]bool // gateway → sub-devices
	platform *platformtest.Server

	// sessions, online and subOnline are keyed by or point at the
	// connection, never a client id or device alone: a connection that
	// ends (kicked by a later login, or dropped) must take exactly its own
	// entries with it.
	sessions map[*mqtt.Client]identity // authenticated connections
	// online is each device's latest accepted connection; an earlier one
	// is kicked when it is replaced.
	online map[identity]*mqtt.Client
	// subOnline maps a sub-device to the gateway connection that logged
	// it in: when that connection ends, the sub-device is offline, even if
	// the gateway has logged in again over another connection.
	subOnline map[Device]*mqtt.Client

	logins    []Login
	subLogins []SubDeviceLogin
	published []Message
}

// Start starts a broker; it is closed when the test ends.
func Start(tb testing.TB, opts ...Option) *Broker {
	tb.Helper()
	cfg := config{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.ca == nil {
		cfg.ca = pkitest.NewCA(tb, "mqtttest CA")
	}
	cert := cfg.ca.Issue(tb, pkitest.Options{CommonName: "mqtttest broker", Server: true})
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MinimumProtocolVersion = 4 // MQTT 3.1.1
	caps.MaximumQos = 1             // the platform has no QoS 2
	b := &Broker{
		srv: mqtt.New(&mqtt.Options{Capabilities: caps, InlineClient: true, Logger: cfg.log}),
		ca:  cfg.ca,
		now: cfg.now,

		addrs:     make(map[string]string),
		secrets:   make(map[Device][]byte),
		azure:     make(map[azureID][]byte),
		dps:       make(map[dpsID][]byte),
		tencent:   make(map[Device][]byte),
		huawei:    make(map[string][]byte),
		onenet:    make(map[Device][]byte),
		topology:  make(map[Device]map[Device]bool),
		sessions:  make(map[*mqtt.Client]identity),
		online:    make(map[identity]*mqtt.Client),
		subOnline: make(map[Device]*mqtt.Client),
	}
	hooks := append(append(slices.Clone(cfg.before), &hook{b: b}), cfg.after...)
	for _, h := range hooks {
		if err := b.srv.AddHook(h, nil); err != nil {
			tb.Fatal(err)
		}
	}
	for _, spec := range listenerSpecs {
		var l listeners.Listener
		switch spec.transport {
		case "tcp":
			l = listeners.NewTCP(listeners.Config{ID: spec.id, Address: "127.0.0.1:0"})
		case "tls":
			l = listeners.NewTCP(listeners.Config{ID: spec.id, Address: "127.0.0.1:0", TLSConfig: tlsCfg})
		case "wss":
			wss, err := newWSSListener(spec.id, tlsCfg, spec.wsPath)
			if err != nil {
				tb.Fatal(err)
			}
			l = wss
		}
		if err := b.srv.AddListener(l); err != nil {
			tb.Fatal(err)
		}
		// mochi's TCP listener binds in AddListener (Init), so its
		// ephemeral port is known here.
		b.addrs[spec.id] = l.Address()
	}
	b.tcpAddr, b.tlsAddr, b.wssAddr = b.addrs[ListenerTCP], b.addrs[ListenerTLS], b.addrs[ListenerWSS]
	if err := b.srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// TCPAddr, TLSAddr and WSSAddr are the listeners' host:port.
func (b *Broker) TCPAddr() string { return b.tcpAddr }
func (b *Broker) TLSAddr() string { return b.tlsAddr }
func (b *Broker) WSSAddr() string { return b.wssAddr }

// Ports returns the listeners' port numbers.
func (b *Broker) Ports() (tcp, tls, wss int) {
	return port(b.tcpAddr), port(b.tlsAddr), port(b.wssAddr)
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// CA returns the CA of the broker's server certificate.
func (b *Broker) CA() *pkitest.CA { return b.ca }

// ClientTLS returns a client configuration that trusts the broker.
func (b *Broker) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: b.ca.Pool(), MinVersion: tls.VersionTLS12}
}

// AddDevice registers a device and its DeviceSecret; adding it again
// replaces the secret.
func (b *Broker) AddDevice(productKey, deviceName, deviceSecret string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.secrets[Device{productKey, deviceName}] = []byte(deviceSecret)
}

// AddTopology makes sub a sub-device of the gateway gw, as the platform's
// topo/add does; a sub-device login needs it.
func (b *Broker) AddTopology(gwProductKey, gwDeviceName, subProductKey, subDeviceName string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gw := Device{gwProductKey, gwDeviceName}
	if b.topology[gw] == nil {
		b.topology[gw] = make(map[Device]bool)
	}
	b.topology[gw][Device{subProductKey, subDeviceName}] = true
}

// TrustPlatform makes the broker accept iotId/iotToken pairs that p
// issued.
func (b *Broker) TrustPlatform(p *platformtest.Server) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.platform = p
}

// Logins returns the verdicts on every CONNECT so far, in order.
func (b *Broker) Logins() []Login {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.logins)
}

// SubDeviceLogins returns every sub-device login message so far, in order.
func (b *Broker) SubDeviceLogins() []SubDeviceLogin {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.subLogins)
	for i := range out {
		out[i].Devices = slices.Clone(out[i].Devices)
	}
	return out
}

// Published returns the messages devices published so far, in order.
func (b *Broker) Published() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.published)
}

// Online reports whether the device is online: connected itself, or logged
// in as a sub-device by a connected gateway.
func (b *Broker) Online(productKey, deviceName string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := Device{productKey, deviceName}
	return live(b.online[identity{Alibaba, d}]) || live(b.subOnline[d])
}

// live reports whether cl is an open connection. mochi does not call
// OnDisconnect for a connection that fails after its login was accepted
// but before its session started (such as a failed CONNACK write), so an
// entry can outlive its connection; the connection's state is the truth.
func live(cl *mqtt.Client) bool { return cl != nil && !cl.Closed() }

// hashes are the sign methods, by the names the platform accepts (compared
// in lower case: the clientId spells them hmacsha256, the sub-device login
// hmacSha256).
var hashes = map[string]func() hash.Hash{
	"hmacmd5":    md5.New,
	"hmacsha1":   sha1.New,
	"hmacsha256": sha256.New,
}

// signContent is the platform's sign content: every signed parameter, keys
// sorted, key and value concatenated.
func signContent(params map[string]string) []byte {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	for _, k := range keys {
		buf.WriteString(k)
		buf.WriteString(params[k])
	}
	return buf.Bytes()
}

// signOK reports whether sign (hex, either case) is the HMAC of params
// keyed with secret.
func signOK(newHash func() hash.Hash, secret []byte, params map[string]string, sign string) bool {
	got, err := hex.DecodeString(sign)
	if err != nil {
		return false
	}
	m := hmac.New(newHash, secret)
	m.Write(signContent(params))
	return hmac.Equal(got, m.Sum(nil))
}

// parseClientID splits "{id}|k=v,k=v|" into the id and its extension.
func parseClientID(s string) (id string, ext map[string]string, err error) {
	id, rest, ok := strings.Cut(s, "|")
	if !ok {
		return "", nil, errors.New("clientId has no |…| extension")
	}
	body, ok := strings.CutSuffix(rest, "|")
	if !ok || strings.Contains(body, "|") {
		return "", nil, errors.New("clientId extension is not framed by exactly two |")
	}
	ext = make(map[string]string)
	for _, kv := range strings.Split(body, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", nil, fmt.Errorf("clientId extension: %q is not key=value", kv)
		}
		if _, dup := ext[k]; dup {
			return "", nil, fmt.Errorf("clientId extension: %s given twice", k)
		}
		ext[k] = v
	}
	return id, ext, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkAlibaba applies Alibaba's login rules to a CONNECT that came in on
// listener.
func (b *Broker) checkAlibaba(listener string, pk packets.Packet) Login {
	c := pk.Connect
	l := Login{Listener: listener, Platform: Alibaba, ClientID: c.ClientIdentifier, Username: string(c.Username), Auth: "sign"}
	refuse := func(format string, args ...any) Login {
		l.Reason = fmt.Sprintf(format, args...)
		return l
	}
	switch {
	case pk.ProtocolVersion != 4:
		return refuse("protocol version %d; the platform speaks MQTT 3.1.1 (4)", pk.ProtocolVersion)
	case c.Keepalive < MinKeepAlive || c.Keepalive > MaxKeepAlive:
		return refuse("keep-alive %d s is outside %d–%d", c.Keepalive, MinKeepAlive, MaxKeepAlive)
	case c.WillFlag:
		return refuse("a will message is not supported")
	case !c.UsernameFlag || !c.PasswordFlag:
		return refuse("username and password are required")
	}
	tlsListener := listener == ListenerTLS || listener == ListenerWSS

	dn, productKey, isSign := strings.Cut(string(c.Username), "&")
	if !isSign {
		l.Auth = "token"
		return b.checkToken(l, tlsListener, string(c.Password))
	}

	id, ext, err := parseClientID(c.ClientIdentifier)
	if err != nil {
		return refuse("%v", err)
	}
	if len(id) == 0 || len(id) > maxClientIDLen {
		return refuse("client id must be 1–%d characters", maxClientIDLen)
	}
	want := "3"
	if tlsListener {
		want = "2"
	}
	if mode := ext["securemode"]; mode != want {
		return refuse("securemode %q on the %s listener, want %s", mode, listener, want)
	}
	method, ok := ext["signmethod"]
	if !ok {
		method = "hmacmd5" // the platform's default
	}
	newHash, ok := hashes[strings.ToLower(method)]
	if !ok {
		return refuse("unknown signmethod %q", method)
	}
	params := map[string]string{"clientId": id, "deviceName": dn, "productKey": productKey}
	if ts, ok := ext["timestamp"]; ok {
		if !isDigits(ts) {
			return refuse("timestamp %q is not milliseconds", ts)
		}
		params["timestamp"] = ts
	}
	dev := Device{productKey, dn}
	b.mu.Lock()
	secret, known := b.secrets[dev]
	b.mu.Unlock()
	if !known {
		return refuse("unknown device %s", dev)
	}
	if !signOK(newHash, secret, params, string(c.Password)) {
		return refuse("password does not match the sign of %s", dev)
	}
	l.Device, l.Accepted = dev, true
	return l
}

// checkToken accepts an iotId/iotToken pair the trusted platform issued
// for this client id, over TLS only.
func (b *Broker) checkToken(l Login, tlsListener bool, token string) Login {
	b.mu.Lock()
	p := b.platform
	b.mu.Unlock()
	switch {
	case p == nil:
		l.Reason = "username is not {deviceName}&{productKey} and no platform is trusted for iotId logins"
		return l
	case !tlsListener:
		l.Reason = "an iotId/iotToken login needs TLS"
		return l
	}
	dev, ok := p.Issued(l.Username, token)
	if !ok {
		l.Reason = "the platform did not issue this iotId/iotToken"
		return l
	}
	// The token is bound to the client id it was requested for.
	issuedFor := ""
	for _, r := range p.Requests() {
		if r.IotToken == token && r.IotID == l.Username {
			issuedFor = r.Form.Get("clientId")
		}
	}
	if l.ClientID != issuedFor {
		l.Reason = fmt.Sprintf("client id %q is not the one the token was issued for", l.ClientID)
		return l
	}
	l.Device, l.Accepted = Device{dev.ProductKey, dev.DeviceName}, true
	return l
}

// topicAllowed reports whether dev may use topic (or filter): its own
// user, system and session topics.
func topicAllowed(dev Device, topic string) bool {
	for _, prefix := range []string{
		"/" + dev.ProductKey + "/" + dev.DeviceName + "/",
		"/sys/" + dev.ProductKey + "/" + dev.DeviceName + "/",
		"/ext/session/" + dev.ProductKey + "/" + dev.DeviceName + "/",
	} {
		if strings.HasPrefix(topic, prefix) {
			return true
		}
	}
	return false
}

// errKicked stops a connection whose device logged in again.
var errKicked = errors.New("mqtttest: the device logged in again; this connection is forced offline")

// hook is the broker's auth and session hook.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "mqtttest-platform" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect, mqtt.OnPublished,
	}, []byte{b})
}

// OnConnectAuthenticate checks the login and, when it is accepted, makes
// this connection the device's online one and forces the earlier one
// offline, as the platform does on a second login with the same
// credentials. This must happen here, before mochi sends the CONNACK:
// mochi calls OnSessionEstablished only after the CONNACK, so a client
// that got its CONNACK first could reach OnSessionEstablished last, take
// the device back and kick the newer connection.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	l := h.b.checkConnect(cl.Net.Listener, pk)
	var old *mqtt.Client
	h.b.mu.Lock()
	h.b.logins = append(h.b.logins, l)
	if l.Accepted {
		id := identity{l.Platform, l.Device}
		h.b.sessions[cl] = id
		old = h.b.online[id]
		h.b.online[id] = cl
	}
	h.b.mu.Unlock()
	if old != nil && old != cl {
		old.Stop(errKicked)
	}
	return l.Accepted
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, _ bool) bool {
	h.b.mu.Lock()
	id, ok := h.b.sessions[cl]
	h.b.mu.Unlock()
	if !ok {
		return false
	}
	if id.Platform == Alibaba {
		return topicAllowed(id.Device, topic)
	}
	return platformTopicAllowed(id, topic)
}

// OnDisconnect removes the entries of this connection only: a connection
// kicked by a later login ends after its successor is online, and must
// leave the successor's entries alone.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	id, ok := h.b.sessions[cl]
	if !ok {
		return
	}
	delete(h.b.sessions, cl)
	if h.b.online[id] == cl {
		delete(h.b.online, id)
	}
	for sub, gw := range h.b.subOnline {
		if gw == cl {
			delete(h.b.subOnline, sub)
		}
	}
}

func (h *hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.b.mu.Lock()
	id, ok := h.b.sessions[cl]
	if ok {
		h.b.published = append(h.b.published, Message{Platform: id.Platform, Device: id.Device, Topic: pk.TopicName, Payload: slices.Clone(pk.Payload)})
	}
	h.b.mu.Unlock()
	gw := id.Device
	prefix := "/ext/session/" + gw.ProductKey + "/" + gw.DeviceName + "/combine/"
	if !ok || id.Platform != Alibaba || !strings.HasPrefix(pk.TopicName, prefix) {
		return
	}
	batch := false
	switch strings.TrimPrefix(pk.TopicName, prefix) {
	case "login":
	case "batch_login":
		batch = true
	default:
		return
	}
	reply := h.b.subDeviceLogin(cl, gw, pk, batch)
	_ = h.b.srv.Publish(pk.TopicName+"_reply", reply, false, 0)
}
