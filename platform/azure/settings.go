package azure

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	sigsjson "sigs.k8s.io/json"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/secrets"
	azuresign "github.com/signerd/signerd/signing/azure"
)

// settings is the azure section of the platforms file.
type settings struct {
	Vault    vaultSettings           `json:"vault"`
	DPSVault dpsVaultSettings        `json:"dpsVault"`
	Hubs     map[string]*hubSettings `json:"hubs"`
	DPS      map[string]*dpsSettings `json:"dps"`
}

// vaultSettings: where the keys of hub devices and modules are.
type vaultSettings struct {
	Mount      string `json:"mount"`
	DevicePath string `json:"devicePath"`
	ModulePath string `json:"modulePath"`
	Field      string `json:"field"`
}

// dpsVaultSettings: where the keys of DPS enrollment groups are.
type dpsVaultSettings struct {
	Mount string `json:"mount"`
	Path  string `json:"path"`
	Field string `json:"field"`
}

// hubSettings are one hub's settings; a hub without any signs with the
// defaults.
type hubSettings struct {
	// Host replaces {hub}.azure-devices.net.
	Host string `json:"host"`
	// DPSGroup, when set, is the enrollment group whose key the hub's
	// devices' keys derive from (they were provisioned through it), so
	// that they need no key of their own in Vault.
	DPSGroup *groupRef `json:"dpsGroup"`
}

type groupRef struct {
	IDScope string `json:"idScope"`
	Group   string `json:"group"`
}

// dpsSettings are one DPS instance's (ID scope's) settings.
type dpsSettings struct {
	Groups []groupSettings `json:"groups"`
}

// groupSettings: an enrollment group and the registration ids that belong
// to it.
type groupSettings struct {
	Name          string   `json:"name"`
	Registrations []string `json:"registrations"`
}

// Defaults of the Vault settings, as issue 14 fixes them.
const (
	defaultMount      = "iot"
	defaultDevicePath = "azure/{productKey}/devices/{deviceName}"
	defaultModulePath = "azure/{productKey}/devices/{deviceName}/modules/{module}"
	defaultGroupPath  = "azure-dps/{productKey}/groups/{deviceName}"
	defaultField      = "primaryKey"
)

// parseSettings reads the section strictly (unknown, duplicate and
// mis-cased keys are errors) and checks every setting, reporting every
// problem at once. A nil section is all defaults.
func parseSettings(section []byte) (*settings, error) {
	var s settings
	if section != nil {
		strict, err := sigsjson.UnmarshalStrict(section, &s)
		if err != nil {
			// A syntax or type error leaves s half-read: checking it would
			// report mistakes that are not in the file.
			return nil, errors.Join(append(strict, err)...)
		}
		if err := errors.Join(append(strict, s.check()...)...); err != nil {
			return nil, err
		}
		return &s, nil
	}
	if err := errors.Join(s.check()...); err != nil {
		return nil, err // cannot happen: the defaults are valid
	}
	return &s, nil
}

// check fills in defaults and returns every problem of s.
func (s *settings) check() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	v := &s.Vault
	v.Mount = or(v.Mount, defaultMount)
	v.DevicePath = or(v.DevicePath, defaultDevicePath)
	v.ModulePath = or(v.ModulePath, defaultModulePath)
	v.Field = or(v.Field, defaultField)
	errs = append(errs, each("vault", s.hubLocation().Check())...)
	for _, p := range []struct{ key, t string }{{"devicePath", v.DevicePath}, {"modulePath", v.ModulePath}} {
		if err := checkPlaceholders(p.t, p.key == "modulePath"); err != nil {
			add("vault.%s: %w", p.key, err)
		}
	}
	d := &s.DPSVault
	d.Mount = or(d.Mount, defaultMount)
	d.Path = or(d.Path, defaultGroupPath)
	d.Field = or(d.Field, defaultField)
	errs = append(errs, each("dpsVault", s.groupLocation().Check())...)
	if err := checkPlaceholders(d.Path, false); err != nil {
		add("dpsVault.path: %w", err)
	}
	// A group key and a device key at one path would make the group key a
	// device's key, and the other way round.
	if d.Mount == v.Mount && (skeleton(d.Path) == skeleton(v.DevicePath) || skeleton(d.Path) == skeleton(v.ModulePath)) {
		add("dpsVault.path %q: the same path as a device's or module's key in vault", d.Path)
	}

	for _, name := range sortedKeys(s.Hubs) {
		h := s.Hubs[name]
		if h == nil { // "myhub:" with nothing under it: the defaults
			h = &hubSettings{}
			s.Hubs[name] = h
		}
		if err := azuresign.ValidateHub(name); err != nil {
			add("hubs.%s: a hub name %s", name, reason(err))
		}
		if h.Host != "" {
			if err := azuresign.ValidateHost(h.Host); err != nil {
				add("hubs.%s.%w", name, err)
			}
		}
		if g := h.DPSGroup; g != nil {
			if err := azuresign.ValidateIDScope(g.IDScope); err != nil {
				add("hubs.%s.dpsGroup.%w", name, err)
			}
			if err := azuresign.ValidateGroupID(g.Group); err != nil {
				add("hubs.%s.dpsGroup.%w", name, err)
			}
			if scope, ok := s.DPS[g.IDScope]; ok && scope != nil && scope.group(g.Group) < 0 {
				add("hubs.%s.dpsGroup: group %q is not among dps.%s.groups", name, g.Group, g.IDScope)
			}
		}
	}

	for _, id := range sortedKeys(s.DPS) {
		sc := s.DPS[id]
		if err := azuresign.ValidateIDScope(id); err != nil {
			add("dps.%s: an ID scope %s", id, reason(err))
		}
		if sc == nil || len(sc.Groups) == 0 {
			add("dps.%s.groups: at least one enrollment group is required", id)
			continue
		}
		for i, g := range sc.Groups {
			where := fmt.Sprintf("dps.%s.groups[%d]", id, i)
			if err := azuresign.ValidateGroupID(g.Name); err != nil {
				add("%s.name: %s", where, reason(err))
			} else if j := sc.group(g.Name); j < i {
				// Group ids are case-insensitive: two spellings are one group.
				add("%s.name: group %q is already groups[%d]", where, g.Name, j)
			}
			if len(g.Registrations) == 0 {
				add("%s.registrations: at least one registration id or prefix* is required", where)
			}
			for k, p := range g.Registrations {
				if err := checkPattern(p); err != nil {
					add("%s.registrations[%d] %q: %w", where, k, p, err)
				}
			}
		}
	}
	return errs
}

// group returns the index of the group called name, or -1. DPS enrollment
// group ids are case-insensitive (azuresign.ValidateGroupID).
func (d *dpsSettings) group(name string) int {
	return slices.IndexFunc(d.Groups, func(g groupSettings) bool { return strings.EqualFold(g.Name, name) })
}

func (s *settings) hubLocation() secrets.Location {
	return secrets.Location{
		Mount:              s.Vault.Mount,
		PathTemplate:       s.Vault.DevicePath,
		ModulePathTemplate: s.Vault.ModulePath,
		Field:              s.Vault.Field,
		Encoding:           secrets.EncodingBase64, // the portal's primaryKey
	}
}

func (s *settings) groupLocation() secrets.Location {
	return secrets.Location{
		Mount:        s.DPSVault.Mount,
		PathTemplate: s.DPSVault.Path,
		Field:        s.DPSVault.Field,
		Encoding:     secrets.EncodingBase64,
	}
}

var placeholders = []string{"{productKey}", "{deviceName}", "{module}"}

// checkPlaceholders refuses a path template with a placeholder that is not
// one (such as "{hub}", which would stay in every path as it is, so that
// every hub's device of one name shared one key), without {productKey}
// (devices of two hubs, or groups of two ID scopes, may have one name), or
// with {module} where no module is.
func checkPlaceholders(t string, module bool) error {
	rest := t
	for _, p := range placeholders {
		rest = strings.ReplaceAll(rest, p, "")
	}
	switch {
	case strings.ContainsAny(rest, "{}"):
		return fmt.Errorf("template %q: only {productKey}, {deviceName} and {module} are placeholders", t)
	case !strings.Contains(t, "{productKey}"):
		return fmt.Errorf("template %q: must contain {productKey} (the hub or ID scope), so that two of them never share a key", t)
	case !module && strings.Contains(t, "{module}"):
		return fmt.Errorf("template %q: {module} is only for module paths", t)
	}
	return nil
}

// skeleton is a path template with every placeholder alike, so that two
// templates that can name the same path compare equal.
func skeleton(t string) string {
	for _, p := range placeholders {
		t = strings.ReplaceAll(t, p, "\x00")
	}
	return t
}

// checkPattern checks a registration pattern: a registration id, or a
// prefix of one followed by "*" ("*" alone matches every id).
func checkPattern(p string) error {
	prefix, wild := strings.CutSuffix(p, "*")
	if !wild {
		if azuresign.ValidateRegistrationID(p) != nil {
			return errors.New("not a registration id (1–128 characters of ASCII letters, digits and -._:, ending with a letter, digit or '-') nor a prefix of one followed by '*'")
		}
		return nil
	}
	// Any character of a registration id may end a prefix; "0" stands for
	// the rest of the id.
	if prefix != "" && (len(prefix) >= 128 || azuresign.ValidateRegistrationID(prefix+"0") != nil) {
		return errors.New("the prefix before '*' must be at most 127 characters of ASCII letters, digits and -._:, with no other '*'")
	}
	return nil
}

// matches reports whether registration id belongs to pattern p (checked by
// checkPattern). Registration ids are case-insensitive in DPS
// (azuresign.ValidateRegistrationID), so the match is too.
func matches(p, id string) bool {
	if prefix, wild := strings.CutSuffix(p, "*"); wild {
		return len(id) >= len(prefix) && strings.EqualFold(id[:len(prefix)], prefix)
	}
	return strings.EqualFold(p, id)
}

// each prefixes every error err joins with where.
func each(where string, err error) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("%s: %w", where, e)
	}
	return out
}

// reason is the rule a *device.FieldError states, for a setting named
// otherwise than the request field.
func reason(err error) string {
	var fe *device.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
