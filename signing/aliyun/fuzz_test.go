package aliyun_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
	"regexp"
	"strings"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// Reference grammars, written independently of the implementation.
var (
	productKeyRE = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)
	deviceNameRE = regexp.MustCompile(`^[A-Za-z0-9_.@:-]{4,32}$`)
	clientIDRE   = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,64}$`)
	timestampRE  = regexp.MustCompile(`^[0-9]{1,19}$`)
)

// addSeeds adds the vectors and some hostile inputs to f's corpus as
// (secret, productKey, deviceName, clientId, timestamp, method, transport).
func addSeeds(f *testing.F) {
	for _, v := range loadVectors(f) {
		m, err := signing.ParseMethod(v.Input.SignMethod)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(v.Input.DeviceSecret), v.Input.ProductKey, v.Input.DeviceName, v.Input.ClientID,
			v.Input.Timestamp, int(m), int(transportFor(f, v.Input.SecureMode)))
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	hostile := []struct{ pk, dn, cid, ts string }{
		{"a1FakePK01", "dev-001", "dev|securemode=3,signmethod=hmacmd5|", ""},
		{"a1FakePK01", "dev-001", "dev-001", "1,timestamp=2"},
		{"a1FakePK01", "dev&x", "dev-001", "1"},
		{"a1&PK", "dev-001", "dev-001", "1"},
		{"a1FakePK01", "dev 001", "dev\t001", "1\n"},
		{"a1FakePK01", "dév-001", "dev=001", "１"},
		{"", "", "", ""},
	}
	for _, h := range hostile {
		f.Add(secret, h.pk, h.dn, h.cid, h.ts, int(signing.MethodHMACSHA256), int(signing.TransportTLS))
	}
	f.Add([]byte{}, "pk", "dev1", "c", "", int(signing.MethodHMACMD5), int(signing.TransportTCP))
	f.Add(secret, "pk", "dev1", "c", "", 0, 0)
	f.Add(secret, "pk", "dev1", "c", "", -1, 4)
}

// FuzzValidate checks the validators against the reference grammars and
// that every error names its field.
func FuzzValidate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, _ []byte, productKey, deviceName, clientID, timestamp string, _, _ int) {
		for _, tc := range []struct {
			fn    func(string) error
			field string
			re    *regexp.Regexp
			in    string
		}{
			{signing.ValidateProductKey, "productKey", productKeyRE, productKey},
			{signing.ValidateDeviceName, "deviceName", deviceNameRE, deviceName},
			{signing.ValidateClientID, "clientId", clientIDRE, clientID},
			{signing.ValidateTimestamp, "timestamp", timestampRE, timestamp},
		} {
			err := tc.fn(tc.in)
			if want := tc.re.MatchString(tc.in); want != (err == nil) {
				t.Errorf("validating %s %q: error %v, reference grammar match %v", tc.field, tc.in, err, want)
			}
			if err == nil {
				if i := strings.IndexAny(tc.in, "|,=& \t\r\n\x00"); i >= 0 {
					t.Errorf("%s %q accepted with framing or space byte at %d", tc.field, tc.in, i)
				}
				continue
			}
			var fe *signing.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("validating %s %q: error %#v, want *FieldError for %s", tc.field, tc.in, err, tc.field)
			}
		}
	})
}

// FuzzSignConnect checks that SignConnect never panics, that whatever it
// accepts is framed unambiguously and signed correctly, and that its errors
// do not depend on the secret's value.
func FuzzSignConnect(f *testing.F) {
	addSeeds(f)
	hashes := map[signing.Method]func() hash.Hash{
		signing.MethodHMACSHA256: sha256.New,
		signing.MethodHMACSHA1:   sha1.New,
		signing.MethodHMACMD5:    md5.New,
	}
	methodNames := map[signing.Method]string{
		signing.MethodHMACSHA256: "hmacsha256",
		signing.MethodHMACSHA1:   "hmacsha1",
		signing.MethodHMACMD5:    "hmacmd5",
	}
	secureModes := map[signing.Transport]string{
		signing.TransportTLS:          "2",
		signing.TransportWebSocketTLS: "2",
		signing.TransportTCP:          "3",
	}
	f.Fuzz(func(t *testing.T, secret []byte, productKey, deviceName, clientID, timestamp string, method, transport int) {
		req := signing.ConnectRequest{
			ProductKey: productKey,
			DeviceName: deviceName,
			ClientID:   clientID,
			Timestamp:  timestamp,
			Method:     signing.Method(method),
			Transport:  signing.Transport(transport),
		}
		secretCopy := bytes.Clone(secret)
		got, err := signing.SignConnect(req, signing.DeviceSecretMAC(secret))
		if !bytes.Equal(secret, secretCopy) {
			t.Fatalf("SignConnect modified the secret")
		}
		if err != nil {
			var fe *signing.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("SignConnect(%+v) error %#v is not a *FieldError naming a field", req, err)
			}
			if got != (signing.ConnectParams{}) {
				t.Errorf("SignConnect(%+v) = %+v alongside error %v", req, got, err)
			}
			if len(secret) > 0 {
				// The error must be the same for any other non-empty secret.
				other := []byte("an entirely different secret value")
				if _, err2 := signing.SignConnect(req, signing.DeviceSecretMAC(other)); err2 == nil || err2.Error() != err.Error() {
					t.Errorf("SignConnect error depends on the secret: %v vs %v", err, err2)
				}
			}
			return
		}

		newHash, ok := hashes[req.Method]
		if !ok {
			t.Fatalf("SignConnect accepted invalid method %v", req.Method)
		}
		if !productKeyRE.MatchString(productKey) || !deviceNameRE.MatchString(deviceName) ||
			!clientIDRE.MatchString(clientID) || (timestamp != "" && !timestampRE.MatchString(timestamp)) {
			t.Fatalf("SignConnect accepted invalid request %+v", req)
		}

		if n := strings.Count(got.ClientID, "|"); n != 2 {
			t.Errorf("ClientID %q has %d '|', want 2", got.ClientID, n)
		}
		if prefix := clientID + "|securemode="; !strings.HasPrefix(got.ClientID, prefix) {
			t.Errorf("ClientID %q does not start with %q", got.ClientID, prefix)
		}
		wantParams := 2
		if timestamp != "" {
			wantParams = 3
		}
		if n := strings.Count(got.ClientID, "="); n != wantParams {
			t.Errorf("ClientID %q has %d '=', want %d", got.ClientID, n, wantParams)
		}
		if n := strings.Count(got.ClientID, ","); n != wantParams-1 {
			t.Errorf("ClientID %q has %d ',', want %d", got.ClientID, n, wantParams-1)
		}
		if n := strings.Count(got.Username, "&"); n != 1 {
			t.Errorf("Username %q has %d '&', want 1", got.Username, n)
		}
		if want := deviceName + "&" + productKey; got.Username != want {
			t.Errorf("Username = %q, want %q", got.Username, want)
		}

		wantClientID := clientID + "|securemode=" + secureModes[req.Transport] + ",signmethod=" + methodNames[req.Method]
		if timestamp != "" {
			wantClientID += ",timestamp=" + timestamp
		}
		if wantClientID += "|"; got.ClientID != wantClientID {
			t.Errorf("ClientID = %q, want %q", got.ClientID, wantClientID)
		}

		wantLen := 2 * newHash().Size()
		if len(got.Password) != wantLen || strings.Trim(got.Password, "0123456789abcdef") != "" {
			t.Errorf("Password %q is not %d lower-case hex digits", got.Password, wantLen)
		}
		content := "clientId" + clientID + "deviceName" + deviceName + "productKey" + productKey
		if timestamp != "" {
			content += "timestamp" + timestamp
		}
		if want := referenceHMAC(newHash, string(secret), content); got.Password != want {
			t.Errorf("Password = %q, want %q", got.Password, want)
		}
	})
}
