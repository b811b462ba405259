package device_test

import (
	"errors"
	"testing"

	"github.com/signerd/signerd/device"
)

// The test platform is registered once for this package's tests, as a
// platform package registers itself from init.
var _ = func() device.Platform {
	name := device.Chars(true, "-")
	p := device.Platform{
		Name: "testplat", Scheme: "testplat-iot", Products: true, Modules: true,
		Validate: func(id device.ID) error {
			errs := []error{
				device.ValidateChars("hub", "1–8 of [A-Za-z0-9-]", id.ProductKey, 1, 8, name),
				device.ValidateChars("deviceId", "1–8 of [A-Za-z0-9-]", id.DeviceName, 1, 8, name),
			}
			if id.Module != "" {
				errs = append(errs, device.ValidateChars("moduleId", "1–8 of [A-Za-z0-9-]", id.Module, 1, 8, name))
			}
			return errors.Join(errs...)
		},
	}
	device.Register(p)
	return p
}()

func TestIDString(t *testing.T) {
	for _, tc := range []struct {
		id   device.ID
		want string
	}{
		{device.ID{ProductKey: "a1PK", DeviceName: "dev1"}, "a1PK/dev1"},
		{device.ID{Platform: "testplat", ProductKey: "hub", DeviceName: "dev1"}, "testplat:hub/dev1"},
		{device.ID{Platform: "testplat", ProductKey: "hub", DeviceName: "dev1", Module: "m1"}, "testplat:hub/dev1/m1"},
		{device.ID{Platform: "standalone", DeviceName: "dev1"}, "standalone:dev1"},
	} {
		if got := tc.id.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func TestIDValidateByPlatform(t *testing.T) {
	for _, tc := range []struct {
		id     device.ID
		fields []string // nil: valid
	}{
		{device.ID{ProductKey: "a1PK", DeviceName: "dev1"}, nil},
		{device.ID{ProductKey: "a1PK", DeviceName: "dev1", Module: "m"}, []string{"module"}},
		{device.ID{Platform: "testplat", ProductKey: "hub", DeviceName: "d"}, nil},
		{device.ID{Platform: "testplat", ProductKey: "hub", DeviceName: "d", Module: "m-1"}, nil},
		{device.ID{Platform: "testplat", ProductKey: "hub_x", DeviceName: "d\xff", Module: "m/1"}, []string{"hub", "deviceId", "moduleId"}},
		{device.ID{Platform: "nosuch", ProductKey: "hub", DeviceName: "dev1"}, []string{"platform"}},
	} {
		err := tc.id.Validate()
		var got []string
		for _, e := range unwrapAll(err) {
			var fe *device.FieldError
			if errors.As(e, &fe) {
				got = append(got, fe.Field)
			}
		}
		if len(got) != len(tc.fields) {
			t.Errorf("%v.Validate() = %v, want errors on %v", tc.id, err, tc.fields)
			continue
		}
		for i := range got {
			if got[i] != tc.fields[i] {
				t.Errorf("%v.Validate() fields %v, want %v", tc.id, got, tc.fields)
			}
		}
	}
}

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	}
	return []error{err}
}

func TestRegistry(t *testing.T) {
	if p, ok := device.Lookup("testplat"); !ok || p.Scheme != "testplat-iot" {
		t.Fatalf("Lookup(testplat) = %v, %v", p, ok)
	}
	if p, ok := device.ByScheme("testplat-iot"); !ok || p.Name != "testplat" {
		t.Fatalf("ByScheme(testplat-iot) = %v, %v", p, ok)
	}
	if _, ok := device.ByScheme(device.AlibabaScheme); ok {
		t.Fatal("Alibaba's scheme is registered as another platform's")
	}
	ok := func(id device.ID) error { return nil }
	for name, p := range map[string]device.Platform{
		"duplicate name":   {Name: "testplat", Scheme: "other-iot", Validate: ok},
		"duplicate scheme": {Name: "other", Scheme: "testplat-iot", Validate: ok},
		"alibaba's scheme": {Name: "other", Scheme: device.AlibabaScheme, Validate: ok},
		"upper case":       {Name: "Other", Scheme: "other-iot", Validate: ok},
		"no validate":      {Name: "other", Scheme: "other-iot"},
		"empty":            {Validate: ok},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", p)
				}
			}()
			device.Register(p)
		})
	}
	if len(device.Platforms()) != 1 {
		t.Errorf("Platforms() = %v, want only testplat (failed registrations must not stick)", device.Platforms())
	}
}
