package azure_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/azure"
)

// Reference grammars, written from Microsoft's rules independently of the
// implementation's tables.
var (
	hubRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{1,48})[A-Za-z0-9]$`)
	labelRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	idRE     = regexp.MustCompile(`^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$`)
	scopeRE  = regexp.MustCompile(`^0ne[0-9A-Fa-f]{8}$`)
	regIDRE  = regexp.MustCompile(`^[A-Za-z0-9\-._:]{0,127}[A-Za-z0-9-]$`)
	tokenHub = regexp.MustCompile(`^SharedAccessSignature sr=([^&]+)&sig=([^&]+)&se=([0-9]+)$`)
	tokenDPS = regexp.MustCompile(`^SharedAccessSignature sr=([^&]+)&sig=([^&]+)&skn=registration&se=([0-9]+)$`)
)

func hostOK(s string) bool {
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

func ttlOK(sec int64) bool { return sec == 0 || (sec >= 60 && sec <= 2592000) }

// ttlFrom turns a fuzzed number of seconds into a duration without
// overflowing.
func ttlFrom(sec int64) time.Duration {
	if sec > 1<<32 || sec < -(1<<32) {
		sec = 1 << 32
	}
	return time.Duration(sec) * time.Second
}

// checkSig checks that sig (URL-encoded base64) is the HMAC-SHA256 by key
// of content.
func checkSig(t *testing.T, key []byte, sig, content string) {
	t.Helper()
	raw, err := url.QueryUnescape(sig)
	if err != nil {
		t.Fatalf("sig %q: %v", sig, err)
	}
	sum, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatalf("sig %q: %v", sig, err)
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(content))
	if !hmac.Equal(sum, h.Sum(nil)) {
		t.Errorf("sig does not verify over %q", content)
	}
}

func FuzzSignHub(f *testing.F) {
	for _, v := range loadVectors(f).Hub {
		f.Add(v.Input.Hub, v.Input.Host, v.Input.DeviceID, v.Input.ModuleID, v.Input.IssuedAt, v.Input.TTLSeconds)
	}
	f.Add("hub", "", "dev+1", "", int64(1700000000), int64(0))
	f.Add("hub", "a..b", "dev", "m/x", int64(1700000000), int64(59))
	f.Add("hub", "", "dev&sig=x", "", int64(1700000000), int64(2592001))
	f.Add("-hub", "h.net:1", "d\n", "m#", int64(0), int64(-60))
	f.Add("", "", "", "", int64(-1), int64(1<<62))
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, hub, host, deviceID, moduleID string, issuedAt, ttlSec int64) {
		if issuedAt > 1<<40 || issuedAt < -(1<<40) {
			issuedAt = 1700000000
		}
		req := azure.HubRequest{Hub: hub, Host: host, DeviceID: deviceID, ModuleID: moduleID,
			IssuedAt: time.Unix(issuedAt, 0), TTL: ttlFrom(ttlSec)}
		called := false
		mac := func(c []byte) ([]byte, error) { called = true; return azure.KeyMAC(key)(c) }
		l, err := azure.SignHub(req, mac)

		valid := hubRE.MatchString(hub) && (host == "" || hostOK(host)) && idRE.MatchString(deviceID) &&
			(moduleID == "" || idRE.MatchString(moduleID)) && ttlOK(ttlSec)
		if !valid {
			var fe *azure.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("invalid request accepted or not a FieldError: %v", err)
			}
			if called {
				t.Error("MAC called for an invalid request")
			}
			return
		}
		ttl := ttlSec
		if ttl == 0 {
			ttl = 3600
		}
		if issuedAt+ttl <= 0 {
			if err == nil {
				t.Fatal("expiry before the epoch accepted")
			}
			return
		}
		if err != nil {
			t.Fatalf("valid request refused: %v", err)
		}
		if host == "" {
			host = hub + ".azure-devices.net"
		}
		clientID, resource := deviceID, host+"/devices/"+deviceID
		if moduleID != "" {
			clientID += "/" + moduleID
			resource += "/modules/" + moduleID
		}
		if l.ClientID != clientID || l.Username != host+"/"+clientID+"/?api-version=2021-04-12" || l.ExpiresAt != issuedAt+ttl {
			t.Errorf("login %+v", l)
		}
		m := tokenHub.FindStringSubmatch(l.Password)
		if m == nil {
			t.Fatalf("password %q is not a device SAS token", l.Password)
		}
		if dec, err := url.PathUnescape(m[1]); err != nil || dec != resource {
			t.Errorf("sr %q decodes to %q (%v), want %q", m[1], dec, err, resource)
		}
		if strings.ContainsAny(m[1], "/!'()*+#& ") {
			t.Errorf("sr %q keeps a character encodeUriComponentStrict encodes", m[1])
		}
		if m[3] != strconv.FormatInt(l.ExpiresAt, 10) {
			t.Errorf("se %s, expiresAt %d", m[3], l.ExpiresAt)
		}
		checkSig(t, key, m[2], m[1]+"\n"+m[3])
	})
}

func FuzzSignDPS(f *testing.F) {
	for _, v := range loadVectors(f).DPS {
		f.Add(v.Input.IDScope, v.Input.RegistrationID, v.Input.IssuedAt, v.Input.TTLSeconds)
	}
	f.Add("0ne00000A0A", "dev.", int64(1700000000), int64(0))
	f.Add("0ne00000A0A/x", "dev", int64(1700000000), int64(0))
	f.Add("0ne00000A0A", "a&skn=x", int64(1700000000), int64(60))
	f.Add("", "", int64(0), int64(0))
	groupKey := []byte("group-key-0123456789abcdef")
	f.Fuzz(func(t *testing.T, scope, regID string, issuedAt, ttlSec int64) {
		if issuedAt > 1<<40 || issuedAt < -(1<<40) {
			issuedAt = 1700000000
		}
		req := azure.DPSRequest{IDScope: scope, RegistrationID: regID, IssuedAt: time.Unix(issuedAt, 0), TTL: ttlFrom(ttlSec)}
		groupMAC := azure.KeyMAC(groupKey)
		deviceKey, derr := azure.DeriveDeviceKey(groupMAC, regID)
		if regIDRE.MatchString(regID) != (derr == nil) {
			t.Fatalf("DeriveDeviceKey(%q) error %v", regID, derr)
		}
		if derr == nil {
			h := hmac.New(sha256.New, groupKey)
			h.Write([]byte(regID))
			if !hmac.Equal(deviceKey, h.Sum(nil)) {
				t.Fatal("derived key is not HMAC-SHA256(groupKey, registrationId)")
			}
		} else {
			deviceKey = []byte("unused")
		}
		called := false
		mac := func(c []byte) ([]byte, error) { called = true; return azure.KeyMAC(deviceKey)(c) }
		l, err := azure.SignDPS(req, mac)

		if !(scopeRE.MatchString(scope) && regIDRE.MatchString(regID) && ttlOK(ttlSec)) {
			var fe *azure.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("invalid request accepted or not a FieldError: %v", err)
			}
			if called {
				t.Error("MAC called for an invalid request")
			}
			return
		}
		ttl := ttlSec
		if ttl == 0 {
			ttl = 3600
		}
		if issuedAt+ttl <= 0 {
			if err == nil {
				t.Fatal("expiry before the epoch accepted")
			}
			return
		}
		if err != nil {
			t.Fatalf("valid request refused: %v", err)
		}
		resource := scope + "/registrations/" + regID
		if l.ClientID != regID || l.Username != resource+"/api-version=2019-03-31" || l.ExpiresAt != issuedAt+ttl {
			t.Errorf("login %+v", l)
		}
		m := tokenDPS.FindStringSubmatch(l.Password)
		if m == nil {
			t.Fatalf("password %q is not a registration SAS token", l.Password)
		}
		if m[1] != resource {
			t.Errorf("sr %q, want %q as it is", m[1], resource)
		}
		checkSig(t, deviceKey, m[2], m[1]+"\n"+m[3])
	})
}
