package secrets

import (
	"context"
	"strings"
	"testing"
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
