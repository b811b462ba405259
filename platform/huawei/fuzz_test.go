package huawei

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/device"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	sign "github.com/signerd/signerd/signing/huawei"
)

// requestFields are the request's JSON fields: the only fields a
// *device.FieldError from Sign may name.
var requestFields = map[string]bool{"deviceId": true, "transport": true}

// FuzzSign: any request answers a login for a device the registered rules
// accept, *device.FieldError values naming request fields, or NOT_FOUND
// for a valid name; never the secret in an error. So authorization and the
// secret's lookup never see a name the rules refuse.
func FuzzSign(f *testing.F) {
	f.Add(testID, uint8(0), int32(0), int64(1700000000))
	f.Add(testID, uint8(1), int32(2), int64(253402300799))
	f.Add("other_device-1", uint8(2), int32(1), int64(0))
	f.Add("a b", uint8(0), int32(3), int64(-1))
	f.Add("../x", uint8(1), int32(99), int64(1700000000))
	f.Add("", uint8(2), int32(-1), int64(1700000000))
	f.Fuzz(func(t *testing.T, deviceID string, check uint8, transport int32, now int64) {
		s, keys := configured(t, []secrets.DevEntry{{Platform: "huawei", DeviceName: testID, Key: testSecret}})
		req := &signerv1.SignHuaweiMqttConnectRequest{DeviceId: deviceID, Transport: signerv1.Transport(transport)}
		switch check % 3 {
		case 1:
			req.CheckTimestamp = new(bool)
		case 2:
			b := true
			req.CheckTimestamp = &b
		}
		id, err := s.Device(req)
		if err != nil || id != (device.ID{Platform: "huawei", DeviceName: deviceID}) {
			t.Fatalf("Device(%v) = %v, %v", req, id, err)
		}
		at := time.Unix(now, 0)
		login, err := s.Sign(context.Background(), req, at, keys)
		noKey(t, err)
		var fe *device.FieldError
		switch {
		case err == nil:
			if verr := id.Validate(); verr != nil {
				t.Fatalf("signed for %v, which the registered rules refuse: %v", id, verr)
			}
			if login.Password == "" || login.Username != deviceID || !strings.HasPrefix(login.ClientID, deviceID+"_0_") ||
				!strings.HasSuffix(login.ClientID, "_"+sign.Timestamp(at)) || strings.Contains(login.Password, testSecret) {
				t.Fatalf("login %+v", login)
			}
			if checked := req.CheckTimestamp == nil || *req.CheckTimestamp; login.ExpiresAt.IsZero() == checked {
				t.Fatalf("checkTimestamp %v: expiry %v", checked, login.ExpiresAt)
			}
		case errors.Is(err, secrets.ErrNotFound):
			if verr := id.Validate(); verr != nil {
				t.Fatalf("looked up %v, which the registered rules refuse: %v", id, verr)
			}
		case !errors.As(err, &fe):
			// Only the server's clock may fail otherwise.
			if y := at.UTC().Year(); y >= 1970 && y <= 9999 {
				t.Fatalf("Sign at %v: %v", at, err)
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
// panic; a served one has a usable location, and a signer exactly when it
// names a valid host.
func FuzzConfigure(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[]`, `{"host":null}`, `{"host":"` + testHost + `"}`, `{"host":""}`, `{"host":"a..b"}`,
		`{"host":"h","vault":{"mount":"kv","path":"{deviceName}","field":"k"}}`, `{"vault":{"path":"/{deviceName}"}}`, `{"host":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, section []byte) {
		c, err := Module{}.Configure(section)
		if err != nil {
			return
		}
		if len(c.Locations) != 1 || len(c.Signers) > 1 {
			t.Fatalf("accepted %q as %+v", section, c)
		}
		if err := c.Locations["huawei"].Check(); err != nil {
			t.Fatalf("accepted %q with location %+v: %v", section, c.Locations["huawei"], err)
		}
		if len(c.Signers) == 1 {
			if h := c.Signers[0].(signer).host; sign.ValidateHost(h) != nil {
				t.Fatalf("accepted %q with host %q", section, h)
			}
		}
	})
}
