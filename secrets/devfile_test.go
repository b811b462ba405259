package secrets

import (
	"context"
	"strings"
	"testing"

	"github.com/signerd/signerd/device"
)

func TestParseDevFile(t *testing.T) {
	const secret = "d0n0tl0gth1ss3cr3t0123456789abcd"
	tests := []struct {
		name      string
		data      string
		wantFirst DeviceID
		wantLen   int
		wantErr   []string // substrings; none when nil
	}{
		{name: "two devices", data: `[{"productKey":"a1PK","deviceName":"dev-001","deviceSecret":"s1"},{"productKey":"a1PK","deviceName":"dev-002","deviceSecret":"s2"}]`,
			wantFirst: DeviceID{ProductKey: "a1PK", DeviceName: "dev-001"}, wantLen: 2},
		{name: "unknown fields are ignored", data: `[{"productKey":"a1PK","deviceName":"dev-001","deviceSecret":"s1","note":"x"}]`,
			wantFirst: DeviceID{ProductKey: "a1PK", DeviceName: "dev-001"}, wantLen: 1},
		{name: "not an array", data: `{"productKey":"a1PK","deviceName":"dev-001","deviceSecret":"` + secret + `"}`,
			wantErr: []string{"want a JSON array of {productKey, deviceName, deviceSecret}"}},
		{name: "not JSON", data: `devices:`, wantErr: []string{"want a JSON array"}},
		{name: "empty array", data: `[]`, wantErr: []string{"no devices"}},
		{name: "every bad entry", data: `[{"productKey":"a1PK","deviceName":"a|b","deviceSecret":"` + secret + `"},` +
			`{"productKey":"a1PK","deviceName":"dev-002","deviceSecret":""},` +
			`{"productKey":"a1PK","deviceName":"dev-003","deviceSecret":"` + secret + `"}]`,
			wantErr: []string{"2 of 3 entries bad", "entry 0: deviceName: must be 4–32 characters of [A-Za-z0-9_.@:-]", "entry 1 (a1PK/dev-002): deviceSecret is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, first, err := ParseDevFile([]byte(tc.data), nil)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("accepted")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error holds the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if first != tc.wantFirst || m.Len() != tc.wantLen {
				t.Errorf("first %v, %d devices; want %v, %d", first, m.Len(), tc.wantFirst, tc.wantLen)
			}
			if s, err := m.Lookup(context.Background(), first); err != nil || string(s.Bytes()) != "s1" {
				t.Errorf("first device's secret: %v", err)
			}
		})
	}
}

func TestNewDemo(t *testing.T) {
	a, err := NewDemo()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDemo()
	if err != nil {
		t.Fatal(err)
	}
	sa, errA := a.Lookup(context.Background(), DemoDevice)
	sb, errB := b.Lookup(context.Background(), DemoDevice)
	if errA != nil || errB != nil || a.Len() != 1 || len(sa.Bytes()) != 32 {
		t.Fatalf("demo store: %v %v, %d devices", errA, errB, a.Len())
	}
	if string(sa.Bytes()) == string(sb.Bytes()) {
		t.Error("two demo stores share a secret: it must be random")
	}
}

// TestParseDevFilePlatforms: entries of other platforms carry their key as
// Vault holds it, decoded by the platform's encoding; every mistake is
// reported by entry, never quoting a key.
func TestParseDevFilePlatforms(t *testing.T) {
	device.Register(device.Platform{Name: "devfileplat", Scheme: "devfileplat-iot", Products: true,
		Validate: func(id device.ID) error {
			if id.ProductKey == "" || id.DeviceName == "" || strings.ContainsAny(id.ProductKey+id.DeviceName, "/ ") {
				return &device.FieldError{Field: "deviceId", Reason: "bad"}
			}
			return nil
		}})
	enc := map[string]Encoding{"devfileplat": EncodingBase64}
	m, first, err := ParseDevFile([]byte(`[
		{"platform": "devfileplat", "productKey": "hub1", "deviceName": "dev1", "key": "a2V5LWJ5dGVz"},
		{"productKey": "a1PK", "deviceName": "dev-0001", "deviceSecret": "s1"}]`), enc)
	if err != nil {
		t.Fatal(err)
	}
	want := DeviceID{Platform: "devfileplat", ProductKey: "hub1", DeviceName: "dev1"}
	if first != want {
		t.Errorf("first = %v, want %v", first, want)
	}
	s, err := m.Lookup(context.Background(), want)
	if err != nil || string(s.Bytes()) != "key-bytes" {
		t.Errorf("Lookup = %v, want the decoded key", err)
	}
	_, _, err = ParseDevFile([]byte(`[
		{"platform": "devfileplat", "productKey": "hub1", "deviceName": "dev1", "key": "not base64 SECRETX"},
		{"platform": "devfileplat", "productKey": "hub1", "deviceName": "dev2", "deviceSecret": "SECRETY"},
		{"platform": "nosuch", "productKey": "hub1", "deviceName": "dev3", "key": "a2V5"},
		{"productKey": "a1PK", "deviceName": "dev-0001", "key": "SECRETZ"},
		{"platform": "devfileplat", "productKey": "hub1", "deviceName": "dev4", "key": "a2V5"},
		{"platform": "devfileplat", "productKey": "hub1", "deviceName": "dev4", "key": "a2V5"}]`), enc)
	if err == nil {
		t.Fatal("bad entries accepted")
	}
	for _, want := range []string{"5 of 6 entries bad", "entry 0 (devfileplat:hub1/dev1): key: not valid standard base64",
		"entry 1 (devfileplat:hub1/dev2): deviceSecret is Alibaba's", "entry 2: platform", "entry 3 (a1PK/dev-0001): key is for other platforms",
		"entry 5 (devfileplat:hub1/dev4): listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error quotes a key: %q", err)
	}
}
