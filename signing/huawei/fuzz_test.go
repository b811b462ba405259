package huawei_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/huawei"
)

var (
	deviceIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	labelRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

func referenceHost(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func FuzzSignConnect(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Input.Secret), v.Input.DeviceID, "h.example.com", v.Input.CheckTimestamp, v.Input.IssuedAt)
	}
	f.Add([]byte("s"), "a_0_1_2025041401", "a-.b", true, int64(-1))
	f.Add([]byte{}, "dév", "exämple.com", false, int64(253402300800))
	f.Fuzz(func(t *testing.T, secret []byte, deviceID, host string, check bool, issuedAt int64) {
		if err := huawei.ValidateHost(host); (err == nil) != referenceHost(host) {
			t.Errorf("ValidateHost(%q) = %v, reference %v", host, err, referenceHost(host))
		}
		if err := huawei.ValidateDeviceID(deviceID); (err == nil) != deviceIDRE.MatchString(deviceID) {
			t.Errorf("ValidateDeviceID(%q) = %v", deviceID, err)
		}
		issued := time.Unix(issuedAt, 0)
		got, err := huawei.SignConnect(huawei.Request{DeviceID: deviceID, CheckTimestamp: check, IssuedAt: issued}, huawei.SecretKeyMAC(secret))
		if err != nil {
			var fe *huawei.FieldError
			if !errors.As(err, &fe) || fe.Field == "" || got != (huawei.Login{}) {
				t.Fatalf("SignConnect: %+v, %#v; want no login and a *FieldError", got, err)
			}
			return
		}
		if !deviceIDRE.MatchString(deviceID) || issued.UTC().Year() < 1970 || issued.UTC().Year() > 9999 || len(secret) == 0 {
			t.Fatalf("SignConnect accepted device %q issued %v", deviceID, issued)
		}
		u := issued.UTC()
		ts := u.Format("2006010215")
		flag := "0"
		var exp int64
		if check {
			flag = "1"
			exp = time.Date(u.Year(), u.Month(), u.Day(), u.Hour(), 0, 0, 0, time.UTC).Unix() + 3600
		}
		mac := hmac.New(sha256.New, []byte(ts))
		mac.Write(secret)
		want := huawei.Login{ClientID: deviceID + "_0_" + flag + "_" + ts, Username: deviceID, Password: hex.EncodeToString(mac.Sum(nil)), ExpiresAt: exp}
		if got != want {
			t.Errorf("SignConnect = %+v, want %+v", got, want)
		}
		// The id is everything before the last three '_' fields.
		if parts := strings.Split(got.ClientID, "_"); strings.Join(parts[:len(parts)-3], "_") != deviceID {
			t.Errorf("clientId %q does not parse back to %q", got.ClientID, deviceID)
		}
	})
}
