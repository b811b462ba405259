package azure_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/signing/azure"
)

// fieldsOf returns the fields of the *FieldError values err joins, in order.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var fields []string
	for _, e := range errs {
		var fe *device.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %v: not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	return fields
}

func TestRegisteredPlatforms(t *testing.T) {
	for _, tc := range []struct {
		name, scheme      string
		products, modules bool
	}{
		{"azure", "azure-iot", true, true},
		{"azure-dps", "azure-dps", true, false},
		{"azure-dps-group", "", true, false},
	} {
		p, ok := device.Lookup(tc.name)
		if !ok {
			t.Errorf("platform %q is not registered", tc.name)
			continue
		}
		if p.Scheme != tc.scheme || p.Products != tc.products || p.Modules != tc.modules {
			t.Errorf("platform %q: scheme %q products %v modules %v, want %q %v %v", tc.name, p.Scheme, p.Products, p.Modules, tc.scheme, tc.products, tc.modules)
		}
		if tc.scheme != "" {
			if q, ok := device.ByScheme(tc.scheme); !ok || q.Name != tc.name {
				t.Errorf("scheme %q: platform %q, want %q", tc.scheme, q.Name, tc.name)
			}
		}
	}
}

func TestRegisteredValidate(t *testing.T) {
	long := strings.Repeat("g", 129)
	for _, tc := range []struct {
		id     device.ID
		fields []string // nil: valid
	}{
		{device.ID{Platform: "azure", ProductKey: "myhub", DeviceName: "dev-001"}, nil},
		{device.ID{Platform: "azure", ProductKey: "myhub", DeviceName: "edge(1)", Module: "$edgeAgent"}, nil},
		{device.ID{Platform: "azure", ProductKey: "my_hub", DeviceName: "dev/1", Module: "m#"}, []string{"hub", "deviceId", "moduleId"}},
		{device.ID{Platform: "azure", ProductKey: "-hub", DeviceName: "dév"}, []string{"hub", "deviceId"}},
		{device.ID{Platform: "azure", ProductKey: "hub", DeviceName: ""}, []string{"deviceId"}},
		{device.ID{Platform: "azure-dps", ProductKey: "0ne00000A0A", DeviceName: "sensor-1"}, nil},
		{device.ID{Platform: "azure-dps", ProductKey: "0ne0000", DeviceName: "sensor*"}, []string{"idScope", "registrationId"}},
		{device.ID{Platform: "azure-dps", ProductKey: "0ne00000A0A", DeviceName: "s", Module: "m"}, []string{"module"}},
		{device.ID{Platform: "azure-dps-group", ProductKey: "0ne00000A0A", DeviceName: "grp1"}, nil},
		{device.ID{Platform: "azure-dps-group", ProductKey: "0ne00000A0A", DeviceName: "Grp:1-"}, nil},
		{device.ID{Platform: "azure-dps-group", ProductKey: "1ne00000A0A", DeviceName: "grp."}, []string{"idScope", "group"}},
		{device.ID{Platform: "azure-dps-group", ProductKey: "0ne00000A0A", DeviceName: long}, []string{"group"}},
		{device.ID{Platform: "azure-dps-group", ProductKey: "0ne00000A0A", DeviceName: "g/1", Module: "m"}, []string{"group", "module"}},
	} {
		got := fieldsOf(t, tc.id.Validate())
		if !slices.Equal(got, tc.fields) {
			t.Errorf("%v: fields %v, want %v", tc.id, got, tc.fields)
		}
	}
}

// TestValidateGroupID: Microsoft's enrollment group id rule, and every
// byte outside it (including every byte >= 0x80 and '/') refused.
func TestValidateGroupID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"g", true},
		{"grp1", true},
		{"My.Group_01:a-", true},
		{strings.Repeat("g", 128), true},
		{"", false},
		{strings.Repeat("g", 129), false},
		{"grp.", false},
		{"grp_", false},
		{"grp:", false},
		{"grp 1", false},
	} {
		err := azure.ValidateGroupID(tc.in)
		if tc.want {
			wantField(t, err, "")
		} else {
			wantField(t, err, "group")
		}
	}
	for _, b := range allBytesExcept(alnum + regPunct) {
		wantField(t, azure.ValidateGroupID("g"+b+"g"), "group")
	}
}
