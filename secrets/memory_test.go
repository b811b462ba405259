package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestMemoryLookup(t *testing.T) {
	m := NewMemory()
	known := DeviceID{ProductKey: "a1FakePK01", DeviceName: "dev-001"}
	m.Put(known, []byte("0123456789abcdef"))

	tests := []struct {
		name    string
		ctx     context.Context
		id      DeviceID
		want    string
		wantErr error
	}{
		{name: "known", ctx: context.Background(), id: known, want: "0123456789abcdef"},
		{name: "unknown device", ctx: context.Background(), id: DeviceID{ProductKey: "a1FakePK01", DeviceName: "dev-002"}, wantErr: ErrNotFound},
		{name: "unknown product", ctx: context.Background(), id: DeviceID{ProductKey: "a1Other", DeviceName: "dev-001"}, wantErr: ErrNotFound},
		{name: "cancelled", ctx: cancelled(), id: known, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Lookup(tt.ctx, tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Lookup(%v) error = %v, want %v", tt.id, err, tt.wantErr)
			}
			if string(got.Bytes()) != tt.want {
				t.Errorf("Lookup(%v) = %q, want %q", tt.id, got.Bytes(), tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.id.DeviceName) {
				t.Errorf("error %q does not name the device", err)
			}
		})
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestSecretIsRedacted(t *testing.T) {
	const value = "5f687febff25a2729d50f3d06052c629"
	s := NewSecret([]byte(value))
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "struct", struct{ S Secret }{s})
	outputs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x %q", s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ S Secret }{s}), logs.String(),
	}
	for _, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("secret leaked into %q", out)
		}
	}
	if string(s.Bytes()) != value {
		t.Errorf("Bytes() = %q, want the value", s.Bytes())
	}
}

func TestNewSecretCopies(t *testing.T) {
	b := []byte("abcd")
	s := NewSecret(b)
	b[0] = 'x'
	if string(s.Bytes()) != "abcd" {
		t.Errorf("NewSecret kept a reference to the caller's slice: %q", s.Bytes())
	}
}
