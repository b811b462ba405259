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
	// Platform is a registered platform's name; empty for Alibaba.
	Platform   string `json:"platform,omitempty"`
	ProductKey string `json:"productKey,omitempty"`
	DeviceName string `json:"deviceName"`
	Module     string `json:"module,omitempty"`
	// DeviceSecret is an Alibaba device's DeviceSecret.
	DeviceSecret string `json:"deviceSecret,omitempty"`
	// Key is another platform's device key, written as in Vault (base64
	// where the platform's location says so).
	Key string `json:"key,omitempty"`
}

const devFileShape = "a JSON array of {productKey, deviceName, deviceSecret} (Alibaba) or {platform, productKey, deviceName, module, key}"

// ParseDevFile reads a development secrets file into an in-memory store,
// and returns the file's first device too (a developer's first try). Keys
// of other platforms are decoded as encodings (by platform name) says, as
// Vault's are. Names are checked by each platform's rules
// (DeviceID.Validate). Every bad entry is reported, by index and device;
// no error holds a secret.
func ParseDevFile(data []byte, encodings map[string]Encoding) (*Memory, DeviceID, error) {
	var first DeviceID
	var list []DevEntry
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, first, fmt.Errorf("want %s: %w", devFileShape, err)
	}
	if len(list) == 0 {
		return nil, first, fmt.Errorf("no devices (want %s)", devFileShape)
	}
	m := NewMemory()
	var errs []error
	for i, d := range list {
		id := DeviceID{Platform: d.Platform, ProductKey: d.ProductKey, DeviceName: d.DeviceName, Module: d.Module}
		if err := id.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		key, err := devKey(d, encodings)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d (%s): %w", i, id, err))
			continue
		}
		if _, dup := m.secrets[id]; dup {
			errs = append(errs, fmt.Errorf("entry %d (%s): listed twice", i, id))
			continue
		}
		if m.Len() == 0 {
			first = id
		}
		m.Put(id, key)
	}
	if len(errs) > 0 {
		return nil, first, fmt.Errorf("%d of %d entries bad:\n%w", len(errs), len(list), errors.Join(errs...))
	}
	return m, first, nil
}

// devKey is the entry's key, decoded.
func devKey(d DevEntry, encodings map[string]Encoding) ([]byte, error) {
	if d.Platform == "" {
		if d.Key != "" {
			return nil, errors.New("key is for other platforms: an Alibaba device has a deviceSecret")
		}
		if d.DeviceSecret == "" {
			return nil, errors.New("deviceSecret is empty")
		}
		return []byte(d.DeviceSecret), nil
	}
	if d.DeviceSecret != "" {
		return nil, errors.New("deviceSecret is Alibaba's: give the key as key")
	}
	if d.Key == "" {
		return nil, errors.New("key is empty")
	}
	enc, ok := encodings[d.Platform]
	if !ok {
		return nil, fmt.Errorf("platform %q has no key encoding configured", d.Platform)
	}
	b, err := enc.decode(d.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	return b, nil
}
