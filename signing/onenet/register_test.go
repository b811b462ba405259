package onenet_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/signerd/signerd/device"
	_ "github.com/signerd/signerd/signing/onenet"
)

func TestRegistered(t *testing.T) {
	p, ok := device.Lookup("onenet")
	if !ok || p.Scheme != "onenet-iot" || !p.Products || p.Modules {
		t.Fatalf("Lookup(onenet) = %+v, %v", p, ok)
	}
	if q, ok := device.ByScheme("onenet-iot"); !ok || q.Name != "onenet" {
		t.Fatalf("ByScheme(onenet-iot) = %+v, %v", q, ok)
	}
	for _, tc := range []struct {
		id     device.ID
		fields []string // nil: valid
	}{
		{device.ID{Platform: "onenet", ProductKey: "Ck2AF9QD2K", DeviceName: "dev_01-a"}, nil},
		{device.ID{Platform: "onenet", ProductKey: "123123", DeviceName: "78329710"}, nil},
		{device.ID{Platform: "onenet"}, []string{"deviceName", "productId"}},
		{device.ID{Platform: "onenet", ProductKey: "Ck2AF9QD2-", DeviceName: "dev:01"}, []string{"deviceName", "productId"}},
		{device.ID{Platform: "onenet", ProductKey: "EQPOKD5111", DeviceName: "a/b"}, []string{"deviceName"}},
		{device.ID{Platform: "onenet", ProductKey: "EQPOKD5111", DeviceName: "d\xff"}, []string{"deviceName"}},
		{device.ID{Platform: "onenet", ProductKey: "EQPOKD5111", DeviceName: "d", Module: "m"}, []string{"module"}},
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
