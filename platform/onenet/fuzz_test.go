package onenet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/device"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// requestFields are the request's JSON fields: the only fields a
// *device.FieldError from Sign may name.
var requestFields = map[string]bool{"productId": true, "deviceName": true, "signMethod": true, "ttlSeconds": true, "transport": true}

// FuzzSign: any request answers a login for a device the registered rules
// accept, *device.FieldError values naming request fields, or NOT_FOUND
// for a valid name; never a key in an error. So authorization and the key
// lookup never see a name the rules refuse.
func FuzzSign(f *testing.F) {
	f.Add(testPID, testName, "", int32(0), int32(0))
	f.Add(testPID, testName, "SHA1", int32(60), int32(1))
	f.Add(testPID, "dev-002", "MD5", int32(2592000), int32(2))
	f.Add("Ck2AF9QD2-", "dev:1", "HMAC_SHA256", int32(-1), int32(3))
	f.Add("EQPOKD511/", "../x", "hmacsha256", int32(59), int32(99))
	f.Add("", "", "", int32(2592001), int32(-1))
	f.Fuzz(func(t *testing.T, pid, name, method string, ttl, transport int32) {
		s, keys := configured(t, []secrets.DevEntry{{Platform: "onenet", ProductKey: testPID, DeviceName: testName, Key: testPsk}})
		req := &signerv1.SignOnenetMqttConnectRequest{ProductId: pid, DeviceName: name, SignMethod: method, TtlSeconds: ttl, Transport: signerv1.Transport(transport)}
		id, err := s.Device(req)
		if err != nil || id != (device.ID{Platform: "onenet", ProductKey: pid, DeviceName: name}) {
			t.Fatalf("Device(%v) = %v, %v", req, id, err)
		}
		login, err := s.Sign(context.Background(), req, time.Unix(1700000000, 0), keys)
		noKey(t, err)
		switch {
		case err == nil:
			if verr := id.Validate(); verr != nil {
				t.Fatalf("signed for %v, which the registered rules refuse: %v", id, verr)
			}
			if login.Password == "" || login.ClientID != name || login.Username != pid || strings.ContainsAny(login.ClientID+login.Username, "#+/ \x00") {
				t.Fatalf("login %+v", login)
			}
		case errors.Is(err, secrets.ErrNotFound):
			if verr := id.Validate(); verr != nil {
				t.Fatalf("looked up %v, which the registered rules refuse: %v", id, verr)
			}
		default:
			for _, f := range fieldsOf(t, err) {
				if !requestFields[f] {
					t.Fatalf("error %v names %q, not a request field", err, f)
				}
			}
		}
	})
}

// FuzzConfigure: any section is refused with an error or served, never a
// panic, and a served one has one signer and a usable location.
func FuzzConfigure(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[]`, `{"vault":null}`, `{"vault":{"mount":"kv","path":"{deviceName}","field":"k"}}`,
		`{"vault":{"path":"../{deviceName}"}}`, `{"vault":{"mount":1}}`, `{"x":1}`, `{"vault":{"path":"a","path":"b"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, section []byte) {
		c, err := Module{}.Configure(section)
		if err != nil {
			return
		}
		if len(c.Signers) != 1 || c.Signers[0].RPC() != RPC || len(c.Locations) != 1 {
			t.Fatalf("accepted %q as %+v", section, c)
		}
		if err := c.Locations["onenet"].Check(); err != nil {
			t.Fatalf("accepted %q with location %+v: %v", section, c.Locations["onenet"], err)
		}
	})
}
