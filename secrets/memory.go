package secrets

import (
	"context"
	"fmt"
	"sync"
)

// Memory is an in-memory Store for -dev mode and tests. It is not available
// outside -dev: its contents are not protected at rest.
type Memory struct {
	mu      sync.RWMutex
	secrets map[DeviceID]Secret
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{secrets: make(map[DeviceID]Secret)} }

// Put sets a device's secret, replacing any earlier one.
func (m *Memory) Put(id DeviceID, secret []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets[id] = NewSecret(secret)
}

// Len returns the number of devices held.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.secrets)
}

// Lookup implements Store.
func (m *Memory) Lookup(ctx context.Context, id DeviceID) (Secret, error) {
	if err := ctx.Err(); err != nil {
		return Secret{}, fmt.Errorf("lookup %s: %w: %w", id, ErrUnavailable, err)
	}
	m.mu.RLock()
	s, ok := m.secrets[id]
	m.mu.RUnlock()
	if !ok || s.IsZero() {
		return Secret{}, fmt.Errorf("lookup %s: %w", id, ErrNotFound)
	}
	return s, nil
}
