package azure_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/azure"
)

func TestKeyMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	got, err := azure.KeyMAC(key)([]byte("content"))
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte("content"))
	if !hmac.Equal(got, h.Sum(nil)) {
		t.Error("KeyMAC is not HMAC-SHA256")
	}
	for _, k := range [][]byte{nil, {}} {
		if _, err := azure.KeyMAC(k)([]byte("x")); !errors.Is(err, azure.ErrKey) {
			t.Errorf("empty key: error %v, want ErrKey", err)
		}
	}
}

// TestMACAnswerChecked checks that a MAC's error is returned as it is and
// that a MAC of the wrong size never becomes a token.
func TestMACAnswerChecked(t *testing.T) {
	boom := errors.New("vault down")
	macs := map[string]struct {
		mac     azure.MAC
		wantErr error
	}{
		"error":  {func([]byte) ([]byte, error) { return nil, boom }, boom},
		"short":  {func([]byte) ([]byte, error) { return make([]byte, 20), nil }, nil},
		"long":   {func([]byte) ([]byte, error) { return make([]byte, 64), nil }, nil},
		"nil":    {func([]byte) ([]byte, error) { return nil, nil }, nil},
		"emptyk": {azure.KeyMAC(nil), azure.ErrKey},
	}
	for name, m := range macs {
		t.Run(name, func(t *testing.T) {
			calls := []func() error{
				func() error { _, err := azure.SignHub(validHub(), m.mac); return err },
				func() error { _, err := azure.SignDPS(validDPS(), m.mac); return err },
				func() error { _, err := azure.DeriveDeviceKey(m.mac, "dev-001"); return err },
				func() error { _, err := azure.DerivedMAC(m.mac, "dev-001"); return err },
			}
			for i, call := range calls {
				err := call()
				if err == nil {
					t.Fatalf("call %d: no error", i)
				}
				if m.wantErr != nil && !errors.Is(err, m.wantErr) {
					t.Errorf("call %d: error %v, want %v", i, err, m.wantErr)
				}
				var fe *azure.FieldError
				if errors.As(err, &fe) {
					t.Errorf("call %d: a MAC failure is not a bad field: %v", i, err)
				}
			}
		})
	}
}

// TestExpiry checks that the token expires TTL after the issue time and
// that an expiry at or before the epoch (a broken clock) is an error.
func TestExpiry(t *testing.T) {
	mac := azure.KeyMAC([]byte("0123456789abcdef"))
	req := validHub()
	req.TTL = 90 * time.Second
	req.IssuedAt = time.Unix(1700000000, 999_999_999) // fractions are dropped
	l, err := azure.SignHub(req, mac)
	if err != nil {
		t.Fatal(err)
	}
	if l.ExpiresAt != 1700000090 || !strings.HasSuffix(l.Password, "&se=1700000090") {
		t.Errorf("expiry %d, password %q", l.ExpiresAt, l.Password)
	}
	for _, at := range []time.Time{{}, time.Unix(-3600, 0)} {
		req.IssuedAt, req.TTL = at, 0
		if _, err := azure.SignHub(req, mac); err == nil {
			t.Errorf("issued at %v: no error", at)
		}
		d := validDPS()
		d.IssuedAt = at
		if _, err := azure.SignDPS(d, mac); err == nil {
			t.Errorf("DPS issued at %v: no error", at)
		}
	}
}

func TestEndpoints(t *testing.T) {
	if got := azure.HubHost("myhub"); got != "myhub.azure-devices.net" {
		t.Errorf("HubHost = %q", got)
	}
	tests := []struct {
		host  string
		tr    azure.Transport
		want  azure.Endpoint
		field string
	}{
		{"myhub.azure-devices.net", azure.TransportTLS, azure.Endpoint{Host: "myhub.azure-devices.net", Port: 8883, URI: "mqtts://myhub.azure-devices.net:8883"}, ""},
		{"myhub.azure-devices.net", azure.TransportWebSocketTLS, azure.Endpoint{Host: "myhub.azure-devices.net", Port: 443, URI: "wss://myhub.azure-devices.net:443/$iothub/websocket"}, ""},
		{"myhub.azure-devices.net", 0, azure.Endpoint{}, "transport"},
		{"myhub.azure-devices.net", 3, azure.Endpoint{}, "transport"},
		{"bad host", azure.TransportTLS, azure.Endpoint{}, "host"},
	}
	for _, tc := range tests {
		got, err := azure.HubEndpoint(tc.host, tc.tr)
		wantField(t, err, tc.field)
		if got != tc.want {
			t.Errorf("HubEndpoint(%q, %v) = %+v, want %+v", tc.host, tc.tr, got, tc.want)
		}
	}
	if got := azure.DPSEndpoint(); got != (azure.Endpoint{Host: "global.azure-devices-provisioning.net", Port: 8883, URI: "mqtts://global.azure-devices-provisioning.net:8883"}) {
		t.Errorf("DPSEndpoint = %+v", got)
	}
	for tr, want := range map[azure.Transport]string{azure.TransportTLS: "TLS", azure.TransportWebSocketTLS: "WEBSOCKET_TLS", 0: "Transport(0)"} {
		if tr.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(tr), tr.String(), want)
		}
	}
}
