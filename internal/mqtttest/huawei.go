package mqtttest

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// HuaweiTimestampWindow is how far from the broker's clock a checked
// timestamp may be. Huawei says a checked timestamp (clientId flag 1) is
// compared with the platform's time but states no tolerance. The timestamp
// has hour resolution, so a device with a correct clock sends the current
// UTC hour; the broker also takes the hour before and the hour after, for a
// clock a little off across an hour boundary, and refuses anything further:
// a stale answer replayed hours later, or one dated ahead.
const HuaweiTimestampWindow = time.Hour

// Huawei's keep-alive range for MQTT devices.
const (
	HuaweiMinKeepAlive = 30
	HuaweiMaxKeepAlive = 1200
)

const huaweiTimestampLayout = "2006010215" // YYYYMMDDHH, UTC

// checkHuawei applies IoTDA's secret rule: clientId
// {deviceId}_0_{0|1}_{YYYYMMDDHH} (the device id may itself hold "_", so
// the fields are taken from the right), username {deviceId}, password
// hex(HMAC-SHA256(key = timestamp, message = secret)) in lower case as
// Huawei's SDKs write it; with flag 1 the timestamp must be within
// HuaweiTimestampWindow of the broker's current hour.
func (b *Broker) checkHuawei(c packets.ConnectParams, now time.Time) (Device, error) {
	if c.Keepalive < HuaweiMinKeepAlive || c.Keepalive > HuaweiMaxKeepAlive {
		return Device{}, fmt.Errorf("keep-alive %d s is outside %d–%d", c.Keepalive, HuaweiMinKeepAlive, HuaweiMaxKeepAlive)
	}
	cid := c.ClientIdentifier
	f := strings.Split(cid, "_")
	n := len(f)
	if n < 4 {
		return Device{}, fmt.Errorf("clientId %q is not {deviceId}_0_{0|1}_{YYYYMMDDHH}", cid)
	}
	deviceID, idType, flag, ts := strings.Join(f[:n-3], "_"), f[n-3], f[n-2], f[n-1]
	switch {
	case deviceID == "":
		return Device{}, fmt.Errorf("clientId %q has no device id", cid)
	case idType != "0":
		return Device{}, fmt.Errorf("clientId id type %q, want 0 (a device id)", idType)
	case flag != "0" && flag != "1":
		return Device{}, fmt.Errorf("clientId timestamp flag %q, want 0 or 1", flag)
	case string(c.Username) != deviceID:
		return Device{}, fmt.Errorf("username %q is not the device id %q of the clientId", c.Username, deviceID)
	}
	if len(ts) != len(huaweiTimestampLayout) || !isDigits(ts) {
		return Device{}, fmt.Errorf("timestamp %q is not YYYYMMDDHH", ts)
	}
	t, err := time.Parse(huaweiTimestampLayout, ts)
	if err != nil {
		return Device{}, fmt.Errorf("timestamp %q is not a UTC YYYYMMDDHH time: %w", ts, err)
	}
	if flag == "1" {
		hour := now.UTC().Truncate(time.Hour)
		if t.Before(hour.Add(-HuaweiTimestampWindow)) || t.After(hour.Add(HuaweiTimestampWindow)) {
			return Device{}, fmt.Errorf("checked timestamp %s is more than %v from the broker's hour %s",
				ts, HuaweiTimestampWindow, hour.Format(huaweiTimestampLayout))
		}
	}
	got, ok := lowerHex(string(c.Password))
	if !ok {
		return Device{}, errors.New("password is not lower-case hex")
	}
	b.mu.Lock()
	secret, known := b.huawei[deviceID]
	b.mu.Unlock()
	if !known {
		return Device{}, fmt.Errorf("unknown device %s", deviceID)
	}
	m := hmac.New(sha256.New, []byte(ts))
	m.Write(secret)
	if !hmac.Equal(got, m.Sum(nil)) {
		return Device{}, fmt.Errorf("password does not match HMAC-SHA256(timestamp, secret) of %s", deviceID)
	}
	return Device{DeviceName: deviceID}, nil
}
