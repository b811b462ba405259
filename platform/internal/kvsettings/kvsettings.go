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
// errors, so that a misspelt setting is never silently ignored. They do
// not stop the decoding, so that the caller can go on to check the values
// and one start-up shows every mistake: checked is false only when a value
// has the wrong type or the section is not JSON, and v's values are then
// not to be checked (a wrongly typed one reads as empty).
func Decode(section []byte, v any) (checked bool, err error) {
	if section == nil {
		return true, nil
	}
	strict, err := sigsjson.UnmarshalStrict(section, v)
	return err == nil, errors.Join(append(strict, err)...)
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
