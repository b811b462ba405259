// Package kvsettings reads the parts of a platform's settings section that
// every platform shares: strict decoding, and the "vault" block saying where
// in Vault KV its devices' keys are.
package kvsettings

import (
	"errors"
	"fmt"

	sigsjson "sigs.k8s.io/json"

	"github.com/signerd/signerd/secrets"
)

// Decode reads section (JSON; nil for none, which leaves v as it is) into
// v strictly: unknown keys, duplicate keys and keys in the wrong case are
// errors, all of them reported together with a type mismatch, so that a
// misspelt setting is never silently ignored and one start-up shows every
// mistake.
func Decode(section []byte, v any) error {
	if section == nil {
		return nil
	}
	strict, err := sigsjson.UnmarshalStrict(section, v)
	return errors.Join(append(strict, err)...)
}

// Vault is the "vault" block: each setting left out takes the platform's
// default, and one given (even as "") is used as written and checked.
type Vault struct {
	Mount *string `json:"mount"`
	Path  *string `json:"path"`
	Field *string `json:"field"`
}

// Location returns def with the settings given in v, or every reason it
// cannot find a device's key, each naming the setting.
func (v *Vault) Location(def secrets.Location) (secrets.Location, error) {
	loc := def
	if v != nil {
		if v.Mount != nil {
			loc.Mount = *v.Mount
		}
		if v.Path != nil {
			loc.PathTemplate = *v.Path
		}
		if v.Field != nil {
			loc.Field = *v.Field
		}
	}
	err := loc.Check()
	if err == nil {
		return loc, nil
	}
	// One line per problem, each saying which block it is in.
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for i, e := range errs {
		errs[i] = fmt.Errorf("vault: %w", e)
	}
	return secrets.Location{}, errors.Join(errs...)
}
