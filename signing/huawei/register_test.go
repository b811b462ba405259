package huawei_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/signerd/signerd/device"
	_ "github.com/signerd/signerd/signing/huawei"
)

func TestRegistered(t *testing.T) {
	p, ok := device.Lookup("huawei")
	if !ok || p.Scheme != "huawei-iot" || p.Products || p.Modules {
		t.Fatalf("Lookup(huawei) = %+v, %v", p, ok)
	}
	if q, ok := device.ByScheme("huawei-iot"); !ok || q.Name != "huawei" {
		t.Fatalf("ByScheme(huawei-iot) = %+v, %v", q, ok)
	}
	for _, tc := range []struct {
		id     device.ID
		fields []string // nil: valid
	}{
		{device.ID{Platform: "huawei", DeviceName: "5e4b2c1a_node-01"}, nil},
		{device.ID{Platform: "huawei", DeviceName: strings.Repeat("d", 128)}, nil},
		{device.ID{Platform: "huawei"}, []string{"deviceId"}},
		{device.ID{Platform: "huawei", DeviceName: strings.Repeat("d", 129)}, []string{"deviceId"}},
		{device.ID{Platform: "huawei", DeviceName: "a/b"}, []string{"deviceId"}},
		{device.ID{Platform: "huawei", DeviceName: "d\xff"}, []string{"deviceId"}},
		{device.ID{Platform: "huawei", ProductKey: "p", DeviceName: "d"}, []string{"productKey"}},
		{device.ID{Platform: "huawei", DeviceName: "d", Module: "m"}, []string{"module"}},
	} {
		if got := fields(tc.id.Validate()); !slices.Equal(got, tc.fields) {
			t.Errorf("%v.Validate() fields %v, want %v", tc.id, got, tc.fields)
		}
	}
}

func fields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *device.FieldError
		if errors.As(e, &fe) {
			out = append(out, fe.Field)
		} else {
			out = append(out, "not a FieldError: "+e.Error())
		}
	}
	if err != nil {
		walk(err)
	}
	slices.Sort(out)
	return out
}
