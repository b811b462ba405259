package mqtttest

import (
	"encoding/json"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// subLoginKeys are the params of a sub-device login, all strings; every
// one but sign, signMethod and cleanSession is signed.
var (
	subLoginKeys = []string{"productKey", "deviceName", "clientId", "timestamp", "signMethod", "sign", "cleanSession"}
	unsignedKeys = map[string]bool{"sign": true, "signMethod": true, "cleanSession": true}
)

type replyDevice struct {
	ProductKey string `json:"productKey"`
	DeviceName string `json:"deviceName"`
}

// subDeviceLogin checks one combine/login or combine/batch_login message
// from the gateway gw over its connection conn and returns the reply. A
// batch succeeds or fails as a whole; a failure's data lists the
// sub-devices that failed.
func (b *Broker) subDeviceLogin(conn *mqtt.Client, gw Device, pk packets.Packet, batch bool) []byte {
	rec := SubDeviceLogin{Gateway: gw, Topic: pk.TopicName}
	var id string
	answer := func(code int, message string, data any) []byte {
		rec.Code, rec.Message = code, message
		b.mu.Lock()
		b.subLogins = append(b.subLogins, rec)
		b.mu.Unlock()
		out, _ := json.Marshal(map[string]any{"id": id, "code": code, "message": message, "data": data})
		return out
	}

	var msg struct {
		ID     any             `json:"id"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(pk.Payload, &msg); err != nil {
		return answer(CodeBadParameter, "payload is not an Alink JSON message", nil)
	}
	s, ok := msg.ID.(string)
	if !ok || !isDigits(s) || len(s) > 10 {
		return answer(CodeBadParameter, "id must be a string of digits", nil)
	}
	id = s
	if pk.FixedHeader.Qos != 0 {
		return answer(CodeBadParameter, "sub-device login supports QoS 0 only", nil)
	}
	var raw []map[string]any
	if batch {
		var p struct {
			DeviceList []map[string]any `json:"deviceList"`
		}
		if err := json.Unmarshal(msg.Params, &p); err != nil || len(p.DeviceList) == 0 || len(p.DeviceList) > MaxBatchLogin {
			return answer(CodeBadParameter, fmt.Sprintf("params.deviceList must hold 1–%d sub-devices", MaxBatchLogin), nil)
		}
		raw = p.DeviceList
	} else {
		var p map[string]any
		if err := json.Unmarshal(msg.Params, &p); err != nil || p == nil {
			return answer(CodeBadParameter, "params must be an object", nil)
		}
		if _, ok := p["deviceList"]; ok {
			return answer(CodeBadParameter, "a deviceList belongs on combine/batch_login", nil)
		}
		raw = []map[string]any{p}
	}

	entries := make([]map[string]string, len(raw))
	for i, r := range raw {
		e := make(map[string]string, len(r))
		for k, v := range r {
			s, ok := v.(string)
			if !ok {
				return answer(CodeBadParameter, fmt.Sprintf("sub-device %d: %s must be a string", i, k), nil)
			}
			e[k] = s
		}
		for _, k := range subLoginKeys {
			if e[k] == "" {
				return answer(CodeBadParameter, fmt.Sprintf("sub-device %d: %s is missing", i, k), nil)
			}
		}
		if _, ok := hashes[strings.ToLower(e["signMethod"])]; !ok {
			return answer(CodeBadParameter, fmt.Sprintf("sub-device %d: unknown signMethod %q", i, e["signMethod"]), nil)
		}
		if c := e["cleanSession"]; c != "true" && c != "false" {
			return answer(CodeBadParameter, fmt.Sprintf("sub-device %d: cleanSession must be \"true\" or \"false\"", i), nil)
		}
		if !isDigits(e["timestamp"]) {
			return answer(CodeBadParameter, fmt.Sprintf("sub-device %d: timestamp must be milliseconds", i), nil)
		}
		entries[i] = e
		rec.Devices = append(rec.Devices, Device{e["productKey"], e["deviceName"]})
	}

	// Every sub-device is checked; the first failure decides the code.
	code, message := CodeSuccess, "success"
	var failed, accepted []replyDevice
	for i, e := range entries {
		dev := rec.Devices[i]
		c, m := b.checkSubDevice(gw, dev, e)
		if c != CodeSuccess {
			if code == CodeSuccess {
				code, message = c, m
			}
			failed = append(failed, replyDevice(dev))
			continue
		}
		accepted = append(accepted, replyDevice(dev))
	}
	if code != CodeSuccess {
		return answer(code, message, failed)
	}
	b.mu.Lock()
	// A message handled after its connection was kicked must not take the
	// sub-devices from the gateway's newer connection; OnDisconnect deletes
	// the session under this lock, so a gone connection is seen here.
	if _, ok := b.sessions[conn]; ok && live(conn) {
		for _, d := range rec.Devices {
			b.subOnline[d] = conn
		}
	}
	b.mu.Unlock()
	if !batch {
		return answer(code, message, accepted[0])
	}
	return answer(code, message, accepted)
}

// checkSubDevice checks one sub-device's params: known device, topology,
// sign.
func (b *Broker) checkSubDevice(gw, dev Device, e map[string]string) (int, string) {
	b.mu.Lock()
	secret, known := b.secrets[dev]
	bound := b.topology[gw][dev]
	b.mu.Unlock()
	switch {
	case !known:
		return CodeDeviceNotFound, "device not found: " + dev.String()
	case !bound:
		return CodeNoTopology, "no topological relation between gateway " + gw.String() + " and " + dev.String()
	}
	signed := make(map[string]string, len(e))
	for k, v := range e {
		if !unsignedKeys[k] {
			signed[k] = v
		}
	}
	if !signOK(hashes[strings.ToLower(e["signMethod"])], secret, signed, e["sign"]) {
		return CodeSignMismatch, "sign check failed for " + dev.String()
	}
	return CodeSuccess, "success"
}
