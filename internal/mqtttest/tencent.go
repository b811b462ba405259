package mqtttest

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Tencent's fixed sdkAppId of key-authenticated MQTT logins, and its limits.
const (
	TencentSDKAppID     = "12010126"
	TencentMaxKeepAlive = 900
	tencentProductIDLen = 10
)

// tencentMethods are the password's method suffixes.
var tencentMethods = map[string]func() hash.Hash{
	"hmacsha256": sha256.New,
	"hmacsha1":   sha1.New,
}

func isTencentProductID(s string) bool {
	if len(s) != tencentProductIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// checkTencent applies Tencent IoT Hub's key-authenticated rule: clientId
// {productId}{deviceName}; username
// {productId}{deviceName};12010126;{connId};{expiry} with connId 5
// characters of [a-zA-Z0-9] and expiry in the future; password
// {hex(HMAC(base64decode(psk), username))};{hmacsha256|hmacsha1}, the hex
// in lower case as Tencent's SDKs write it. Keep-alive 0–900 s and no
// will, as Tencent documents.
func (b *Broker) checkTencent(c packets.ConnectParams, now time.Time) (Device, error) {
	switch {
	case c.Keepalive > TencentMaxKeepAlive:
		return Device{}, fmt.Errorf("keep-alive %d s is over %d", c.Keepalive, TencentMaxKeepAlive)
	case c.WillFlag:
		return Device{}, errors.New("a will message is not supported")
	}
	cid, user := c.ClientIdentifier, string(c.Username)
	if len(cid) <= tencentProductIDLen || !isTencentProductID(cid[:tencentProductIDLen]) {
		return Device{}, fmt.Errorf("clientId %q is not {productId}{deviceName} with a 10-character product id", cid)
	}
	dev := Device{ProductKey: cid[:tencentProductIDLen], DeviceName: cid[tencentProductIDLen:]}
	f := strings.Split(user, ";")
	switch {
	case len(f) != 4:
		return Device{}, fmt.Errorf("username %q is not {productId}{deviceName};{sdkAppId};{connId};{expiry}", user)
	case f[0] != cid:
		return Device{}, fmt.Errorf("username starts with %q, not the clientId %q", f[0], cid)
	case f[1] != TencentSDKAppID:
		return Device{}, fmt.Errorf("sdkAppId %q, want %s", f[1], TencentSDKAppID)
	case len(f[2]) != 5 || !isAlnum(f[2]):
		return Device{}, fmt.Errorf("connId %q is not 5 characters of [a-zA-Z0-9]", f[2])
	}
	if err := expiry("expiry", f[3], now); err != nil {
		return Device{}, err
	}
	sig, method, ok := strings.Cut(string(c.Password), ";")
	if !ok {
		return Device{}, errors.New("password has no ;{method} suffix")
	}
	newHash, ok := tencentMethods[method]
	if !ok {
		return Device{}, fmt.Errorf("method suffix %q is not hmacsha256 or hmacsha1", method)
	}
	got, ok := lowerHex(sig)
	if !ok {
		return Device{}, errors.New("password signature is not lower-case hex")
	}
	b.mu.Lock()
	key, known := b.tencent[dev]
	b.mu.Unlock()
	if !known {
		return Device{}, fmt.Errorf("unknown device %s", dev)
	}
	m := hmac.New(newHash, key)
	m.Write([]byte(user))
	if !hmac.Equal(got, m.Sum(nil)) {
		return Device{}, fmt.Errorf("password does not match the %s of the username with %s's psk", method, dev)
	}
	return dev, nil
}
