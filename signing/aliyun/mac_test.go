package aliyun_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
	"strings"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// externalMAC is a MAC computed outside package signing, as Vault Transit
// or package secrets compute it: crypto/hmac directly, never writing over
// the content it is given. It records the content it saw.
func externalMAC(secret []byte, seen *string) signing.MAC {
	return func(m signing.Method, content []byte) ([]byte, error) {
		*seen = string(content)
		newHash := map[signing.Method]func() hash.Hash{
			signing.MethodHMACSHA256: sha256.New, signing.MethodHMACSHA1: sha1.New, signing.MethodHMACMD5: md5.New,
		}[m]
		h := hmac.New(newHash, secret)
		h.Write(content)
		return h.Sum(nil), nil
	}
}

// message is one sign function under test, reduced to "sign with mac,
// return the sign as it appears in the message".
type message struct {
	name    string
	content string // the sign content the MAC must be given
	sign    func(m signing.Method, mac signing.MAC) (string, error)
	invalid func(mac signing.MAC) error // signs an invalid request
}

func messages() []message {
	connect := signing.ConnectRequest{ProductKey: "a1FakePK01", DeviceName: "dev-001", ClientID: "dev-001",
		Timestamp: "1700000000000", Transport: signing.TransportTLS}
	pre := signing.PreVerifyRequest{ProductKey: "a1FakePK01", DeviceName: "dev-001", ClientID: "dev-001", Timestamp: "1700000000000"}
	reg := signing.RegisterRequest{ProductKey: "a1FakePK01", DeviceName: "dev-001", Random: "r4nd0m"}
	sub := signing.SubDeviceLoginRequest{ProductKey: "a1SubPK01", DeviceName: "sensor-0001", ClientID: "c1", Timestamp: "1700000000000"}
	return []message{
		{"SignConnect", signing.ConnectSignContent(connect),
			func(m signing.Method, mac signing.MAC) (string, error) {
				r := connect
				r.Method = m
				p, err := signing.SignConnect(r, mac)
				return p.Password, err
			},
			func(mac signing.MAC) error {
				r := connect
				r.Method, r.DeviceName = signing.MethodHMACSHA256, "x|y"
				_, err := signing.SignConnect(r, mac)
				return err
			}},
		{"SignPreVerify", signing.PreVerifySignContent(pre),
			func(m signing.Method, mac signing.MAC) (string, error) {
				r := pre
				r.Method = m
				f, err := signing.SignPreVerify(r, mac)
				return f.Get(signing.FormSign), err
			},
			func(mac signing.MAC) error {
				r := pre
				r.Method, r.ClientID = signing.MethodHMACSHA256, "dev 001"
				_, err := signing.SignPreVerify(r, mac)
				return err
			}},
		{"SignRegister", signing.RegisterSignContent(reg),
			func(m signing.Method, mac signing.MAC) (string, error) {
				r := reg
				r.Method = m
				f, err := signing.SignRegister(r, mac)
				return f.Get(signing.FormSign), err
			},
			func(mac signing.MAC) error {
				r := reg
				r.Method, r.Random = signing.MethodHMACSHA256, "not random!"
				_, err := signing.SignRegister(r, mac)
				return err
			}},
		{"SignSubDeviceLogin", signing.SubDeviceSignContent(sub),
			func(m signing.Method, mac signing.MAC) (string, error) {
				r := sub
				r.Method = m
				p, err := signing.SignSubDeviceLogin(r, mac)
				return p.Sign, err
			},
			func(mac signing.MAC) error {
				r := sub
				r.Method, r.Timestamp = signing.MethodHMACSHA256, ""
				_, err := signing.SignSubDeviceLogin(r, mac)
				return err
			}},
	}
}

var methods = []signing.Method{signing.MethodHMACSHA256, signing.MethodHMACSHA1, signing.MethodHMACMD5}

// TestSignWithExternalMAC checks that every sign function gives a MAC
// computed elsewhere exactly its sign content, and that the message then
// carries the same sign as with the local DeviceSecretMAC.
func TestSignWithExternalMAC(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, msg := range messages() {
		for _, m := range methods {
			local, err := msg.sign(m, signing.DeviceSecretMAC(secret))
			if err != nil {
				t.Fatalf("%s %v with DeviceSecretMAC: %v", msg.name, m, err)
			}
			var seen string
			ext, err := msg.sign(m, externalMAC(secret, &seen))
			if err != nil || ext != local {
				t.Errorf("%s %v with an external MAC = %q, %v; want %q (DeviceSecretMAC)", msg.name, m, ext, err, local)
			}
			if seen != msg.content {
				t.Errorf("%s %v: the MAC saw %q, want the sign content %q", msg.name, m, seen, msg.content)
			}
			if want := referenceHMAC(map[signing.Method]func() hash.Hash{
				signing.MethodHMACSHA256: sha256.New, signing.MethodHMACSHA1: sha1.New, signing.MethodHMACMD5: md5.New,
			}[m], string(secret), msg.content); local != want {
				t.Errorf("%s %v = %q, want lower-case hex %q", msg.name, m, local, want)
			}
		}
	}
}

// TestSignRejectsBadMAC checks, for every sign function, that a MAC's
// error is returned as it is, that an answer of the wrong size never
// reaches a message (nor the error), and that the MAC is not asked for an
// invalid request.
func TestSignRejectsBadMAC(t *testing.T) {
	vaultDown := errors.New("vault down")
	sha1Size := bytes.Repeat([]byte{0xab}, sha1.Size)
	tests := []struct {
		name    string
		mac     []byte
		err     error
		wantMsg string
	}{
		{"mac error", nil, vaultDown, "vault down"},
		{"empty", []byte{}, nil, "signing: the hmacsha256 MAC is 0 bytes, want 32"},
		{"too short", sha1Size, nil, "signing: the hmacsha256 MAC is 20 bytes, want 32"},
		{"too long", bytes.Repeat([]byte{0xab}, 33), nil, "signing: the hmacsha256 MAC is 33 bytes, want 32"},
	}
	for _, msg := range messages() {
		for _, tc := range tests {
			got, err := msg.sign(signing.MethodHMACSHA256, func(signing.Method, []byte) ([]byte, error) { return tc.mac, tc.err })
			if got != "" || err == nil || err.Error() != tc.wantMsg {
				t.Errorf("%s, %s: %q, %v; want no sign and error %q", msg.name, tc.name, got, err, tc.wantMsg)
			}
			if tc.err != nil && err != tc.err {
				t.Errorf("%s, %s: error %v is not the MAC's own", msg.name, tc.name, err)
			}
			if len(tc.mac) > 0 && err != nil && strings.Contains(err.Error(), "abab") {
				t.Errorf("%s, %s: error %q repeats the MAC", msg.name, tc.name, err)
			}
		}
		called := false
		err := msg.invalid(func(signing.Method, []byte) ([]byte, error) { called = true; return make([]byte, 32), nil })
		var fe *signing.FieldError
		if !errors.As(err, &fe) || called {
			t.Errorf("%s, invalid request: err=%v, MAC called=%v; want a *FieldError before the MAC", msg.name, err, called)
		}
	}
}

// TestSecretMACErrors checks that the local MACs name the secret they were
// built from and the method, as the sign functions' callers expect.
func TestSecretMACErrors(t *testing.T) {
	tests := []struct {
		name      string
		mac       signing.MAC
		m         signing.Method
		wantField string
		wantMsg   string
	}{
		{"empty device secret", signing.DeviceSecretMAC(nil), signing.MethodHMACSHA256, "deviceSecret", "deviceSecret: must not be empty"},
		{"empty product secret", signing.ProductSecretMAC([]byte{}), signing.MethodHMACSHA1, "productSecret", "productSecret: must not be empty"},
		{"no method", signing.DeviceSecretMAC([]byte("s")), signing.MethodUnspecified, "signMethod", "signMethod: must be one of hmacsha256, hmacsha1, hmacmd5"},
	}
	for _, tc := range tests {
		got, err := tc.mac(tc.m, []byte("content"))
		if got != nil {
			t.Errorf("%s: MAC %x alongside an error", tc.name, got)
		}
		checkFieldError(t, tc.name, err, tc.wantField, tc.wantMsg)
	}
}
