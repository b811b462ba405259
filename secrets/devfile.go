package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// DemoDevice is the one device of a development store made without a
// file (NewDemo).
var DemoDevice = DeviceID{ProductKey: "a1DemoProduct", DeviceName: "demo-device-01"}

// NewDemo returns an in-memory store holding DemoDevice with a random
// secret: a developer can try every call at once, and nobody can sign for
// it elsewhere.
func NewDemo() (*Memory, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("demo device secret: %w", err)
	}
	m := NewMemory()
	m.Put(DemoDevice, []byte(hex.EncodeToString(b)))
	return m, nil
}

// DevEntry is one device of a development secrets file (-dev-secrets).
type DevEntry struct {
	ProductKey   string `json:"productKey"`
	DeviceName   string `json:"deviceName"`
	DeviceSecret string `json:"deviceSecret"`
}

// ParseDevFile reads a development secrets file, a JSON array of
// {productKey, deviceName, deviceSecret}, into an in-memory store, and
// returns the file's first device too (a developer's first try). Names are
// checked by the shared device rules (DeviceID.Validate). Every bad entry is
// reported, by index and device; no error holds a secret.
func ParseDevFile(data []byte) (*Memory, DeviceID, error) {
	var first DeviceID
	var list []DevEntry
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, first, fmt.Errorf("want a JSON array of {productKey, deviceName, deviceSecret}: %w", err)
	}
	if len(list) == 0 {
		return nil, first, errors.New("no devices (want a JSON array of {productKey, deviceName, deviceSecret})")
	}
	m := NewMemory()
	var errs []error
	for i, d := range list {
		id := DeviceID{ProductKey: d.ProductKey, DeviceName: d.DeviceName}
		if err := id.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		if d.DeviceSecret == "" {
			errs = append(errs, fmt.Errorf("entry %d (%s): deviceSecret is empty", i, id))
			continue
		}
		if m.Len() == 0 {
			first = id
		}
		m.Put(id, []byte(d.DeviceSecret))
	}
	if len(errs) > 0 {
		return nil, first, fmt.Errorf("%d of %d entries bad:\n%w", len(errs), len(list), errors.Join(errs...))
	}
	return m, first, nil
}
