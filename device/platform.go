package device

import (
	"fmt"
	"slices"
	"sync"
)

// Platform is how one IoT platform names its devices, as far as every
// layer must know it: the name signerd gives the platform in IDs, policy
// grants and Vault locations, the URI scheme of its devices' certificate
// identities, the shape of its IDs and the rules of its names. A platform's
// own package declares it and calls [Register] from an init function, so
// that nothing outside that package names the platform's rules.
type Platform struct {
	// Name is the platform's name in an ID, such as "azure": lower-case
	// letters, digits and "-".
	Name string
	// Scheme is the URI scheme of its devices' certificate identities,
	// such as "azure-iot": {scheme}://{productKey}/{deviceName} (with
	// "/{module}" for a module, and {scheme}://{deviceName} on a platform
	// without products). Empty for a namespace of keys that are not any
	// device's (Azure DPS enrollment group keys), which no certificate can
	// name.
	Scheme string
	// Products says whether its devices belong to a product (a hub, an ID
	// scope); false where a device id stands alone.
	Products bool
	// Modules says whether a device may have modules with their own keys.
	Modules bool
	// Validate checks an ID of this platform part by part, returning the
	// *FieldError of each invalid part (named as the platform's API names
	// it, such as "hub" or "deviceId"), joined. It must refuse every byte
	// >= 0x80 and every "/", so that an ID prints one way only.
	Validate func(ID) error
}

var registry struct {
	sync.RWMutex
	byName, byScheme map[string]Platform
}

// Register adds a platform. It panics if the name or scheme is empty,
// taken, or Alibaba's, or Validate is nil: registrations happen in init
// functions, where a clash is a programming error.
func Register(p Platform) {
	registry.Lock()
	defer registry.Unlock()
	if registry.byName == nil {
		registry.byName = make(map[string]Platform)
		registry.byScheme = make(map[string]Platform)
	}
	switch {
	case !validPlatformName(p.Name) || (p.Scheme != "" && !validPlatformName(p.Scheme)):
		panic(fmt.Sprintf("device.Register: platform %q, scheme %q: want lower-case letters, digits and '-'", p.Name, p.Scheme))
	case p.Validate == nil:
		panic(fmt.Sprintf("device.Register: platform %q: Validate is nil", p.Name))
	case p.Name == AlibabaScheme || p.Scheme == AlibabaScheme:
		panic(fmt.Sprintf("device.Register: platform %q: %q is Alibaba's", p.Name, AlibabaScheme))
	}
	if _, dup := registry.byName[p.Name]; dup {
		panic(fmt.Sprintf("device.Register: platform %q registered twice", p.Name))
	}
	if _, dup := registry.byScheme[p.Scheme]; dup && p.Scheme != "" {
		panic(fmt.Sprintf("device.Register: scheme %q registered twice", p.Scheme))
	}
	registry.byName[p.Name] = p
	if p.Scheme != "" {
		registry.byScheme[p.Scheme] = p
	}
}

// AlibabaScheme is the default URI scheme of Alibaba devices' certificate
// identities; no other platform may take it.
const AlibabaScheme = "aliyun-iot"

// Lookup returns the registered platform called name.
func Lookup(name string) (Platform, bool) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.byName[name]
	return p, ok
}

// ByScheme returns the registered platform whose certificate identities
// have scheme.
func ByScheme(scheme string) (Platform, bool) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.byScheme[scheme]
	return p, ok
}

// Platforms returns every registered platform, by name.
func Platforms() []Platform {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]Platform, 0, len(registry.byName))
	for _, p := range registry.byName {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Platform) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func validPlatformName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateChars checks that s is minLen–maxLen bytes, each in allowed (a
// set of ASCII bytes), and returns a *FieldError for field with reason
// otherwise: the building block of a platform's Validate.
func ValidateChars(field, reason, s string, minLen, maxLen int, allowed *[256]bool) error {
	if len(s) < minLen || len(s) > maxLen {
		return &FieldError{Field: field, Reason: reason}
	}
	for i := 0; i < len(s); i++ {
		if !allowed[s[i]] {
			return &FieldError{Field: field, Reason: reason}
		}
	}
	return nil
}

// Chars returns the set of the ASCII letters and digits plus extra, for
// [ValidateChars]. Bytes >= 0x80 and "/" are never in it.
func Chars(alnum bool, extra string) *[256]bool {
	var t [256]bool
	if alnum {
		for c := '0'; c <= '9'; c++ {
			t[c] = true
		}
		for c := 'a'; c <= 'z'; c++ {
			t[c] = true
			t[c-'a'+'A'] = true
		}
	}
	for i := 0; i < len(extra); i++ {
		if c := extra[i]; c < 0x80 && c != '/' {
			t[c] = true
		}
	}
	return &t
}
