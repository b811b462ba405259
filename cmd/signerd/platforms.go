package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/platform/azure"
	"github.com/signerd/signerd/platform/huawei"
	"github.com/signerd/signerd/platform/onenet"
	"github.com/signerd/signerd/platform/tencent"
	"github.com/signerd/signerd/secrets"
)

// platformModules are the platforms this binary serves besides Alibaba
// (whose settings are -products): the one list outside the platforms' own
// packages that names them.
var platformModules = []platform.Module{azure.Module{}, tencent.Module{}, huawei.Module{}, onenet.Module{}}

// platformSet is what the configured platforms serve.
type platformSet struct {
	signers   []platform.Signer
	locations map[string]secrets.Location
	enabled   []string // names of the platforms with signers, for the start-up log
}

// encodings are the key encodings of the platforms' locations, for -dev-secrets.
func (p platformSet) encodings() map[string]secrets.Encoding {
	m := make(map[string]secrets.Encoding, len(p.locations))
	for name, loc := range p.locations {
		m[name] = loc.Encoding
	}
	return m
}

// loadPlatforms reads the platforms file (YAML or JSON; "" for none): one
// section per platform, each read strictly by its own package. Every
// problem of every section is reported at once.
func loadPlatforms(path string, modules []platform.Module) (platformSet, error) {
	sections := map[string]any{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err == nil {
			var js []byte
			if js, err = yaml.YAMLToJSONStrict(data); err == nil {
				var strict []error
				strict, err = sigsjson.UnmarshalStrict(js, &sections)
				err = errors.Join(append(strict, err)...)
			}
		}
		if err != nil {
			return platformSet{}, fmt.Errorf("-platforms %s: %w", path, err)
		}
	}
	set := platformSet{locations: map[string]secrets.Location{}}
	var errs []error
	known := make([]string, 0, len(modules))
	for _, m := range modules {
		known = append(known, m.Name())
		var section []byte
		if v, ok := sections[m.Name()]; ok {
			section, _ = yaml.Marshal(v) // re-encoded from what was just decoded: cannot fail
			if section, _ = yaml.YAMLToJSON(section); string(section) == "null" {
				section = nil
			}
		}
		c, err := m.Configure(section)
		if err != nil {
			errs = append(errs, prefixEach(m.Name(), err)...)
			continue
		}
		set.signers = append(set.signers, c.Signers...)
		if len(c.Signers) > 0 {
			set.enabled = append(set.enabled, m.Name())
		}
		for name, loc := range c.Locations {
			set.locations[name] = loc
		}
	}
	for name := range sections {
		if !slices.Contains(known, name) {
			errs = append(errs, fmt.Errorf("%q is not a platform (want one of %s)", name, strings.Join(known, ", ")))
		}
	}
	if len(errs) > 0 {
		where := "platform settings"
		if path != "" {
			where = "-platforms " + path
		}
		return set, fmt.Errorf("%s:\n%w", where, errors.Join(errs...))
	}
	return set, nil
}

// prefixEach names the platform on every line of a module's errors (it may
// join several), so that none of them reads as another platform's.
func prefixEach(name string, err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{fmt.Errorf("%s: %w", name, err)}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, prefixEach(name, e)...)
	}
	return out
}
