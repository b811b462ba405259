package device_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/device"
)

const (
	errProductKey = "productKey: must be 1–32 characters of [A-Za-z0-9]"
	errDeviceName = "deviceName: must be 4–32 characters of [A-Za-z0-9_.@:-]"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		fn     func(string) error
		in     string
		want   string // "" for valid
		wantFE string // field of the *FieldError
	}{
		{"pk min", device.ValidateProductKey, "a", "", ""},
		{"pk max", device.ValidateProductKey, strings.Repeat("A9", 16), "", ""},
		{"pk empty", device.ValidateProductKey, "", errProductKey, "productKey"},
		{"pk too long", device.ValidateProductKey, strings.Repeat("a", 33), errProductKey, "productKey"},
		{"pk punct", device.ValidateProductKey, "a-b", errProductKey, "productKey"},
		{"pk slash", device.ValidateProductKey, "a/b", errProductKey, "productKey"},
		{"pk non-ASCII", device.ValidateProductKey, "pk\u0430", errProductKey, "productKey"},
		{"dn min", device.ValidateDeviceName, "abcd", "", ""},
		{"dn punct", device.ValidateDeviceName, "a-_.@:", "", ""},
		{"dn max", device.ValidateDeviceName, strings.Repeat("d", 32), "", ""},
		{"dn too short", device.ValidateDeviceName, "abc", errDeviceName, "deviceName"},
		{"dn too long", device.ValidateDeviceName, strings.Repeat("d", 33), errDeviceName, "deviceName"},
		{"dn slash", device.ValidateDeviceName, "dev/ice", errDeviceName, "deviceName"},
		{"dn space", device.ValidateDeviceName, "dev ice", errDeviceName, "deviceName"},
		{"dn NUL", device.ValidateDeviceName, "dev\x00ice", errDeviceName, "deviceName"},
		{"dn non-ASCII", device.ValidateDeviceName, "devic\u00e9", errDeviceName, "deviceName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn(tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var fe *device.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantFE || err.Error() != tt.want {
				t.Fatalf("err = %v (%T), want *FieldError %q", err, err, tt.want)
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q contains the value", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    device.ID
		wantErr []string // fields named by the error; nil for valid
	}{
		{"pk1/dev1", device.ID{ProductKey: "pk1", DeviceName: "dev1"}, nil},
		{"pk1/dev:1@x", device.ID{ProductKey: "pk1", DeviceName: "dev:1@x"}, nil},
		{"pk1", device.ID{}, []string{"{productKey}/{deviceName}"}},
		{"", device.ID{}, []string{"{productKey}/{deviceName}"}},
		{"/dev1", device.ID{}, []string{"productKey"}},
		{"pk1/", device.ID{}, []string{"deviceName"}},
		{"pk1/dev1/x", device.ID{}, []string{"deviceName"}},
		{"p-k/d", device.ID{}, []string{"productKey", "deviceName"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := device.Parse(tt.in)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Parse = %v, %v; want %v, nil", got, err, tt.want)
				}
				if got.String() != tt.in {
					t.Errorf("String() = %q, want %q", got.String(), tt.in)
				}
				return
			}
			if err == nil || got != (device.ID{}) {
				t.Fatalf("Parse = %v, %v; want an error", got, err)
			}
			for _, f := range tt.wantErr {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %q", err, f)
				}
			}
		})
	}
}

// FuzzParse: whatever the input, Parse either fails or returns a valid ID
// whose String is the input, so a name that passes can never be read back
// as another device.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"pk1/dev1", "a/b/c", "pk/\u00e9dev", "", "/", "pk1/dev1\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := device.Parse(s)
		if err != nil {
			if id != (device.ID{}) {
				t.Fatalf("Parse(%q) = %v with error %v", s, id, err)
			}
			return
		}
		if id.Validate() != nil || id.String() != s {
			t.Fatalf("Parse(%q) = %v: String %q, Validate %v", s, id, id.String(), id.Validate())
		}
	})
}
