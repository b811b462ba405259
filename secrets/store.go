package secrets

import (
	"context"
	"errors"
	"fmt"

	"github.com/signerd/signerd/device"
)

// DeviceID names one device. It is the platform-neutral [device.ID], kept
// under this name so that a store's callers need not import two packages.
type DeviceID = device.ID

// Store looks up device secrets.
//
// Lookup returns an error wrapping ErrNotFound when the device has no secret,
// ErrUnusable when a secret exists but cannot be used, and ErrUnavailable
// when the backend cannot answer. Implementations must be safe for
// concurrent use and must never put a secret value into an error.
type Store interface {
	Lookup(ctx context.Context, id DeviceID) (Secret, error)
}

// Secret is a device secret. Its String and GoString methods redact the
// value so that it cannot reach a log line by accident.
type Secret struct {
	value []byte
}

// NewSecret wraps a secret value. The slice is copied.
func NewSecret(v []byte) Secret { return Secret{value: append([]byte(nil), v...)} }

// Bytes returns the secret value. Callers must not modify or retain it.
func (s Secret) Bytes() []byte { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.value) == 0 }

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "secrets.Secret{[redacted]}" }

// Format redacts the secret for every fmt verb, including %x and %v.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// MarshalText keeps encoders (slog, JSON) from seeing the value.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

var (
	// ErrNotFound: the store has no secret for the device.
	ErrNotFound = errors.New("device secret not found")
	// ErrUnusable: a secret entry exists but is malformed (missing field,
	// empty, wrong type).
	ErrUnusable = errors.New("device secret unusable")
	// ErrUnavailable: the backend could not be reached or timed out.
	ErrUnavailable = errors.New("secret store unavailable")
	// ErrPermission: the backend refused signerd's own credentials: a
	// misconfiguration, not the caller's fault.
	ErrPermission = errors.New("secret store denied access")
)
