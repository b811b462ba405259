package aliyun

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// A gateway logs its sub-devices in over its own MQTT connection by
// publishing, on
//
//	/ext/session/{gatewayProductKey}/{gatewayDeviceName}/combine/login
//
// (or combine/batch_login for several), one params object per sub-device:
//
//	productKey, deviceName, clientId, timestamp, signMethod, sign, cleanSession
//
// where sign is the hex HMAC, keyed with the sub-device's DeviceSecret, of
// every submitted parameter except sign, signMethod and cleanSession, keys
// sorted, key and value concatenated:
//
//	clientId{c}deviceName{d}productKey{p}timestamp{t}
//
// The platform answers on the topic with "_reply" appended.

// MaxSubDeviceLogin is the most sub-devices one batch_login may carry (the
// platform's limit).
const MaxSubDeviceLogin = 50

// Parameter names of a sub-device login that are not in the sign content.
const (
	keySignMethod   = "signMethod"
	keySign         = "sign"
	keyCleanSession = "cleanSession"
)

// unsignedSubDeviceKeys are the submitted parameters left out of the sign.
var unsignedSubDeviceKeys = map[string]bool{keySign: true, keySignMethod: true, keyCleanSession: true}

// SubDeviceLoginRequest identifies one sub-device login to sign.
type SubDeviceLoginRequest struct {
	// ProductKey is the sub-device's product: 1–32 characters of
	// [A-Za-z0-9].
	ProductKey string
	// DeviceName is the sub-device's name: 4–32 characters of ASCII
	// letters, digits and "-_.@:".
	DeviceName string
	// ClientID is the sub-device's client id: 1–64 characters of
	// [A-Za-z0-9_.:@-].
	ClientID string
	// Timestamp is the login time in milliseconds since the Unix epoch, as
	// 1–19 decimal digits. The platform requires it here.
	Timestamp string
	// Method is the HMAC algorithm.
	Method Method
	// CleanSession is sent as "true" or "false"; it is not signed.
	CleanSession bool
}

// Validate checks every field of r and returns a *FieldError for the first
// invalid one, in the order productKey, deviceName, clientId, timestamp,
// signMethod; or nil if r is valid.
func (r SubDeviceLoginRequest) Validate() error {
	if err := ValidateProductKey(r.ProductKey); err != nil {
		return err
	}
	if err := ValidateDeviceName(r.DeviceName); err != nil {
		return err
	}
	if err := ValidateClientID(r.ClientID); err != nil {
		return err
	}
	if err := ValidateTimestamp(r.Timestamp); err != nil {
		return err
	}
	return validateMethod(r.Method)
}

// SubDeviceLoginParams is the platform's params object for one sub-device,
// with the platform's JSON names.
type SubDeviceLoginParams struct {
	ProductKey   string `json:"productKey"`
	DeviceName   string `json:"deviceName"`
	ClientID     string `json:"clientId"`
	Timestamp    string `json:"timestamp"`
	SignMethod   string `json:"signMethod"`
	Sign         string `json:"sign"`
	CleanSession string `json:"cleanSession"`
}

// SubDeviceMethodName returns m as the sub-device login spells it:
// "hmacSha256", "hmacSha1" or "hmacMd5"; or "" if m is not valid. (The
// MQTT CONNECT clientId spells the same methods in lower case.)
func SubDeviceMethodName(m Method) string {
	switch m {
	case MethodHMACSHA256:
		return "hmacSha256"
	case MethodHMACSHA1:
		return "hmacSha1"
	case MethodHMACMD5:
		return "hmacMd5"
	}
	return ""
}

// submitted returns every parameter of the login except sign, in the
// order of SubDeviceLoginParams.
func (r SubDeviceLoginRequest) submitted() []Param {
	return []Param{
		{keyProductKey, r.ProductKey},
		{keyDeviceName, r.DeviceName},
		{keyClientID, r.ClientID},
		{keyTimestamp, r.Timestamp},
		{keySignMethod, SubDeviceMethodName(r.Method)},
		{keyCleanSession, strconv.FormatBool(r.CleanSession)},
	}
}

// SubDeviceSignContent returns the sign content of a sub-device login:
// the submitted parameters except signMethod and cleanSession (and sign
// itself), keys sorted, key and value concatenated, that is
//
//	clientId{c}deviceName{d}productKey{p}timestamp{t}
//
// It does not validate r; call [SubDeviceLoginRequest.Validate] first.
// [SignSubDeviceLogin] hands it to its MAC.
func SubDeviceSignContent(r SubDeviceLoginRequest) string {
	all := r.submitted()
	signed := make([]Param, 0, len(all))
	for _, p := range all {
		if !unsignedSubDeviceKeys[p.Key] {
			signed = append(signed, p)
		}
	}
	return Content(signed...)
}

// SignSubDeviceLogin validates r and returns the params object with which a
// gateway logs the sub-device in, whose sign mac computes over
// [SubDeviceSignContent] with the sub-device's key: with [DeviceSecretMAC]
// when its DeviceSecret is at hand.
//
// Errors are *FieldError values naming the first invalid field, mac's
// errors as they are, or an error if the MAC is not the method's size.
// mac is not called for an invalid r.
func SignSubDeviceLogin(r SubDeviceLoginRequest, mac MAC) (SubDeviceLoginParams, error) {
	if err := r.Validate(); err != nil {
		return SubDeviceLoginParams{}, err
	}
	_, size := r.Method.newHash()
	content := SubDeviceSignContent(r)
	msg := make([]byte, len(content), max(len(content), size))
	copy(msg, content)
	sign, err := macHex(r.Method, mac, msg)
	if err != nil {
		return SubDeviceLoginParams{}, err
	}
	return assembleSubDevice(r, sign), nil
}

func assembleSubDevice(r SubDeviceLoginRequest, sign string) SubDeviceLoginParams {
	return SubDeviceLoginParams{
		ProductKey:   r.ProductKey,
		DeviceName:   r.DeviceName,
		ClientID:     r.ClientID,
		Timestamp:    r.Timestamp,
		SignMethod:   SubDeviceMethodName(r.Method),
		Sign:         sign,
		CleanSession: strconv.FormatBool(r.CleanSession),
	}
}

// SubDeviceLoginTopic returns the topic on which the gateway
// gatewayProductKey/gatewayDeviceName logs n sub-devices in, and the topic
// the platform answers on: …/combine/login for one, …/combine/batch_login
// for 2–50.
func SubDeviceLoginTopic(gatewayProductKey, gatewayDeviceName string, n int) (topic, replyTopic string, err error) {
	if err := ValidateProductKey(gatewayProductKey); err != nil {
		return "", "", err
	}
	if err := ValidateDeviceName(gatewayDeviceName); err != nil {
		return "", "", err
	}
	verb := "login"
	switch {
	case n < 1 || n > MaxSubDeviceLogin:
		return "", "", fmt.Errorf("signing: %d sub-devices; a login carries 1–%d", n, MaxSubDeviceLogin)
	case n > 1:
		verb = "batch_login"
	}
	topic = "/ext/session/" + gatewayProductKey + "/" + gatewayDeviceName + "/combine/" + verb
	return topic, topic + "_reply", nil
}

// SubDeviceLoginPayload returns the Alink JSON message that carries params:
//
//	{"id":"{id}","params":{…}}                     one sub-device (combine/login)
//	{"id":"{id}","params":{"deviceList":[{…},…]}}  2–50 (combine/batch_login)
//
// id is the message id: a decimal number in 0–4294967295, unique per
// message of the gateway.
func SubDeviceLoginPayload(id string, params []SubDeviceLoginParams) (string, error) {
	if n, err := strconv.ParseUint(id, 10, 32); err != nil || strconv.FormatUint(n, 10) != id {
		return "", errors.New("signing: message id must be a decimal number in 0–4294967295")
	}
	var body any
	switch n := len(params); {
	case n < 1 || n > MaxSubDeviceLogin:
		return "", fmt.Errorf("signing: %d sub-devices; a login carries 1–%d", n, MaxSubDeviceLogin)
	case n == 1:
		body = params[0]
	default:
		body = struct {
			DeviceList []SubDeviceLoginParams `json:"deviceList"`
		}{params}
	}
	b, err := json.Marshal(struct {
		ID     string `json:"id"`
		Params any    `json:"params"`
	}{id, body})
	if err != nil {
		return "", err
	}
	return string(b), nil
}
