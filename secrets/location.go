package secrets

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Location says where in Vault KV v2 the keys of one platform's devices
// are: the mount, the path of one device's secret, the field holding the
// key and how the key is written there.
type Location struct {
	// Mount is the KV v2 mount, such as "iot".
	Mount string
	// PathTemplate is the path of a device's secret in the mount. It may
	// use {productKey}, {deviceName} and {module} (the parts of the
	// device.ID; a platform names them its own way in its docs), and must
	// use {deviceName}.
	PathTemplate string
	// ModulePathTemplate is the path of a module's secret, for platforms
	// whose devices have modules (it must use {module}); empty otherwise.
	ModulePathTemplate string
	// Field is the secret's key holding the device's key.
	Field string
	// Encoding is how the key is written in Field.
	Encoding Encoding
}

// Encoding is how a key is written in its Vault field.
type Encoding int

const (
	// EncodingRaw: the field's UTF-8 bytes are the key (Alibaba's
	// DeviceSecret, Huawei's secret).
	EncodingRaw Encoding = iota
	// EncodingBase64: the field is the key in standard base64, as the
	// platform's console shows it (Azure, Tencent, OneNET).
	EncodingBase64
)

func (e Encoding) String() string {
	switch e {
	case EncodingRaw:
		return "raw"
	case EncodingBase64:
		return "base64"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// errNotBase64 never quotes the value: it is a key.
var errNotBase64 = errors.New("not valid standard base64 (the value is not shown)")

func (e Encoding) decode(s string) ([]byte, error) {
	switch e {
	case EncodingRaw:
		return []byte(s), nil
	case EncodingBase64:
		// Consoles show padded standard base64; refusing other spellings
		// keeps one stored form per key.
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, errNotBase64
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown encoding %v", e)
}

// Check reports a location that cannot find a device's key unambiguously.
func (l Location) Check() error {
	var errs []error
	if l.Mount == "" || strings.Contains(l.Mount, "..") {
		errs = append(errs, fmt.Errorf("mount %q: required, without '..'", l.Mount))
	}
	if err := checkLocationTemplate(l.PathTemplate, "{deviceName}"); err != nil {
		errs = append(errs, err)
	}
	if l.ModulePathTemplate != "" {
		if err := checkLocationTemplate(l.ModulePathTemplate, "{deviceName}", "{module}"); err != nil {
			errs = append(errs, err)
		}
		if l.ModulePathTemplate == l.PathTemplate {
			errs = append(errs, errors.New("the module path template must differ from the device's"))
		}
	}
	if l.Field == "" {
		errs = append(errs, errors.New("field: required"))
	}
	if l.Encoding != EncodingRaw && l.Encoding != EncodingBase64 {
		errs = append(errs, fmt.Errorf("encoding %v: want raw or base64", l.Encoding))
	}
	return errors.Join(errs...)
}

func checkLocationTemplate(t string, must ...string) error {
	for _, m := range must {
		if !strings.Contains(t, m) {
			return fmt.Errorf("vault path template %q: must contain %s", t, m)
		}
	}
	if t == "" || strings.HasPrefix(t, "/") || strings.Contains(t, "..") {
		return fmt.Errorf("vault path template %q: must be relative to the mount, without '..'", t)
	}
	return nil
}

// path is the device's (or module's) secret path in the mount.
func (l Location) path(id DeviceID) string {
	t := l.PathTemplate
	if id.Module != "" {
		t = l.ModulePathTemplate
	}
	return strings.NewReplacer("{productKey}", id.ProductKey, "{deviceName}", id.DeviceName, "{module}", id.Module).Replace(t)
}

// checkPathParts refuses an ID whose parts could walk out of its path: a
// "/" or a "." or ".." part (which path cleaning in the Vault client would
// resolve), or an empty device name. The service validates names by each
// platform's rules first; this guards direct users of the package.
func checkPathParts(id DeviceID) error {
	if id.DeviceName == "" || (id.Platform == "" && id.ProductKey == "") {
		return errors.New("invalid name: empty")
	}
	for _, p := range []string{id.ProductKey, id.DeviceName, id.Module} {
		if strings.Contains(p, "/") || p == "." || p == ".." {
			return errors.New("invalid name: a path separator or dot segment")
		}
	}
	// Alibaba names never hold these; its guard stays as strict as before.
	if id.Platform == "" && strings.ContainsAny(id.ProductKey+id.DeviceName, "?#%") {
		return errors.New("invalid name")
	}
	return nil
}
