package signing

import (
	"errors"
	"strings"
	"testing"
)

func TestSignConnectWithMatchesSignConnect(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, m := range []Method{MethodHMACSHA256, MethodHMACSHA1, MethodHMACMD5} {
		req := ConnectRequest{ProductKey: "a1FakePK01", DeviceName: "dev-001", ClientID: "dev-001",
			Method: m, Transport: TransportTLS, Timestamp: "1700000000000"}
		want, err := SignConnect(secret, req)
		if err != nil {
			t.Fatal(err)
		}
		var seen string
		got, err := SignConnectWith(req, func(content string) (string, error) {
			seen = content
			return HMACHex(m, secret, content)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%v: SignConnectWith = %+v, want %+v", m, got, want)
		}
		if seen != ConnectSignContent(req) {
			t.Errorf("%v: mac saw %q, want the sign content", m, seen)
		}
	}
}

func TestSignConnectWithRejects(t *testing.T) {
	req := ConnectRequest{ProductKey: "a1FakePK01", DeviceName: "dev-001", ClientID: "dev-001",
		Method: MethodHMACSHA256, Transport: TransportTLS}
	tests := []struct {
		name string
		mac  string
		err  error
	}{
		{"upper case", strings.Repeat("A", 64), nil},
		{"too short", strings.Repeat("a", 40), nil},
		{"not hex", strings.Repeat("g", 64), nil},
		{"mac error", "", errors.New("vault down")},
	}
	for _, tt := range tests {
		_, err := SignConnectWith(req, func(string) (string, error) { return tt.mac, tt.err })
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
		if tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("%s: error %v does not wrap the mac's", tt.name, err)
		}
	}
	bad := req
	bad.DeviceName = "x|y"
	called := false
	if _, err := SignConnectWith(bad, func(string) (string, error) { called = true; return "", nil }); err == nil || called {
		t.Errorf("invalid request: err=%v, mac called=%v; want an error before the mac", err, called)
	}
}
