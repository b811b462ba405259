package aliyun_test

import (
	"encoding/json"
	"os"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// vector is one case of testdata/mqtt_sign.json.
type vector struct {
	Input struct {
		ProductKey   string `json:"productKey"`
		DeviceName   string `json:"deviceName"`
		DeviceSecret string `json:"deviceSecret"`
		ClientID     string `json:"clientId"`
		Timestamp    string `json:"timestamp"` // absent = no timestamp
		SignMethod   string `json:"signMethod"`
		SecureMode   int    `json:"secureMode"`
	} `json:"input"`
	Expect struct {
		ClientID    string `json:"clientId"`
		Username    string `json:"username"`
		Password    string `json:"password"`
		SignContent string `json:"signContent"`
	} `json:"expect"`
}

const wantVectors = 60

// loadVectors reads and decodes testdata/mqtt_sign.json, rejecting
// unknown fields so that a change in the file's shape is noticed.
func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	f, err := os.Open("testdata/mqtt_sign.json")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var vs []vector
	if err := dec.Decode(&vs); err != nil {
		tb.Fatalf("decoding testdata/mqtt_sign.json: %v", err)
	}
	if len(vs) != wantVectors {
		tb.Fatalf("testdata/mqtt_sign.json has %d cases, want %d", len(vs), wantVectors)
	}
	return vs
}

// transportFor maps a vector's secureMode to a transport.
func transportFor(tb testing.TB, secureMode int) signing.Transport {
	tb.Helper()
	switch secureMode {
	case 2:
		return signing.TransportTLS
	case 3:
		return signing.TransportTCP
	}
	tb.Fatalf("unexpected secureMode %d", secureMode)
	return signing.TransportUnspecified
}

// request converts a vector's input to a ConnectRequest.
func (v vector) request(tb testing.TB) signing.ConnectRequest {
	tb.Helper()
	m, err := signing.ParseMethod(v.Input.SignMethod)
	if err != nil {
		tb.Fatalf("ParseMethod(%q): %v", v.Input.SignMethod, err)
	}
	return signing.ConnectRequest{
		ProductKey: v.Input.ProductKey,
		DeviceName: v.Input.DeviceName,
		ClientID:   v.Input.ClientID,
		Timestamp:  v.Input.Timestamp,
		Method:     m,
		Transport:  transportFor(tb, v.Input.SecureMode),
	}
}

func TestSignConnectVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		t.Run(v.Input.SignMethod+"/"+v.Input.DeviceName, func(t *testing.T) {
			t.Logf("case %d", i)
			req := v.request(t)
			secret := []byte(v.Input.DeviceSecret)

			if got := signing.ConnectSignContent(req); got != v.Expect.SignContent {
				t.Errorf("ConnectSignContent(%+v) = %q, want %q", req, got, v.Expect.SignContent)
			}

			// The generic helper must agree, whatever the parameter order.
			params := []signing.Param{
				{Key: "productKey", Value: req.ProductKey},
				{Key: "deviceName", Value: req.DeviceName},
				{Key: "clientId", Value: req.ClientID},
			}
			if req.Timestamp != "" {
				params = append([]signing.Param{{Key: "timestamp", Value: req.Timestamp}}, params...)
			}
			if got := signing.Content(params...); got != v.Expect.SignContent {
				t.Errorf("Content(%+v) = %q, want %q", params, got, v.Expect.SignContent)
			}

			gotPassword, err := signing.HMACHex(req.Method, secret, v.Expect.SignContent)
			if err != nil || gotPassword != v.Expect.Password {
				t.Errorf("HMACHex(%v, secret, %q) = %q, %v; want %q, nil", req.Method, v.Expect.SignContent, gotPassword, err, v.Expect.Password)
			}

			got, err := signing.SignConnect(req, signing.DeviceSecretMAC(secret))
			want := signing.ConnectParams{
				ClientID: v.Expect.ClientID,
				Username: v.Expect.Username,
				Password: v.Expect.Password,
			}
			if err != nil || got != want {
				t.Errorf("SignConnect(secret, %+v) =\n%+v, %v\nwant\n%+v, nil", req, got, err, want)
			}
			// A MAC computed elsewhere (the Transit path) gives the same
			// answer from the same sign content.
			var seen string
			got, err = signing.SignConnect(req, externalMAC(secret, &seen))
			if err != nil || got != want || seen != v.Expect.SignContent {
				t.Errorf("SignConnect(%+v, external MAC) =\n%+v, %v (MAC saw %q)\nwant\n%+v, nil", req, got, err, seen, want)
			}
		})
	}
}

// TestSignConnectHandChecked pins a case whose password was computed
// independently of the vector file.
func TestSignConnectHandChecked(t *testing.T) {
	req := signing.ConnectRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Timestamp:  "1700000000000",
		Method:     signing.MethodHMACSHA1,
		Transport:  signing.TransportTLS,
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	want := signing.ConnectParams{
		ClientID: "dev-001|securemode=2,signmethod=hmacsha1,timestamp=1700000000000|",
		Username: "dev-001&a1FakePK01",
		Password: "d4a300da6b324e3b82d6868e6435c22bbcbba73b",
	}
	got, err := signing.SignConnect(req, signing.DeviceSecretMAC(secret))
	if err != nil || got != want {
		t.Errorf("SignConnect(secret, %+v) =\n%+v, %v\nwant\n%+v, nil", req, got, err, want)
	}
	wantContent := "clientIddev-001deviceNamedev-001productKeya1FakePK01timestamp1700000000000"
	if got := signing.ConnectSignContent(req); got != wantContent {
		t.Errorf("ConnectSignContent(%+v) = %q, want %q", req, got, wantContent)
	}
}

// TestSignConnectTransports checks that the transport only sets the
// securemode: WebSocket over TLS signs exactly like TLS.
func TestSignConnectTransports(t *testing.T) {
	base := signing.ConnectRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Method:     signing.MethodHMACSHA256,
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		transport    signing.Transport
		wantClientID string
	}{
		{signing.TransportTLS, "dev-001|securemode=2,signmethod=hmacsha256|"},
		{signing.TransportWebSocketTLS, "dev-001|securemode=2,signmethod=hmacsha256|"},
		{signing.TransportTCP, "dev-001|securemode=3,signmethod=hmacsha256|"},
	}
	wantPassword, err := signing.HMACHex(signing.MethodHMACSHA256, secret, "clientIddev-001deviceNamedev-001productKeya1FakePK01")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		req := base
		req.Transport = tc.transport
		got, err := signing.SignConnect(req, signing.DeviceSecretMAC(secret))
		want := signing.ConnectParams{ClientID: tc.wantClientID, Username: "dev-001&a1FakePK01", Password: wantPassword}
		if err != nil || got != want {
			t.Errorf("SignConnect(secret, %+v) = %+v, %v; want %+v, nil", req, got, err, want)
		}
	}
}
