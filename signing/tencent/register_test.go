package tencent_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/signerd/signerd/device"
	_ "github.com/signerd/signerd/signing/tencent"
)

func TestRegistered(t *testing.T) {
	p, ok := device.Lookup("tencent")
	if !ok || p.Scheme != "tencent-iot" || !p.Products || p.Modules {
		t.Fatalf("Lookup(tencent) = %+v, %v", p, ok)
	}
	if q, ok := device.ByScheme("tencent-iot"); !ok || q.Name != "tencent" {
		t.Fatalf("ByScheme(tencent-iot) = %+v, %v", q, ok)
	}
	for _, tc := range []struct {
		id     device.ID
		fields []string // nil: valid
	}{
		{device.ID{Platform: "tencent", ProductKey: "EQPOKD5111", DeviceName: "dev:01_a-B"}, nil},
		{device.ID{Platform: "tencent"}, []string{"deviceName", "productId"}},
		{device.ID{Platform: "tencent", ProductKey: "eqpokd5111", DeviceName: "d"}, []string{"productId"}},
		{device.ID{Platform: "tencent", ProductKey: "EQPOKD5111", DeviceName: "a/b"}, []string{"deviceName"}},
		{device.ID{Platform: "tencent", ProductKey: "EQPOKD5111", DeviceName: "d\xff"}, []string{"deviceName"}},
		{device.ID{Platform: "tencent", ProductKey: "EQPOKD5111", DeviceName: "d", Module: "m"}, []string{"module"}},
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
