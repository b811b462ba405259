package mqtttest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Platform names the IoT platform whose login rule a listener applies.
//
// A Login's Device holds, per platform:
//
//	Alibaba   {productKey, deviceName}
//	Azure     {hubHost, deviceId} or {hubHost, deviceId/moduleId}
//	AzureDPS  {idScope, registrationId}
//	Tencent   {productId, deviceName}
//	Huawei    {"", deviceId}
//	OneNET    {productId, deviceName}
type Platform string

// Platforms.
const (
	Alibaba  Platform = "alibaba"
	Azure    Platform = "azure"     // Azure IoT Hub
	AzureDPS Platform = "azure-dps" // Azure Device Provisioning Service
	Tencent  Platform = "tencent"
	Huawei   Platform = "huawei"
	OneNET   Platform = "onenet"
)

// Listener ids of the other platforms, as recorded in Login.Listener. The
// broker tells which platform a CONNECT is for by the listener it came in
// on, never by the shape of its fields: each platform has its own
// listeners, as each has its own endpoint, so a login of one platform
// presented to another's endpoint is refused even where the names
// coincide.
const (
	ListenerAzureTLS   = "azure-tls"     // IoT Hub, MQTT over TLS (8883)
	ListenerAzureWSS   = "azure-wss"     // IoT Hub, MQTT over WebSocket over TLS (443), path AzureWebSocketPath
	ListenerDPSTLS     = "azure-dps-tls" // DPS registration, MQTT over TLS (8883)
	ListenerTencentTCP = "tencent-tcp"   // key-authenticated devices (1883)
	ListenerTencentTLS = "tencent-tls"
	ListenerHuaweiTCP  = "huawei-tcp" // MQTT (1883)
	ListenerHuaweiTLS  = "huawei-tls" // MQTTS (8883)
	ListenerOneNETTCP  = "onenet-tcp" // mqtts.heclouds.com:1883
	ListenerOneNETTLS  = "onenet-tls" // mqttstls.heclouds.com:8883
)

// AzureWebSocketPath is where IoT Hub serves MQTT over WebSocket.
const AzureWebSocketPath = "/$iothub/websocket"

type listenerSpec struct {
	id        string
	platform  Platform
	transport string // tcp, tls or wss
	wsPath    string // wss only; empty: any path
}

// listenerSpecs are every listener the broker starts.
var listenerSpecs = []listenerSpec{
	{ListenerTCP, Alibaba, "tcp", ""},
	{ListenerTLS, Alibaba, "tls", ""},
	{ListenerWSS, Alibaba, "wss", ""},
	{ListenerAzureTLS, Azure, "tls", ""},
	{ListenerAzureWSS, Azure, "wss", AzureWebSocketPath},
	{ListenerDPSTLS, AzureDPS, "tls", ""},
	{ListenerTencentTCP, Tencent, "tcp", ""},
	{ListenerTencentTLS, Tencent, "tls", ""},
	{ListenerHuaweiTCP, Huawei, "tcp", ""},
	{ListenerHuaweiTLS, Huawei, "tls", ""},
	{ListenerOneNETTCP, OneNET, "tcp", ""},
	{ListenerOneNETTLS, OneNET, "tls", ""},
}

func specOf(listener string) (listenerSpec, bool) {
	for _, s := range listenerSpecs {
		if s.id == listener {
			return s, true
		}
	}
	return listenerSpec{}, false
}

// Addr returns the host:port of the listener with that id ("" if there is
// none).
func (b *Broker) Addr(listener string) string { return b.addrs[listener] }

// URI returns the broker URI a paho client dials for the listener with that
// id: tcp://, mqtts:// or wss:// (with AzureWebSocketPath for Azure).
func (b *Broker) URI(listener string) string {
	s, ok := specOf(listener)
	if !ok {
		return ""
	}
	switch s.transport {
	case "tcp":
		return "tcp://" + b.addrs[listener]
	case "tls":
		return "mqtts://" + b.addrs[listener]
	}
	path := s.wsPath
	if path == "" {
		path = "/mqtt"
	}
	return "wss://" + b.addrs[listener] + path
}

// identity is a device of one platform: the same names on two platforms
// are two devices.
type identity struct {
	Platform Platform
	Device   Device
}

type azureID struct{ host, device, module string }

type dpsID struct{ idScope, registrationID string }

// mustKey decodes a key given as the platform's console shows it (standard
// base64). A bad key is the calling test's mistake, not a login to refuse.
func mustKey(what, keyB64 string) []byte {
	k, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(k) == 0 {
		panic(fmt.Sprintf("mqtttest: %s is not a base64 key: %v", what, err))
	}
	return k
}

// deriveDPSKey is DPS's group enrollment rule: the device key is
// base64(HMAC-SHA256(base64decode(groupKey), registrationId)); the device
// signs with that key base64-decoded, which is the HMAC itself.
func deriveDPSKey(groupKey []byte, registrationID string) []byte {
	m := hmac.New(sha256.New, groupKey)
	m.Write([]byte(registrationID))
	return m.Sum(nil)
}

// AddAzureDevice registers an IoT Hub device (moduleID empty) or module
// with its primary key as the portal shows it (base64). hubHost is the hub's
// host name, such as "myhub.azure-devices.net".
func (b *Broker) AddAzureDevice(hubHost, deviceID, moduleID, primaryKeyB64 string) {
	k := mustKey("Azure primary key of "+deviceID, primaryKeyB64)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.azure[azureID{hubHost, deviceID, moduleID}] = k
}

// AddAzureHubGroup registers IoT Hub devices enrolled through a DPS group
// with groupKeyB64: each device's key is derived from the group key and its
// id (its registration id), by the broker.
func (b *Broker) AddAzureHubGroup(hubHost, groupKeyB64 string, deviceIDs ...string) {
	g := mustKey("Azure DPS group key", groupKeyB64)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range deviceIDs {
		b.azure[azureID{hubHost, d, ""}] = deriveDPSKey(g, d)
	}
}

// AddAzureDPSGroup registers a DPS enrollment group of the id scope with its
// group key (base64) and the registration ids that belong to it; the broker
// derives each device's key.
func (b *Broker) AddAzureDPSGroup(idScope, groupKeyB64 string, registrationIDs ...string) {
	g := mustKey("Azure DPS group key", groupKeyB64)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range registrationIDs {
		b.dps[dpsID{idScope, r}] = deriveDPSKey(g, r)
	}
}

// AddTencentDevice registers a Tencent key-authenticated device with its
// devicePsk (base64). productID must be Tencent's 10 upper-case letters and
// digits: the broker splits the clientId {productId}{deviceName} there.
func (b *Broker) AddTencentDevice(productID, deviceName, pskB64 string) {
	if !isTencentProductID(productID) {
		panic(fmt.Sprintf("mqtttest: Tencent product id %q is not 10 of [A-Z0-9]", productID))
	}
	k := mustKey("Tencent devicePsk of "+deviceName, pskB64)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tencent[Device{productID, deviceName}] = k
}

// AddHuaweiDevice registers a Huawei IoTDA device with its secret, the
// string itself (Huawei's secret is not encoded).
func (b *Broker) AddHuaweiDevice(deviceID, secret string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.huawei[deviceID] = []byte(secret)
}

// AddOneNETDevice registers a OneNET device with its device key (base64).
func (b *Broker) AddOneNETDevice(productID, deviceName, keyB64 string) {
	k := mustKey("OneNET device key of "+deviceName, keyB64)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onenet[Device{productID, deviceName}] = k
}

// OnlineOn reports whether a device of platform p is online; group and name
// are the two fields of Device as Platform describes them.
func (b *Broker) OnlineOn(p Platform, group, name string) bool {
	if p == Alibaba {
		return b.Online(group, name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return live(b.online[identity{p, Device{group, name}}])
}

// checkConnect applies the login rule of the platform of the listener the
// CONNECT came in on.
func (b *Broker) checkConnect(listener string, pk packets.Packet) Login {
	spec, _ := specOf(listener)
	if spec.platform == Alibaba || spec.platform == "" {
		return b.checkAlibaba(listener, pk)
	}
	c := pk.Connect
	l := Login{Listener: listener, Platform: spec.platform, ClientID: c.ClientIdentifier, Username: string(c.Username)}
	var (
		dev Device
		err error
	)
	switch {
	case pk.ProtocolVersion != 4:
		err = fmt.Errorf("protocol version %d; the platform speaks MQTT 3.1.1 (4)", pk.ProtocolVersion)
	case !c.UsernameFlag || !c.PasswordFlag:
		err = errors.New("username and password are required")
	default:
		now := b.now()
		switch spec.platform {
		case Azure:
			l.Auth = "sas"
			dev, err = b.checkAzure(c, now)
		case AzureDPS:
			l.Auth = "sas"
			dev, err = b.checkDPS(c, now)
		case Tencent:
			l.Auth = "sign"
			dev, err = b.checkTencent(c, now)
		case Huawei:
			l.Auth = "sign"
			dev, err = b.checkHuawei(c, now)
		case OneNET:
			l.Auth = "token"
			dev, err = b.checkOneNET(c, now)
		}
	}
	if err != nil {
		l.Reason = err.Error()
		return l
	}
	l.Device, l.Accepted = dev, true
	return l
}

// platformTopicAllowed reports whether a device of another platform than
// Alibaba may use topic (or filter): the topics its platform gives it.
func platformTopicAllowed(id identity, topic string) bool {
	d := id.Device
	switch id.Platform {
	case Azure:
		dev, mod, isModule := strings.Cut(d.DeviceName, "/")
		own := "devices/" + dev + "/"
		if isModule {
			own = "devices/" + dev + "/modules/" + mod + "/"
		}
		return strings.HasPrefix(topic, own) || strings.HasPrefix(topic, "$iothub/")
	case AzureDPS:
		return strings.HasPrefix(topic, "$dps/registrations/")
	case Tencent:
		// {productId}/{deviceName}/…, and the system topics that end in
		// /{productId}/{deviceName} ($shadow/operation/…, $ota/…, $thing/…).
		own := d.ProductKey + "/" + d.DeviceName
		return strings.HasPrefix(topic, own+"/") ||
			(strings.HasPrefix(topic, "$") && strings.HasSuffix(topic, "/"+own))
	case Huawei:
		return strings.HasPrefix(topic, "$oc/devices/"+d.DeviceName+"/")
	case OneNET:
		return strings.HasPrefix(topic, "$sys/"+d.ProductKey+"/"+d.DeviceName+"/")
	}
	return false
}

// tokenFields splits "k=v&k=v" into raw (still URL-encoded) values,
// refusing empty keys, keys given twice and keys not in allowed.
func tokenFields(s string, allowed ...string) (map[string]string, error) {
	f := make(map[string]string)
	for _, kv := range strings.Split(s, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		if _, dup := f[k]; dup {
			return nil, fmt.Errorf("%s given twice", k)
		}
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, fmt.Errorf("unknown field %q", k)
		}
		f[k] = v
	}
	return f, nil
}

// expiry parses seconds since the epoch and refuses a time not after now.
func expiry(field, s string, now time.Time) error {
	if !isDigits(s) || len(s) > 12 {
		return fmt.Errorf("%s %q is not seconds since the epoch", field, s)
	}
	se, _ := strconv.ParseInt(s, 10, 64)
	if !now.Before(time.Unix(se, 0)) {
		return fmt.Errorf("%s %s: expired (broker clock %d)", field, s, now.Unix())
	}
	return nil
}

// unescape is the query decoding the platforms apply to token fields
// ("+" is a space, as in a form).
func unescape(field, s string) (string, error) {
	v, err := url.QueryUnescape(s)
	if err != nil {
		return "", fmt.Errorf("%s is not valid URL encoding: %w", field, err)
	}
	return v, nil
}

// lowerHex decodes s, which must be lower-case hex as the platforms' SDKs
// send it.
func lowerHex(s string) ([]byte, bool) {
	if strings.ToLower(s) != s {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}
