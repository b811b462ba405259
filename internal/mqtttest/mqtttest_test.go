package mqtttest_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"hash"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	mqttpackets "github.com/mochi-mqtt/server/v2/packets"

	"github.com/signerd/signerd/internal/mqtttest"
	"github.com/signerd/signerd/internal/vectors"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
)

const (
	pk     = "a1TestPK"
	dn     = "dev-0001"
	secret = "0123456789abcdef0123456789abcdef"
)

var methods = map[string]func() hash.Hash{"hmacsha256": sha256.New, "hmacsha1": sha1.New, "hmacmd5": md5.New}

// password is the platform's rule, written out for the test.
func password(newHash func() hash.Hash, secret, cid, dn, pk, ts string) string {
	m := hmac.New(newHash, []byte(secret))
	m.Write([]byte("clientId" + cid + "deviceName" + dn + "productKey" + pk))
	if ts != "" {
		m.Write([]byte("timestamp" + ts))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// creds are the CONNECT fields of pk/dn for mode and method.
func creds(b *mqtttest.Broker, listener, method string) mqtttest.Conn {
	mode, uri := "2", ""
	switch listener {
	case mqtttest.ListenerTCP:
		mode, uri = "3", "tcp://"+b.TCPAddr()
	case mqtttest.ListenerTLS:
		uri = "mqtts://" + b.TLSAddr()
	case mqtttest.ListenerWSS:
		uri = "wss://" + b.WSSAddr() + "/mqtt"
	}
	const ts = "1700000000000"
	return mqtttest.Conn{
		URI:      uri,
		ClientID: pk + "." + dn + "|securemode=" + mode + ",signmethod=" + method + ",timestamp=" + ts + "|",
		Username: dn + "&" + pk,
		Password: password(methods[method], secret, pk+"."+dn, dn, pk, ts),
		TLS:      b.ClientTLS(),
	}
}

func newBroker(t *testing.T) *mqtttest.Broker {
	b := mqtttest.Start(t)
	b.AddDevice(pk, dn, secret)
	b.AddDevice(pk, "dev-0002", "another-secret-0123456789")
	return b
}

func TestConnectEveryListenerAndMethod(t *testing.T) {
	b := newBroker(t)
	for _, l := range []string{mqtttest.ListenerTCP, mqtttest.ListenerTLS, mqtttest.ListenerWSS} {
		for m := range methods {
			t.Run(l+"/"+m, func(t *testing.T) {
				cl, err := mqtttest.Connect(creds(b, l, m))
				if err != nil {
					t.Fatalf("connect: %v; broker: %+v", err, b.Logins())
				}
				defer cl.Disconnect(100)
				if err := mqtttest.RoundTrip(cl, "/"+pk+"/"+dn+"/user/update", []byte("hello "+l+" "+m)); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
	for _, l := range b.Logins() {
		if !l.Accepted || l.Device != (mqtttest.Device{ProductKey: pk, DeviceName: dn}) || l.Auth != "sign" {
			t.Errorf("login %+v", l)
		}
	}
}

// The vectors come from an independent implementation: the broker must
// accept every one, over the listener of its securemode.
func TestConnectVectors(t *testing.T) {
	cs, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	b := mqtttest.Start(t)
	for _, c := range cs {
		b.AddDevice(c.Input.ProductKey, c.Input.DeviceName, c.Input.DeviceSecret)
	}
	for i, c := range cs {
		uri := "mqtts://" + b.TLSAddr()
		if c.Input.SecureMode == 3 {
			uri = "tcp://" + b.TCPAddr()
		}
		cl, err := mqtttest.Connect(mqtttest.Conn{URI: uri, ClientID: c.Expect.ClientID, Username: c.Expect.Username,
			Password: c.Expect.Password, TLS: b.ClientTLS()})
		if err != nil {
			t.Errorf("case %d (%s/%s): %v; %+v", i, c.Input.ProductKey, c.Input.DeviceName, err, b.Logins()[len(b.Logins())-1])
			continue
		}
		cl.Disconnect(0)
	}
}

func TestConnectRefused(t *testing.T) {
	b := newBroker(t)
	good := creds(b, mqtttest.ListenerTLS, "hmacsha256")
	other := creds(b, mqtttest.ListenerTLS, "hmacsha256")
	other.Username = "dev-0002&" + pk

	tamper := func(p string) string {
		c := "0"
		if p[0] == '0' {
			c = "1"
		}
		return c + p[1:]
	}
	tests := []struct {
		name   string
		mutate func(c *mqtttest.Conn)
		reason string
	}{
		{"tampered password", func(c *mqtttest.Conn) { c.Password = tamper(c.Password) }, "password does not match"},
		{"another device's answer", func(c *mqtttest.Conn) { *c = other }, "password does not match"},
		{"securemode 3 over TLS", func(c *mqtttest.Conn) {
			c.ClientID = strings.Replace(c.ClientID, "securemode=2", "securemode=3", 1)
		}, "securemode"},
		{"securemode 2 over TCP", func(c *mqtttest.Conn) {
			*c = creds(b, mqtttest.ListenerTCP, "hmacsha256")
			c.ClientID = strings.Replace(c.ClientID, "securemode=3", "securemode=2", 1)
		}, "securemode"},
		{"TCP answer over WSS", func(c *mqtttest.Conn) {
			tcp := creds(b, mqtttest.ListenerTCP, "hmacsha256")
			c.URI, c.ClientID, c.Password = "wss://"+b.WSSAddr()+"/mqtt", tcp.ClientID, tcp.Password
		}, "securemode"},
		{"method changed", func(c *mqtttest.Conn) {
			c.ClientID = strings.Replace(c.ClientID, "hmacsha256", "hmacsha1", 1)
		}, "password does not match"},
		{"timestamp changed", func(c *mqtttest.Conn) {
			c.ClientID = strings.Replace(c.ClientID, "1700000000000", "1700000000001", 1)
		}, "password does not match"},
		{"unknown device", func(c *mqtttest.Conn) { c.Username = "dev-0009&" + pk }, "unknown device"},
		{"no extension", func(c *mqtttest.Conn) { c.ClientID = pk + "." + dn }, "extension"},
		{"keep-alive too short", func(c *mqtttest.Conn) { c.KeepAlive = 10 * time.Second }, "keep-alive"},
		{"keep-alive too long", func(c *mqtttest.Conn) { c.KeepAlive = 1300 * time.Second }, "keep-alive"},
		{"iotId without a trusted platform", func(c *mqtttest.Conn) { c.Username = "someIotId" }, "no platform"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			n := len(b.Logins())
			cl, err := mqtttest.Connect(c)
			if err == nil {
				cl.Disconnect(0)
				t.Fatal("CONNECT accepted")
			}
			if !mqtttest.Refused(err) {
				t.Errorf("error %v, want a refused CONNACK", err)
			}
			ls := b.Logins()
			if len(ls) != n+1 || ls[n].Accepted || !strings.Contains(ls[n].Reason, tc.reason) {
				t.Errorf("broker verdict %+v, want a refusal for %q", ls[n:], tc.reason)
			}
		})
	}
}

func TestUpperCaseHexAccepted(t *testing.T) {
	b := newBroker(t)
	c := creds(b, mqtttest.ListenerTCP, "hmacmd5")
	c.Password = strings.ToUpper(c.Password)
	cl, err := mqtttest.Connect(c)
	if err != nil {
		t.Fatal(err)
	}
	cl.Disconnect(0)
}

func TestOwnTopicsOnly(t *testing.T) {
	b := newBroker(t)
	cl, err := mqtttest.Connect(creds(b, mqtttest.ListenerTLS, "hmacsha1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(0)
	if err := mqtttest.RoundTrip(cl, "/"+pk+"/dev-0002/user/update", []byte("x")); err == nil {
		t.Error("a device used another device's topic")
	}
}

func TestSecondLoginKicksTheFirst(t *testing.T) {
	b := newBroker(t)
	lost := make(chan error, 1)
	first := creds(b, mqtttest.ListenerTLS, "hmacsha256")
	first.OnLost = func(err error) { lost <- err }
	c1, err := mqtttest.Connect(first)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Disconnect(0)
	// Same device, a different client id and transport: still the same
	// credentials as far as the platform is concerned.
	second := creds(b, mqtttest.ListenerTCP, "hmacmd5")
	c2, err := mqtttest.Connect(second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Disconnect(0)
	select {
	case <-lost:
	case <-time.After(mqtttest.Timeout):
		t.Fatal("the first connection stayed online")
	}
	if err := mqtttest.RoundTrip(c2, "/"+pk+"/"+dn+"/user/update", []byte("still here")); err != nil {
		t.Errorf("second connection: %v", err)
	}
	if !b.Online(pk, dn) {
		t.Error("device not online after the second login")
	}
}

// holdFirstSession holds the first connection in OnSessionEstablished,
// which mochi calls after it has sent the CONNACK, until release is
// closed: the interleaving that let an earlier login kick a later one.
type holdFirstSession struct {
	mqtt.HookBase
	once    sync.Once
	release chan struct{}
}

func (h *holdFirstSession) ID() string { return "hold-first-session" }
func (h *holdFirstSession) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished
}
func (h *holdFirstSession) OnSessionEstablished(*mqtt.Client, mqttpackets.Packet) {
	first := false
	h.once.Do(func() { first = true })
	if first {
		<-h.release
	}
}

// disconnected reports each connection's end after the broker's own
// hook has dealt with it.
type disconnected struct {
	mqtt.HookBase
	ids chan string
}

func (h *disconnected) ID() string           { return "disconnected" }
func (h *disconnected) Provides(b byte) bool { return b == mqtt.OnDisconnect }
func (h *disconnected) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.ids <- cl.ID
}

// The later login wins whatever order mochi runs the two connections'
// session hooks in: here the first connection's OnSessionEstablished runs
// only after the second login has completed.
func TestSecondLoginKicksTheFirstWhateverTheHookOrder(t *testing.T) {
	hold := &holdFirstSession{release: make(chan struct{})}
	gone := &disconnected{ids: make(chan string, 4)}
	b := mqtttest.Start(t, mqtttest.WithHooks(hold, gone))
	b.AddDevice(pk, dn, secret)

	lost1, lost2 := make(chan error, 1), make(chan error, 1)
	first := creds(b, mqtttest.ListenerTLS, "hmacsha256")
	first.OnLost = func(err error) { lost1 <- err }
	c1, err := mqtttest.Connect(first)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Disconnect(0)
	second := creds(b, mqtttest.ListenerTCP, "hmacmd5")
	second.OnLost = func(err error) { lost2 <- err }
	c2, err := mqtttest.Connect(second)
	if err != nil {
		close(hold.release)
		t.Fatal(err)
	}
	defer c2.Disconnect(0)
	close(hold.release)

	select {
	case <-lost1:
	case <-lost2:
		t.Fatal("the second connection was forced offline: the earlier login won")
	case <-time.After(mqtttest.Timeout):
		t.Fatal("neither connection was forced offline")
	}
	// Once the broker has seen the first connection end, the second
	// must still be the device's online one.
	select {
	case id := <-gone.ids:
		if id != first.ClientID {
			t.Fatalf("connection %q ended, want the first, %q", id, first.ClientID)
		}
	case <-time.After(mqtttest.Timeout):
		t.Fatal("the broker never saw the first connection end")
	}
	if err := mqtttest.RoundTrip(c2, "/"+pk+"/"+dn+"/user/update", []byte("still here")); err != nil {
		t.Errorf("second connection: %v", err)
	}
	if !b.Online(pk, dn) {
		t.Error("device not online after the first connection's end")
	}
}

// A sub-device is online through the gateway connection that logged it
// in: when a second login of the gateway kicks that connection, the
// sub-device is offline until the new connection logs it in again, and
// the kicked connection's end does not touch the new one's sub-devices.
func TestGatewayReloginTakesItsSubDevicesOffline(t *testing.T) {
	gone := &disconnected{ids: make(chan string, 4)}
	b := mqtttest.Start(t, mqtttest.WithHooks(nil, gone))
	b.AddDevice(pk, dn, secret)
	b.AddDevice("a1SubPK", "sub-0001", "sub-secret-1-0123456789")
	b.AddTopology(pk, dn, "a1SubPK", "sub-0001")
	login := "/ext/session/" + pk + "/" + dn + "/combine/login"
	body, _ := json.Marshal(map[string]any{"id": "1",
		"params": subParams("a1SubPK", "sub-0001", "sub-secret-1-0123456789", "hmacSha256", sha256.New)})
	subLogin := func(t *testing.T, cl paho.Client) {
		t.Helper()
		out, err := mqtttest.Request(cl, login, login+"_reply", body)
		if err != nil {
			t.Fatal(err)
		}
		var r reply
		if err := json.Unmarshal(out, &r); err != nil || r.Code != mqtttest.CodeSuccess {
			t.Fatalf("sub-device login reply %s: %v", out, err)
		}
	}

	first := creds(b, mqtttest.ListenerTLS, "hmacsha256")
	c1, err := mqtttest.Connect(first)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Disconnect(0)
	subLogin(t, c1)
	if !b.Online("a1SubPK", "sub-0001") {
		t.Fatal("sub-device not online after its login")
	}

	c2, err := mqtttest.Connect(creds(b, mqtttest.ListenerTCP, "hmacmd5"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Disconnect(0)
	if b.Online("a1SubPK", "sub-0001") {
		t.Error("sub-device still online after its gateway connection was kicked")
	}
	subLogin(t, c2)
	select {
	case id := <-gone.ids:
		if id != first.ClientID {
			t.Fatalf("connection %q ended, want the first, %q", id, first.ClientID)
		}
	case <-time.After(mqtttest.Timeout):
		t.Fatal("the broker never saw the first connection end")
	}
	if !b.Online("a1SubPK", "sub-0001") || !b.Online(pk, dn) {
		t.Error("the kicked connection's end took the new connection's devices offline")
	}
}

// preVerify obtains an iotId/iotToken from the emulated auth endpoint.
func preVerify(t *testing.T, p *platformtest.Server, clientID string) (iotID, iotToken string) {
	t.Helper()
	const ts = "1700000000000"
	form := url.Values{"productKey": {pk}, "deviceName": {dn}, "clientId": {clientID}, "timestamp": {ts},
		"signmethod": {"hmacsha256"}, "sign": {password(sha256.New, secret, clientID, dn, pk, ts)}}
	resp, err := p.Client().PostForm(p.URL()+platformtest.Path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Code int
		Data struct{ IotID, IotToken string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || ans.Code != 200 {
		t.Fatalf("pre-verify: %v, code %d", err, ans.Code)
	}
	return ans.Data.IotID, ans.Data.IotToken
}

func TestTokenLogin(t *testing.T) {
	b := newBroker(t)
	p := platformtest.New(t)
	p.AddDevice(pk, dn, secret)
	const cid = pk + "." + dn
	iotID, token := preVerify(t, p, cid)

	tokenConn := func(uri, clientID, user, pass string) mqtttest.Conn {
		return mqtttest.Conn{URI: uri, ClientID: clientID, Username: user, Password: pass, TLS: b.ClientTLS()}
	}
	if _, err := mqtttest.Connect(tokenConn("mqtts://"+b.TLSAddr(), cid, iotID, token)); err == nil {
		t.Fatal("token accepted before the platform was trusted")
	}
	b.TrustPlatform(p)
	for _, uri := range []string{"mqtts://" + b.TLSAddr(), "wss://" + b.WSSAddr() + "/mqtt"} {
		cl, err := mqtttest.Connect(tokenConn(uri, cid, iotID, token))
		if err != nil {
			t.Fatalf("%s: %v; %+v", uri, err, b.Logins())
		}
		if err := mqtttest.RoundTrip(cl, "/"+pk+"/"+dn+"/user/update", []byte("token")); err != nil {
			t.Error(err)
		}
		cl.Disconnect(0)
	}
	for name, c := range map[string]mqtttest.Conn{
		"plain TCP":         tokenConn("tcp://"+b.TCPAddr(), cid, iotID, token),
		"wrong token":       tokenConn("mqtts://"+b.TLSAddr(), cid, iotID, token[:len(token)-1]+"x"),
		"another client id": tokenConn("mqtts://"+b.TLSAddr(), "other-client", iotID, token),
	} {
		if cl, err := mqtttest.Connect(c); err == nil {
			cl.Disconnect(0)
			t.Errorf("%s: accepted", name)
		}
	}
}

// subParams are one sub-device's login params, signed by hand.
func subParams(subPK, subDN, subSecret, method string, newHash func() hash.Hash) map[string]string {
	const ts = "1700000000000"
	cid := subPK + "." + subDN
	return map[string]string{"productKey": subPK, "deviceName": subDN, "clientId": cid, "timestamp": ts,
		"signMethod": method, "sign": password(newHash, subSecret, cid, subDN, subPK, ts), "cleanSession": "true"}
}

type reply struct {
	ID      string          `json:"id"`
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func TestSubDeviceLogin(t *testing.T) {
	b := newBroker(t)
	const gwDN = "dev-0001" // the gateway is pk/dev-0001
	for i := 1; i <= 3; i++ {
		b.AddDevice("a1SubPK", fmt.Sprintf("sub-%04d", i), fmt.Sprintf("sub-secret-%d-0123456789", i))
	}
	b.AddDevice("a1SubPK", "sub-0009", "sub-secret-9-0123456789")
	b.AddTopology(pk, gwDN, "a1SubPK", "sub-0001")
	b.AddTopology(pk, gwDN, "a1SubPK", "sub-0002")
	b.AddTopology(pk, gwDN, "a1SubPK", "sub-0009")
	cl, err := mqtttest.Connect(creds(b, mqtttest.ListenerTLS, "hmacsha256"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(0)
	login := "/ext/session/" + pk + "/" + gwDN + "/combine/login"
	batch := "/ext/session/" + pk + "/" + gwDN + "/combine/batch_login"

	send := func(t *testing.T, topic string, payload any) reply {
		t.Helper()
		body, _ := json.Marshal(payload)
		out, err := mqtttest.Request(cl, topic, topic+"_reply", body)
		if err != nil {
			t.Fatal(err)
		}
		var r reply
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("reply %s: %v", out, err)
		}
		return r
	}
	for name, m := range map[string]func() hash.Hash{"hmacSha256": sha256.New, "hmacSha1": sha1.New, "hmacMd5": md5.New} {
		t.Run(name, func(t *testing.T) {
			r := send(t, login, map[string]any{"id": "7", "params": subParams("a1SubPK", "sub-0001", "sub-secret-1-0123456789", name, m)})
			if r.Code != 200 || r.ID != "7" {
				t.Errorf("login reply %+v", r)
			}
			r = send(t, batch, map[string]any{"id": "8", "params": map[string]any{"deviceList": []any{
				subParams("a1SubPK", "sub-0001", "sub-secret-1-0123456789", name, m),
				subParams("a1SubPK", "sub-0002", "sub-secret-2-0123456789", name, m),
			}}})
			if r.Code != 200 || r.ID != "8" {
				t.Errorf("batch reply %+v", r)
			}
		})
	}
	if !b.Online("a1SubPK", "sub-0002") {
		t.Error("sub-device not online after its login")
	}

	good := subParams("a1SubPK", "sub-0001", "sub-secret-1-0123456789", "hmacSha256", sha256.New)
	badSign := subParams("a1SubPK", "sub-0002", "sub-secret-2-0123456789", "hmacSha256", sha256.New)
	badSign["sign"] = strings.Repeat("0", 64)
	tests := []struct {
		name    string
		topic   string
		payload any
		code    int
	}{
		{"wrong secret", login, map[string]any{"id": "1", "params": subParams("a1SubPK", "sub-0001", "wrong-secret-0123456789", "hmacSha256", sha256.New)}, mqtttest.CodeSignMismatch},
		{"no topology", login, map[string]any{"id": "1", "params": subParams("a1SubPK", "sub-0003", "sub-secret-3-0123456789", "hmacSha256", sha256.New)}, mqtttest.CodeNoTopology},
		{"unknown sub-device", login, map[string]any{"id": "1", "params": subParams("a1SubPK", "sub-0004", "x", "hmacSha256", sha256.New)}, mqtttest.CodeDeviceNotFound},
		{"batch with one bad sign", batch, map[string]any{"id": "1", "params": map[string]any{"deviceList": []any{good, badSign}}}, mqtttest.CodeSignMismatch},
		{"missing sign", login, map[string]any{"id": "1", "params": map[string]string{"productKey": "a1SubPK", "deviceName": "sub-0001"}}, mqtttest.CodeBadParameter},
		{"numeric id", login, map[string]any{"id": 1, "params": good}, mqtttest.CodeBadParameter},
		{"deviceList on login", login, map[string]any{"id": "1", "params": map[string]any{"deviceList": []any{good}}}, mqtttest.CodeBadParameter},
		{"empty batch", batch, map[string]any{"id": "1", "params": map[string]any{"deviceList": []any{}}}, mqtttest.CodeBadParameter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := send(t, tc.topic, tc.payload); r.Code != tc.code {
				t.Errorf("reply %+v, want code %d", r, tc.code)
			}
		})
	}
	if b.Online("a1SubPK", "sub-0003") {
		t.Error("a refused sub-device is online")
	}

	// A gateway cannot log sub-devices in on another gateway's topic. The
	// broker handles one client's messages in order: once the reply to a
	// later login has come, the earlier message has been dealt with.
	n := len(b.SubDeviceLogins())
	other := "/ext/session/" + pk + "/dev-0002/combine/login"
	body, _ := json.Marshal(map[string]any{"id": "1", "params": good})
	if tok := cl.Publish(other, 0, false, body); !tok.WaitTimeout(mqtttest.Timeout) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if r := send(t, login, map[string]any{"id": "2", "params": good}); r.Code != 200 {
		t.Fatalf("login after the foreign one: %+v", r)
	}
	if ls := b.SubDeviceLogins(); len(ls) != n+1 || ls[n].Topic != login {
		t.Errorf("sub-device logins %+v, want only the one on the gateway's own topic", ls[n:])
	}

	// The gateway going offline takes its sub-devices with it.
	cl.Disconnect(0)
	deadline := time.Now().Add(mqtttest.Timeout)
	for b.Online("a1SubPK", "sub-0001") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if b.Online("a1SubPK", "sub-0001") {
		t.Error("sub-device still online after its gateway disconnected")
	}
}

// The broker's rule must be its own: importing signerd's signing package
// (any of them, even in tests) would let a bug there pass here too.
func TestOwnImplementation(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	for _, f := range files {
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/signerd/signerd/signing") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
