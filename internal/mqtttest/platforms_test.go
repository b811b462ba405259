package mqtttest_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/signerd/signerd/internal/mqtttest"
)

// subscribeCode is the broker's SUBACK code for topic.
func subscribeCode(tok paho.Token, topic string) byte {
	return tok.(*paho.SubscribeToken).Result()[topic]
}

// The credentials below are computed from the formulas of
// shared/PLATFORMS.md, written out again here on crypto/hmac: neither the
// broker's code nor signerd's signing packages.

// clock is a settable broker clock.
type clock struct{ unix atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.unix.Store(t.Unix())
	return c
}
func (c *clock) now() time.Time      { return time.Unix(c.unix.Load(), 0) }
func (c *clock) set(t time.Time)     { c.unix.Store(t.Unix()) }
func (c *clock) add(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

var t0 = time.Date(2026, 11, 29, 5, 30, 0, 0, time.UTC)

func mac(newHash func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func b64(s string) []byte {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return k
}

func conn(b *mqtttest.Broker, listener, cid, user, pass string) mqtttest.Conn {
	return mqtttest.Conn{URI: b.URI(listener), ClientID: cid, Username: user, Password: pass, TLS: b.ClientTLS()}
}

// accept connects c and checks the broker's verdict.
func accept(t *testing.T, b *mqtttest.Broker, c mqtttest.Conn, p mqtttest.Platform, want mqtttest.Device) {
	t.Helper()
	n := len(b.Logins())
	cl, err := mqtttest.Connect(c)
	if err != nil {
		t.Fatalf("connect: %v; broker: %+v", err, b.Logins()[n:])
	}
	defer cl.Disconnect(0)
	ls := b.Logins()
	if len(ls) != n+1 || !ls[n].Accepted || ls[n].Platform != p || ls[n].Device != want {
		t.Fatalf("verdict %+v, want accepted %s %+v", ls[n:], p, want)
	}
	if !b.OnlineOn(p, want.ProductKey, want.DeviceName) {
		t.Errorf("%s %+v not online", p, want)
	}
}

// refuse connects c and checks that the broker refused it for reason.
func refuse(t *testing.T, b *mqtttest.Broker, c mqtttest.Conn, p mqtttest.Platform, reason string) {
	t.Helper()
	n := len(b.Logins())
	cl, err := mqtttest.Connect(c)
	if err == nil {
		cl.Disconnect(0)
		t.Fatalf("CONNECT accepted: %+v", b.Logins()[n:])
	}
	if !mqtttest.Refused(err) {
		t.Errorf("error %v, want a refused CONNACK", err)
	}
	ls := b.Logins()
	if len(ls) != n+1 || ls[n].Accepted || ls[n].Platform != p || !strings.Contains(ls[n].Reason, reason) {
		t.Errorf("verdict %+v, want a %s refusal for %q", ls[n:], p, reason)
	}
}

// --- Azure IoT Hub ---

const (
	hubHost  = "signerd-test.azure-devices.net"
	otherHub = "other-hub.azure-devices.net"
	azDev    = "thermo-01"
	azDev2   = "thermo-02"
	azMod    = "edge-mod"
	azKey    = "c2lnbmVyZC10ZXN0LWF6dXJlLWRldmljZS1rZXktMDE=" // base64, as the portal shows keys
	azKey2   = "c2lnbmVyZC10ZXN0LWF6dXJlLWRldmljZS1rZXktMDI="
	azModKey = "c2lnbmVyZC10ZXN0LWF6dXJlLW1vZHVsZS1rZXktMDE="
	azAPI    = "2021-04-12"
)

// azureToken is PLATFORMS.md's SAS token: sr = URLENCODE(resource), sig =
// base64(HMAC-SHA256(base64decode(key), sr + "\n" + se)).
func azureToken(resource, keyB64 string, se int64, skn string) string {
	sr := url.QueryEscape(resource)
	if skn == "registration" {
		sr = resource // DPS: Microsoft's Node client sends sr unencoded
	}
	seS := strconv.FormatInt(se, 10)
	sig := base64.StdEncoding.EncodeToString(mac(sha256.New, b64(keyB64), sr+"\n"+seS))
	tok := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + seS
	if skn != "" {
		tok += "&skn=" + skn
	}
	return tok
}

// azureSig is the sig of a device token, before URL encoding.
func azureSig(resource, keyB64 string, se int64) string {
	return base64.StdEncoding.EncodeToString(mac(sha256.New, b64(keyB64), url.QueryEscape(resource)+"\n"+strconv.FormatInt(se, 10)))
}

func azureConn(b *mqtttest.Broker, listener, host, dev, mod, keyB64 string, se int64) mqtttest.Conn {
	cid, user, res := dev, host+"/"+dev+"/?api-version="+azAPI, host+"/devices/"+dev
	if mod != "" {
		cid, user, res = dev+"/"+mod, host+"/"+dev+"/"+mod+"/?api-version="+azAPI, res+"/modules/"+mod
	}
	return conn(b, listener, cid, user, azureToken(res, keyB64, se, ""))
}

func TestAzureLogin(t *testing.T) {
	clk := newClock(t0)
	b := mqtttest.Start(t, mqtttest.WithClock(clk.now))
	b.AddAzureDevice(hubHost, azDev, "", azKey)
	b.AddAzureDevice(hubHost, azDev2, "", azKey2)
	b.AddAzureDevice(hubHost, azDev, azMod, azModKey)
	b.AddAzureDevice(otherHub, azDev, "", azKey2)
	se := t0.Add(time.Hour).Unix()
	dev := mqtttest.Device{ProductKey: hubHost, DeviceName: azDev}

	t.Run("device over TLS", func(t *testing.T) {
		accept(t, b, azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, se), mqtttest.Azure, dev)
	})
	t.Run("device over WebSocket", func(t *testing.T) {
		accept(t, b, azureConn(b, mqtttest.ListenerAzureWSS, hubHost, azDev, "", azKey, se), mqtttest.Azure, dev)
	})
	t.Run("module", func(t *testing.T) {
		accept(t, b, azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, azMod, azModKey, se), mqtttest.Azure,
			mqtttest.Device{ProductKey: hubHost, DeviceName: azDev + "/" + azMod})
	})
	t.Run("SDK username suffix and field order", func(t *testing.T) {
		c := azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, se)
		c.Username += "&DeviceClientType=azure-iot-device%2F1.17.0"
		// Microsoft's order is sr, sig, skn, se; the hub does not care.
		f := strings.Split(strings.TrimPrefix(c.Password, "SharedAccessSignature "), "&")
		c.Password = "SharedAccessSignature " + f[2] + "&" + f[0] + "&" + f[1]
		accept(t, b, c, mqtttest.Azure, dev)
	})
	t.Run("own topics only", func(t *testing.T) {
		cl, err := mqtttest.Connect(azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, se))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Disconnect(0)
		if err := mqtttest.RoundTrip(cl, "devices/"+azDev+"/messages/events/", []byte("d2c")); err != nil {
			t.Error(err)
		}
		if err := mqtttest.RoundTrip(cl, "devices/"+azDev2+"/messages/events/", []byte("x")); err == nil {
			t.Error("a device used another device's topic")
		}
	})

	good := azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, se)
	tests := []struct {
		name   string
		c      mqtttest.Conn
		reason string
	}{
		{"tampered sig", func() mqtttest.Conn {
			c := good
			c.Password = strings.Replace(c.Password, "&se=", "A&se=", 1)
			return c
		}(), "sig"},
		{"another device's key", azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey2, se), "sig does not match"},
		{"another device's token", func() mqtttest.Conn {
			c := good
			c.Password = azureConn(b, "", hubHost, azDev2, "", azKey2, se).Password
			return c
		}(), "is not this identity's resource"},
		{"another hub's token", func() mqtttest.Conn {
			c := good
			c.Password = azureConn(b, "", otherHub, azDev, "", azKey, se).Password
			return c
		}(), "is not this identity's resource"},
		{"device token for its module", func() mqtttest.Conn {
			c := azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, azMod, azModKey, se)
			c.Password = azureToken(hubHost+"/devices/"+azDev, azModKey, se, "")
			return c
		}(), "is not this identity's resource"},
		{"unknown device", azureConn(b, mqtttest.ListenerAzureTLS, hubHost, "thermo-99", "", azKey, se), "unknown device"},
		{"expired", azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, t0.Unix()), "expired"},
		{"policy token", func() mqtttest.Conn {
			c := good
			c.Password = azureToken(hubHost+"/devices/"+azDev, azKey, se, "device")
			return c
		}(), "skn"},
		{"no api-version", func() mqtttest.Conn { c := good; c.Username = hubHost + "/" + azDev + "/?DeviceClientType=x"; return c }(), "api-version"},
		{"username without /?", func() mqtttest.Conn {
			c := good
			c.Username = hubHost + "/" + azDev + "/api-version=" + azAPI
			return c
		}(), "username"},
		{"clientId not the device", func() mqtttest.Conn { c := good; c.ClientID = azDev2; return c }(), "clientId"},
		{"not a SAS token", func() mqtttest.Conn {
			c := good
			c.Password = strings.TrimPrefix(c.Password, "SharedAccessSignature ")
			return c
		}(), "SharedAccessSignature"},
		{"sig not URL-encoded", func() mqtttest.Conn {
			// An expiry whose signature holds a "+": sent raw, it decodes
			// to a space, as it would at the hub.
			se := se
			for !strings.Contains(azureSig(hubHost+"/devices/"+azDev, azKey, se), "+") {
				se++
			}
			c := azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, se)
			sig := azureSig(hubHost+"/devices/"+azDev, azKey, se)
			c.Password = strings.Replace(c.Password, url.QueryEscape(sig), sig, 1)
			return c
		}(), "sig is not base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { refuse(t, b, tc.c, mqtttest.Azure, tc.reason) })
	}

	t.Run("expires with the broker's clock", func(t *testing.T) {
		c := azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, t0.Add(time.Minute).Unix())
		accept(t, b, c, mqtttest.Azure, dev)
		clk.add(time.Minute)
		defer clk.set(t0)
		refuse(t, b, c, mqtttest.Azure, "expired")
	})
	t.Run("WebSocket only at /$iothub/websocket", func(t *testing.T) {
		c := azureConn(b, mqtttest.ListenerAzureWSS, hubHost, azDev, "", azKey, se)
		c.URI = "wss://" + b.Addr(mqtttest.ListenerAzureWSS) + "/mqtt"
		n := len(b.Logins())
		if cl, err := mqtttest.Connect(c); err == nil {
			cl.Disconnect(0)
			t.Fatal("connected at another path")
		}
		if len(b.Logins()) != n {
			t.Error("a CONNECT at another path reached the broker")
		}
	})
}

// --- Azure DPS ---

// Microsoft's worked example for group enrollments
// (learn.microsoft.com/azure/iot-dps/how-to-legacy-device-symm-key,
// "Derive a device key"): this group key and registration id give this
// device key.
const (
	msGroupKey   = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	msRegID      = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	msDerivedKey = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
	idScope      = "0ne00000A0A"
	dpsAPI       = "2019-03-31"
)

func dpsConn(b *mqtttest.Broker, scope, regID, deviceKeyB64 string, se int64) mqtttest.Conn {
	return conn(b, mqtttest.ListenerDPSTLS, regID, scope+"/registrations/"+regID+"/api-version="+dpsAPI,
		azureToken(scope+"/registrations/"+regID, deviceKeyB64, se, "registration"))
}

func TestAzureDPSLogin(t *testing.T) {
	// The test's own derivation reproduces Microsoft's published value.
	if got := base64.StdEncoding.EncodeToString(mac(sha256.New, b64(msGroupKey), msRegID)); got != msDerivedKey {
		t.Fatalf("derived %s, Microsoft's example says %s", got, msDerivedKey)
	}
	clk := newClock(t0)
	b := mqtttest.Start(t, mqtttest.WithClock(clk.now))
	b.AddAzureDPSGroup(idScope, msGroupKey, msRegID, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f7")
	b.AddAzureHubGroup(hubHost, msGroupKey, msRegID)
	se := t0.Add(time.Hour).Unix()
	dev := mqtttest.Device{ProductKey: idScope, DeviceName: msRegID}

	t.Run("registration with the documented derived key", func(t *testing.T) {
		accept(t, b, dpsConn(b, idScope, msRegID, msDerivedKey, se), mqtttest.AzureDPS, dev)
	})
	t.Run("SDK username suffix", func(t *testing.T) {
		c := dpsConn(b, idScope, msRegID, msDerivedKey, se)
		c.Username += "&ClientVersion=azure-iot-provisioning-device-mqtt%2F1.11.0"
		accept(t, b, c, mqtttest.AzureDPS, dev)
	})
	t.Run("sr encoded and signed encoded", func(t *testing.T) {
		// DPS checks the signature over sr as sent, encoded or not.
		c := dpsConn(b, idScope, msRegID, msDerivedKey, se)
		sr, seS := url.QueryEscape(idScope+"/registrations/"+msRegID), strconv.FormatInt(se, 10)
		sig := base64.StdEncoding.EncodeToString(mac(sha256.New, b64(msDerivedKey), sr+"\n"+seS))
		c.Password = "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + seS + "&skn=registration"
		accept(t, b, c, mqtttest.AzureDPS, dev)
	})
	t.Run("the hub login of a group-enrolled device", func(t *testing.T) {
		accept(t, b, azureConn(b, mqtttest.ListenerAzureTLS, hubHost, msRegID, "", msDerivedKey, se), mqtttest.Azure,
			mqtttest.Device{ProductKey: hubHost, DeviceName: msRegID})
	})

	good := dpsConn(b, idScope, msRegID, msDerivedKey, se)
	withPassword := func(p string) mqtttest.Conn { c := good; c.Password = p; return c }
	res := idScope + "/registrations/" + msRegID
	tests := []struct {
		name   string
		c      mqtttest.Conn
		reason string
	}{
		{"group key instead of the derived key", dpsConn(b, idScope, msRegID, msGroupKey, se), "sig does not match"},
		{"tampered sig", withPassword(strings.Replace(good.Password, "&se=", "A&se=", 1)), "sig"},
		{"no skn", withPassword(azureToken(res, msDerivedKey, se, "")), "skn"},
		{"skn not registration", withPassword(azureToken(res, msDerivedKey, se, "device")), "skn"},
		{"another registration's token", withPassword(dpsConn(b, idScope, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f7",
			base64.StdEncoding.EncodeToString(mac(sha256.New, b64(msGroupKey), "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f7")), se).Password),
			"is not this registration's resource"},
		{"not in a group", dpsConn(b, idScope, "sn-unknown", msDerivedKey, se), "belongs to no enrollment group"},
		{"another id scope", dpsConn(b, "0ne00000B0B", msRegID, msDerivedKey, se), "belongs to no enrollment group"},
		{"expired", dpsConn(b, idScope, msRegID, msDerivedKey, t0.Unix()-1), "expired"},
		{"hub username shape", func() mqtttest.Conn {
			c := good
			c.Username = idScope + "/" + msRegID + "/?api-version=" + dpsAPI
			return c
		}(), "username"},
		{"no api-version", func() mqtttest.Conn { c := good; c.Username = res + "/ClientVersion=1"; return c }(), "api-version"},
		{"clientId not the registration id", func() mqtttest.Conn { c := good; c.ClientID = "other"; return c }(), "clientId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { refuse(t, b, tc.c, mqtttest.AzureDPS, tc.reason) })
	}
}

// --- Tencent ---

const (
	tcPID  = "1A17RZR3XX" // the product id of Tencent's documentation
	tcDN   = "sensor_01"
	tcDN2  = "sensor_02"
	tcPSK  = "dGVuY2VudC10ZXN0LXBzay0wMQ=="
	tcPSK2 = "dGVuY2VudC10ZXN0LXBzay0wMg=="
)

var tencentHashes = map[string]func() hash.Hash{"hmacsha256": sha256.New, "hmacsha1": sha1.New}

// tencentConn is PLATFORMS.md's rule: clientId {pid}{dn}, username
// {pid}{dn};12010126;{connId};{expiry}, password
// hex(HMAC(base64decode(psk), username));{method}.
func tencentConn(b *mqtttest.Broker, listener, pid, dn, pskB64, method, connID string, expiry int64) mqtttest.Conn {
	cid := pid + dn
	user := cid + ";12010126;" + connID + ";" + strconv.FormatInt(expiry, 10)
	return conn(b, listener, cid, user, hex.EncodeToString(mac(tencentHashes[method], b64(pskB64), user))+";"+method)
}

func TestTencentLogin(t *testing.T) {
	clk := newClock(t0)
	b := mqtttest.Start(t, mqtttest.WithClock(clk.now))
	b.AddTencentDevice(tcPID, tcDN, tcPSK)
	b.AddTencentDevice(tcPID, tcDN2, tcPSK2)
	exp := t0.Add(time.Hour).Unix()
	dev := mqtttest.Device{ProductKey: tcPID, DeviceName: tcDN}

	for _, l := range []string{mqtttest.ListenerTencentTCP, mqtttest.ListenerTencentTLS} {
		for m := range tencentHashes {
			t.Run(l+"/"+m, func(t *testing.T) {
				accept(t, b, tencentConn(b, l, tcPID, tcDN, tcPSK, m, "aZ3x9", exp), mqtttest.Tencent, dev)
			})
		}
	}
	t.Run("own topics only", func(t *testing.T) {
		cl, err := mqtttest.Connect(tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, "hmacsha256", "abcde", exp))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Disconnect(0)
		if err := mqtttest.RoundTrip(cl, tcPID+"/"+tcDN+"/data", []byte("up")); err != nil {
			t.Error(err)
		}
		if err := mqtttest.RoundTrip(cl, tcPID+"/"+tcDN2+"/data", []byte("x")); err == nil {
			t.Error("a device used another device's topic")
		}
	})

	good := tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, "hmacsha256", "abcde", exp)
	sha1Sig := tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, "hmacsha1", "abcde", exp)
	mod := func(f func(c *mqtttest.Conn)) mqtttest.Conn { c := good; f(&c); return c }
	tests := []struct {
		name   string
		c      mqtttest.Conn
		reason string
	}{
		{"tampered password", mod(func(c *mqtttest.Conn) { c.Password = flipHex(c.Password) }), "password does not match"},
		{"another device's psk", tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK2, "hmacsha256", "abcde", exp), "password does not match"},
		{"another device's credentials", mod(func(c *mqtttest.Conn) { c.ClientID = tcPID + tcDN2 }), "not the clientId"},
		{"unknown device", tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, "nobody", tcPSK, "hmacsha256", "abcde", exp), "unknown device"},
		{"expired", tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, "hmacsha256", "abcde", t0.Unix()), "expired"},
		{"sha256 signature with the hmacsha1 suffix", mod(func(c *mqtttest.Conn) {
			c.Password = strings.TrimSuffix(c.Password, "hmacsha256") + "hmacsha1"
		}), "password does not match"},
		{"sha1 signature with the hmacsha256 suffix", mod(func(c *mqtttest.Conn) {
			c.Password = strings.TrimSuffix(sha1Sig.Password, "hmacsha1") + "hmacsha256"
		}), "password does not match"},
		{"unknown method suffix", mod(func(c *mqtttest.Conn) { c.Password = strings.TrimSuffix(c.Password, "hmacsha256") + "hmacmd5" }), "method suffix"},
		{"no method suffix", mod(func(c *mqtttest.Conn) { c.Password = strings.TrimSuffix(c.Password, ";hmacsha256") }), "suffix"},
		{"upper-case hex", mod(func(c *mqtttest.Conn) {
			h, m, _ := strings.Cut(c.Password, ";")
			c.Password = strings.ToUpper(h) + ";" + m
		}), "lower-case hex"},
		{"wrong sdkAppId", mod(func(c *mqtttest.Conn) { c.Username = strings.Replace(c.Username, ";12010126;", ";12010127;", 1) }), "sdkAppId"},
		{"connId of 4", tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, "hmacsha256", "abcd", exp), "connId"},
		{"connId with a symbol", tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, "hmacsha256", "ab-de", exp), "connId"},
		{"username of three fields", mod(func(c *mqtttest.Conn) { c.Username = tcPID + tcDN + ";12010126;" + strconv.FormatInt(exp, 10) }), "username"},
		{"expiry not a number", mod(func(c *mqtttest.Conn) {
			c.Username = tcPID + tcDN + ";12010126;abcde;soon"
		}), "expiry"},
		{"clientId with a separator", mod(func(c *mqtttest.Conn) { c.ClientID = tcPID + "/" + tcDN }), "username starts with"},
		{"keep-alive over 900 s", mod(func(c *mqtttest.Conn) { c.KeepAlive = 901 * time.Second }), "keep-alive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { refuse(t, b, tc.c, mqtttest.Tencent, tc.reason) })
	}
}

// flipHex changes the first hex digit of s.
func flipHex(s string) string {
	c := "0"
	if s[0] == '0' {
		c = "1"
	}
	return c + s[1:]
}

// --- Huawei ---

const (
	hwDev    = "64bf5b1f2c8f5e2d_sensor_01" // {productId}_{nodeId}: the id holds "_"
	hwDev2   = "64bf5b1f2c8f5e2d_sensor_02"
	hwSecret = "huawei-test-secret-01"
	// Huawei's documented clientId example is D39564861q3gDa_0_0_2018072417.
	hwDocDev = "D39564861q3gDa"
	hwDocCID = "D39564861q3gDa_0_0_2018072417"
)

// huaweiConn is PLATFORMS.md's rule: clientId {deviceId}_0_{flag}_{ts},
// username {deviceId}, password hex(HMAC-SHA256(key = ts, secret)).
func huaweiConn(b *mqtttest.Broker, listener, dev, secret, flag string, at time.Time) mqtttest.Conn {
	ts := at.UTC().Format("2006010215")
	return conn(b, listener, dev+"_0_"+flag+"_"+ts, dev, hex.EncodeToString(mac(sha256.New, []byte(ts), secret)))
}

func TestHuaweiLogin(t *testing.T) {
	clk := newClock(t0)
	b := mqtttest.Start(t, mqtttest.WithClock(clk.now))
	b.AddHuaweiDevice(hwDev, hwSecret)
	b.AddHuaweiDevice(hwDev2, "huawei-test-secret-02")
	b.AddHuaweiDevice(hwDocDev, hwSecret)
	dev := mqtttest.Device{DeviceName: hwDev}

	for _, l := range []string{mqtttest.ListenerHuaweiTCP, mqtttest.ListenerHuaweiTLS} {
		t.Run(l+"/checked", func(t *testing.T) {
			accept(t, b, huaweiConn(b, l, hwDev, hwSecret, "1", t0), mqtttest.Huawei, dev)
		})
	}
	t.Run("checked, the hour before and after", func(t *testing.T) {
		accept(t, b, huaweiConn(b, mqtttest.ListenerHuaweiTLS, hwDev, hwSecret, "1", t0.Add(-time.Hour)), mqtttest.Huawei, dev)
		accept(t, b, huaweiConn(b, mqtttest.ListenerHuaweiTLS, hwDev, hwSecret, "1", t0.Add(time.Hour)), mqtttest.Huawei, dev)
	})
	t.Run("unchecked timestamp of 2018", func(t *testing.T) {
		c := huaweiConn(b, mqtttest.ListenerHuaweiTLS, hwDocDev, hwSecret, "0", time.Date(2018, 7, 24, 17, 0, 0, 0, time.UTC))
		if c.ClientID != hwDocCID {
			t.Fatalf("clientId %s, Huawei's example is %s", c.ClientID, hwDocCID)
		}
		accept(t, b, c, mqtttest.Huawei, mqtttest.Device{DeviceName: hwDocDev})
	})
	t.Run("own topics only", func(t *testing.T) {
		cl, err := mqtttest.Connect(huaweiConn(b, mqtttest.ListenerHuaweiTCP, hwDev, hwSecret, "0", t0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Disconnect(0)
		if err := mqtttest.RoundTrip(cl, "$oc/devices/"+hwDev+"/user/up", []byte("up")); err != nil {
			t.Error(err)
		}
		if err := mqtttest.RoundTrip(cl, "$oc/devices/"+hwDev2+"/user/up", []byte("x")); err == nil {
			t.Error("a device used another device's topic")
		}
	})

	good := huaweiConn(b, mqtttest.ListenerHuaweiTLS, hwDev, hwSecret, "1", t0)
	mod := func(f func(c *mqtttest.Conn)) mqtttest.Conn { c := good; f(&c); return c }
	tests := []struct {
		name   string
		c      mqtttest.Conn
		reason string
	}{
		{"tampered password", mod(func(c *mqtttest.Conn) { c.Password = flipHex(c.Password) }), "password does not match"},
		{"another device's secret", huaweiConn(b, mqtttest.ListenerHuaweiTLS, hwDev2, hwSecret, "1", t0), "password does not match"},
		{"username of another device", mod(func(c *mqtttest.Conn) { c.Username = hwDev2 }), "username"},
		{"unknown device", huaweiConn(b, mqtttest.ListenerHuaweiTLS, "nobody_1", hwSecret, "1", t0), "unknown device"},
		{"checked timestamp two hours old", huaweiConn(b, mqtttest.ListenerHuaweiTLS, hwDev, hwSecret, "1", t0.Add(-2*time.Hour)), "checked timestamp"},
		{"checked timestamp two hours ahead", huaweiConn(b, mqtttest.ListenerHuaweiTLS, hwDev, hwSecret, "1", t0.Add(2*time.Hour)), "checked timestamp"},
		{"timestamp not the signed one", mod(func(c *mqtttest.Conn) {
			c.ClientID = strings.TrimSuffix(c.ClientID, t0.Format("2006010215")) + t0.Add(-time.Hour).Format("2006010215")
		}), "password does not match"},
		{"timestamp with minutes", mod(func(c *mqtttest.Conn) { c.ClientID += "30" }), "YYYYMMDDHH"},
		{"month 13", mod(func(c *mqtttest.Conn) { c.ClientID = hwDev + "_0_0_2026132905" }), "YYYYMMDDHH"},
		{"id type 1", mod(func(c *mqtttest.Conn) { c.ClientID = strings.Replace(c.ClientID, "_0_1_", "_1_1_", 1) }), "id type"},
		{"flag 2", mod(func(c *mqtttest.Conn) { c.ClientID = strings.Replace(c.ClientID, "_0_1_", "_0_2_", 1) }), "flag"},
		{"clientId is the device id", mod(func(c *mqtttest.Conn) { c.ClientID = "sensor" }), "clientId"},
		{"upper-case hex", mod(func(c *mqtttest.Conn) { c.Password = strings.ToUpper(c.Password) }), "lower-case hex"},
		{"keep-alive 20 s", mod(func(c *mqtttest.Conn) { c.KeepAlive = 20 * time.Second }), "keep-alive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { refuse(t, b, tc.c, mqtttest.Huawei, tc.reason) })
	}
}

// --- OneNET ---

const (
	onPID   = "123123" // the product and device of OneNET's token documentation
	onDN    = "mydev"
	onDN2   = "mydev2"
	onKey   = "b25lbmV0LXRlc3QtZGV2aWNlLWtleS0wMQ=="
	onKey2  = "b25lbmV0LXRlc3QtZGV2aWNlLWtleS0wMg=="
	onDocET = 1537255523 // OneNET's example et: 2018-09-18 15:25:23 Beijing time
)

var onenetHashes = map[string]func() hash.Hash{"md5": md5.New, "sha1": sha1.New, "sha256": sha256.New}

// onenetToken is PLATFORMS.md's rule: sign =
// base64(HMAC-method(base64decode(key), et\nmethod\nres\nversion)),
// res and sign URL-encoded in the token.
func onenetToken(pid, dn, keyB64, method string, et int64) string {
	res := "products/" + pid + "/devices/" + dn
	etS := strconv.FormatInt(et, 10)
	sign := base64.StdEncoding.EncodeToString(mac(onenetHashes[method], b64(keyB64), etS+"\n"+method+"\n"+res+"\n2018-10-31"))
	return "version=2018-10-31&res=" + url.QueryEscape(res) + "&et=" + etS + "&method=" + method + "&sign=" + url.QueryEscape(sign)
}

func TestOneNETLogin(t *testing.T) {
	clk := newClock(time.Unix(onDocET, 0).Add(-time.Hour))
	b := mqtttest.Start(t, mqtttest.WithClock(clk.now))
	b.AddOneNETDevice(onPID, onDN, onKey)
	b.AddOneNETDevice(onPID, onDN2, onKey2)
	dev := mqtttest.Device{ProductKey: onPID, DeviceName: onDN}

	t.Run("the documentation's res encoding", func(t *testing.T) {
		tok := onenetToken(onPID, onDN, onKey, "sha1", onDocET)
		if !strings.HasPrefix(tok, "version=2018-10-31&res=products%2F123123%2Fdevices%2Fmydev&et=1537255523&method=sha1&sign=") {
			t.Errorf("token %s does not have the documented form", tok)
		}
	})
	for _, l := range []string{mqtttest.ListenerOneNETTCP, mqtttest.ListenerOneNETTLS} {
		for m := range onenetHashes {
			t.Run(l+"/"+m, func(t *testing.T) {
				accept(t, b, conn(b, l, onDN, onPID, onenetToken(onPID, onDN, onKey, m, onDocET)), mqtttest.OneNET, dev)
			})
		}
	}
	t.Run("own topics only", func(t *testing.T) {
		cl, err := mqtttest.Connect(conn(b, mqtttest.ListenerOneNETTCP, onDN, onPID, onenetToken(onPID, onDN, onKey, "sha256", onDocET)))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Disconnect(0)
		// mochi keeps clients from publishing on $SYS-like topics, so
		// OneNET's $sys/… topics are checked by subscription.
		for topic, want := range map[string]byte{
			"$sys/" + onPID + "/" + onDN + "/dp/post/json/accepted":  1,
			"$sys/" + onPID + "/" + onDN2 + "/dp/post/json/accepted": 0x80,
		} {
			tok := cl.Subscribe(topic, 1, nil)
			if !tok.WaitTimeout(mqtttest.Timeout) || tok.Error() != nil {
				t.Fatalf("subscribe %s: %v", topic, tok.Error())
			}
			if got := subscribeCode(tok, topic); got != want {
				t.Errorf("subscribe %s: code %#x, want %#x", topic, got, want)
			}
		}
	})

	good := conn(b, mqtttest.ListenerOneNETTCP, onDN, onPID, onenetToken(onPID, onDN, onKey, "sha256", onDocET))
	withPassword := func(p string) mqtttest.Conn { c := good; c.Password = p; return c }
	res := url.QueryEscape("products/" + onPID + "/devices/" + onDN)
	tests := []struct {
		name   string
		c      mqtttest.Conn
		reason string
	}{
		{"tampered sign", withPassword(strings.Replace(good.Password, "&sign=", "&sign=A", 1)), "sign"},
		{"another device's key", withPassword(onenetToken(onPID, onDN, onKey2, "sha256", onDocET)), "sign does not match"},
		{"another device's token", withPassword(onenetToken(onPID, onDN2, onKey2, "sha256", onDocET)), "is not this device's"},
		{"unknown device", conn(b, mqtttest.ListenerOneNETTCP, "nobody", onPID, onenetToken(onPID, "nobody", onKey, "sha256", onDocET)), "unknown device"},
		{"expired", withPassword(onenetToken(onPID, onDN, onKey, "sha256", clk.now().Unix())), "expired"},
		{"method changed", withPassword(strings.Replace(good.Password, "method=sha256", "method=sha1", 1)), "sign does not match"},
		{"unknown method", withPassword(strings.Replace(good.Password, "method=sha256", "method=sha512", 1)), "method"},
		{"other version", withPassword(strings.Replace(good.Password, "version=2018-10-31", "version=2019-01-01", 1)), "version"},
		{"res not encoded", withPassword(strings.Replace(good.Password, res, "products/"+onPID+"/devices/"+onDN, 1)), "res is not URL-encoded"},
		{"sign not encoded", func() mqtttest.Conn {
			_, sign, _ := strings.Cut(good.Password, "&sign=")
			raw, _ := url.QueryUnescape(sign)
			return withPassword(strings.Replace(good.Password, sign, raw, 1))
		}(), "sign is not URL-encoded"},
		{"no et", withPassword(strings.Replace(good.Password, "&et="+strconv.Itoa(onDocET), "", 1)), "no et"},
		{"extra field", withPassword(good.Password + "&skn=x"), "unknown field"},
		{"field twice", withPassword(good.Password + "&method=sha256"), "twice"},
		{"username not the product", func() mqtttest.Conn { c := good; c.Username = "123124"; return c }(), "is not this device's"},
		{"keep-alive 1900 s", func() mqtttest.Conn { c := good; c.KeepAlive = 1900 * time.Second; return c }(), "keep-alive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { refuse(t, b, tc.c, mqtttest.OneNET, tc.reason) })
	}
}

// --- the platform is the listener's ---

// A login of one platform presented on another platform's listener is
// refused, and the same names on two platforms are two devices.
func TestPlatformIsTheListeners(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.WithClock(newClock(t0).now))
	b.AddTencentDevice(tcPID, tcDN, tcPSK)
	b.AddOneNETDevice(tcPID, tcDN, tcPSK)
	exp := t0.Add(time.Hour).Unix()

	tc := tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, "hmacsha256", "abcde", exp)
	on := conn(b, mqtttest.ListenerOneNETTCP, tcDN, tcPID, onenetToken(tcPID, tcDN, tcPSK, "sha256", exp))

	wrong := tc
	wrong.URI = b.URI(mqtttest.ListenerOneNETTCP)
	refuse(t, b, wrong, mqtttest.OneNET, "token")
	wrong = on
	wrong.URI = b.URI(mqtttest.ListenerTencentTCP)
	refuse(t, b, wrong, mqtttest.Tencent, "clientId")
	wrong = tc
	wrong.URI = b.URI(mqtttest.ListenerTCP)
	refuse(t, b, wrong, mqtttest.Alibaba, "")

	c1, err := mqtttest.Connect(tc)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Disconnect(0)
	c2, err := mqtttest.Connect(on)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Disconnect(0)
	// The second login did not kick the first: they are different
	// devices.
	if err := mqtttest.RoundTrip(c1, tcPID+"/"+tcDN+"/data", []byte("still here")); err != nil {
		t.Errorf("the Tencent connection after the OneNET login: %v", err)
	}
	if !b.OnlineOn(mqtttest.Tencent, tcPID, tcDN) || !b.OnlineOn(mqtttest.OneNET, tcPID, tcDN) {
		t.Error("a device of one platform took the other's same-named device offline")
	}
	if b.Online(tcPID, tcDN) {
		t.Error("an Alibaba device of the same names is online")
	}
}

// --- every platform at once ---

type platformLogin struct {
	name     string
	listener string
	c        mqtttest.Conn
}

// everyPlatform starts a broker at t0 with a device of each platform and
// returns an accepted login of each, per listener and sign method.
func everyPlatform(tb testing.TB) (*mqtttest.Broker, []platformLogin) {
	b := mqtttest.Start(tb, mqtttest.WithClock(newClock(t0).now))
	b.AddDevice(pk, dn, secret)
	b.AddAzureDevice(hubHost, azDev, "", azKey)
	b.AddAzureDevice(hubHost, azDev, azMod, azModKey)
	b.AddAzureDPSGroup(idScope, msGroupKey, msRegID)
	b.AddTencentDevice(tcPID, tcDN, tcPSK)
	b.AddHuaweiDevice(hwDev, hwSecret)
	b.AddOneNETDevice(onPID, onDN, onKey)
	exp := t0.Add(time.Hour).Unix()
	var ls []platformLogin
	add := func(name, listener string, c mqtttest.Conn) {
		ls = append(ls, platformLogin{name, listener, c})
	}
	for m := range methods {
		add("alibaba/"+m, mqtttest.ListenerTLS, creds(b, mqtttest.ListenerTLS, m))
	}
	add("azure/device", mqtttest.ListenerAzureTLS, azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, "", azKey, exp))
	add("azure/module", mqtttest.ListenerAzureTLS, azureConn(b, mqtttest.ListenerAzureTLS, hubHost, azDev, azMod, azModKey, exp))
	add("azure-dps", mqtttest.ListenerDPSTLS, dpsConn(b, idScope, msRegID, msDerivedKey, exp))
	for m := range tencentHashes {
		add("tencent/"+m, mqtttest.ListenerTencentTCP, tencentConn(b, mqtttest.ListenerTencentTCP, tcPID, tcDN, tcPSK, m, "abcde", exp))
	}
	for _, flag := range []string{"0", "1"} {
		add("huawei/"+flag, mqtttest.ListenerHuaweiTCP, huaweiConn(b, mqtttest.ListenerHuaweiTCP, hwDev, hwSecret, flag, t0))
	}
	for m := range onenetHashes {
		add("onenet/"+m, mqtttest.ListenerOneNETTCP, conn(b, mqtttest.ListenerOneNETTCP, onDN, onPID, onenetToken(onPID, onDN, onKey, m, exp)))
	}
	return b, ls
}

// Every one-bit change of any byte of an accepted password is refused,
// with a reason, on every platform: the whole password is checked, not a
// prefix, a field or a decoded form that two spellings share.
func TestEveryPasswordBitFlipRefused(t *testing.T) {
	b, logins := everyPlatform(t)
	for _, l := range logins {
		t.Run(l.name, func(t *testing.T) {
			if v := b.CheckConnect(l.listener, l.c.ClientID, l.c.Username, l.c.Password, 300); !v.Accepted {
				t.Fatalf("the unchanged login is refused: %s", v.Reason)
			}
			for i := range len(l.c.Password) {
				p := []byte(l.c.Password)
				p[i] ^= 1
				if v := b.CheckConnect(l.listener, l.c.ClientID, l.c.Username, string(p), 300); v.Accepted || v.Reason == "" {
					t.Errorf("password with byte %d changed (%q→%q): %+v", i, l.c.Password[i], p[i], v)
				}
			}
		})
	}
}

// Whatever the CONNECT holds, on whichever listener, the broker gives a
// verdict without panicking: an accepted login with no reason, or a
// refusal with one.
func FuzzCheckConnect(f *testing.F) {
	b, logins := everyPlatform(f)
	ids := []string{mqtttest.ListenerTCP, mqtttest.ListenerTLS, mqtttest.ListenerWSS,
		mqtttest.ListenerAzureTLS, mqtttest.ListenerAzureWSS, mqtttest.ListenerDPSTLS,
		mqtttest.ListenerTencentTCP, mqtttest.ListenerTencentTLS, mqtttest.ListenerHuaweiTCP,
		mqtttest.ListenerHuaweiTLS, mqtttest.ListenerOneNETTCP, mqtttest.ListenerOneNETTLS}
	for _, l := range logins {
		for i, id := range ids {
			if id == l.listener {
				f.Add(uint8(i), l.c.ClientID, l.c.Username, l.c.Password, uint16(300))
			}
		}
	}
	f.Add(uint8(4), "_0_1_", "", "SharedAccessSignature &&=", uint16(0))
	f.Fuzz(func(t *testing.T, li uint8, cid, user, pass string, keepAlive uint16) {
		v := b.CheckConnect(ids[int(li)%len(ids)], cid, user, pass, keepAlive)
		if v.Accepted == (v.Reason != "") {
			t.Errorf("verdict %+v: accepted with a reason, or refused without one", v)
		}
	})
}
