package mqtttest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// OneNET's token version and keep-alive range.
const (
	OneNETVersion      = "2018-10-31"
	OneNETMinKeepAlive = 10
	OneNETMaxKeepAlive = 1800
)

var onenetMethods = map[string]func() hash.Hash{
	"md5":    md5.New,
	"sha1":   sha1.New,
	"sha256": sha256.New,
}

// checkOneNET applies OneNET's token rule: clientId {deviceName}, username
// {productId}, password
// version=2018-10-31&res={URLENCODE(products/{pid}/devices/{name})}&et=…&method=md5|sha1|sha256&sign={URLENCODE(sign)}
// (fields in any order), et in the future, sign =
// base64(HMAC-method(base64decode(key), et\nmethod\nres\nversion)) over
// the decoded res. OneNET's documentation requires res and sign to be
// URL-encoded: a raw "/" in res, or a raw "+", "/" or "=" in sign, is
// refused (a "+" left raw would decode to a space anyway).
func (b *Broker) checkOneNET(c packets.ConnectParams, now time.Time) (Device, error) {
	if c.Keepalive < OneNETMinKeepAlive || c.Keepalive > OneNETMaxKeepAlive {
		return Device{}, fmt.Errorf("keep-alive %d s is outside %d–%d", c.Keepalive, OneNETMinKeepAlive, OneNETMaxKeepAlive)
	}
	dev := Device{ProductKey: string(c.Username), DeviceName: c.ClientIdentifier}
	if dev.ProductKey == "" || dev.DeviceName == "" {
		return Device{}, errors.New("clientId {deviceName} and username {productId} are required")
	}
	f, err := tokenFields(string(c.Password), "version", "res", "et", "method", "sign")
	if err != nil {
		return Device{}, fmt.Errorf("token: %w", err)
	}
	for _, k := range []string{"version", "res", "et", "method", "sign"} {
		if f[k] == "" {
			return Device{}, fmt.Errorf("token has no %s", k)
		}
	}
	if f["version"] != OneNETVersion {
		return Device{}, fmt.Errorf("version %q, want %s", f["version"], OneNETVersion)
	}
	if strings.Contains(f["res"], "/") {
		return Device{}, errors.New("res is not URL-encoded")
	}
	if strings.ContainsAny(f["sign"], "+/=") {
		return Device{}, errors.New("sign is not URL-encoded")
	}
	res, err := unescape("res", f["res"])
	if err != nil {
		return Device{}, err
	}
	if want := "products/" + dev.ProductKey + "/devices/" + dev.DeviceName; res != want {
		return Device{}, fmt.Errorf("res %q is not this device's %q", res, want)
	}
	if err := expiry("et", f["et"], now); err != nil {
		return Device{}, err
	}
	newHash, ok := onenetMethods[f["method"]]
	if !ok {
		return Device{}, fmt.Errorf("method %q is not md5, sha1 or sha256", f["method"])
	}
	sign, err := unescape("sign", f["sign"])
	if err != nil {
		return Device{}, err
	}
	got, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return Device{}, fmt.Errorf("sign is not base64: %w", err)
	}
	b.mu.Lock()
	key, known := b.onenet[dev]
	b.mu.Unlock()
	if !known {
		return Device{}, fmt.Errorf("unknown device %s", dev)
	}
	m := hmac.New(newHash, key)
	m.Write([]byte(f["et"] + "\n" + f["method"] + "\n" + res + "\n" + f["version"]))
	if !hmac.Equal(got, m.Sum(nil)) {
		return Device{}, fmt.Errorf("sign does not match the %s signature with %s's key", f["method"], dev)
	}
	return dev, nil
}
