package azure_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/azure"
)

// wantField checks that err is a *FieldError for field, or nil when field
// is "".
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("unexpected error %v", err)
		}
		return
	}
	var fe *azure.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v, want a *FieldError for %s", err, field)
	}
	if fe.Field != field {
		t.Errorf("field %q, want %q", fe.Field, field)
	}
}

// allBytesExcept returns every byte value not in allowed (an ASCII
// string), including every byte >= 0x80, as one-byte strings.
func allBytesExcept(allowed string) []string {
	var out []string
	for c := 0; c < 256; c++ {
		if c >= 0x80 || !strings.ContainsRune(allowed, rune(c)) {
			out = append(out, string([]byte{byte(c)}))
		}
	}
	return out
}

const (
	alnum     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	idPunct   = "-.%_*?!(),:=@$'"
	regPunct  = "-._:"
	hexDigits = "0123456789abcdefABCDEF"
)

func TestValidateHub(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"abc", true},
		{"my-hub-01", true},
		{"MyHub", true},
		{"a-b", true},
		{"0ab", true},
		{strings.Repeat("h", 50), true},
		{"", false},
		{"ab", false},                    // 2 < 3
		{strings.Repeat("h", 51), false}, // 51 > 50
		{"hub-", false},                  // ends with '-'
		{"-hub", false},                  // starts with '-', not a DNS label
		{"my_hub", false},                // '_'
		{"my.hub", false},                // '.' would add a DNS label
		{"my hub", false},                // space
		{"hüb", false},                   // non-ASCII
		{"hub\x00", false},               // NUL
		{"hub/devices", false},           // '/'
		{"abc.azure-devices.net", false}, // a host is not a name
	}
	for _, tc := range tests {
		field := ""
		if !tc.want {
			field = "hub"
		}
		wantField(t, azure.ValidateHub(tc.in), field)
	}
	for _, c := range allBytesExcept(alnum + "-") {
		wantField(t, azure.ValidateHub("ab"+c+"c"), "hub")
	}
}

func TestValidateHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	host253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".")
	tests := []struct {
		in   string
		want bool
	}{
		{"myhub.azure-devices.net", true},
		{"MyHub.Azure-Devices.net", true},
		{"edge-gw.factory.example", true},
		{"localhost", true},
		{"127.0.0.1", true},
		{label63 + ".net", true},
		{host253, true},
		{"", false},
		{host253 + "b", false},                    // 254 characters
		{strings.Repeat("a", 64) + ".net", false}, // 64-character label
		{"myhub.azure-devices.net.", false},       // trailing dot: empty label
		{".myhub.net", false},                     // empty label
		{"a..b", false},                           // empty label
		{"-a.net", false},                         // label starts with '-'
		{"a-.net", false},                         // label ends with '-'
		{"myhub.azure-devices.net:8883", false},   // port
		{"myhub.azure-devices.net/x", false},      // path
		{"my_hub.net", false},                     // '_'
		{"hüb.net", false},                        // non-ASCII
		{"a b.net", false},                        // space
	}
	for _, tc := range tests {
		field := ""
		if !tc.want {
			field = "host"
		}
		wantField(t, azure.ValidateHost(tc.in), field)
	}
	for _, c := range allBytesExcept(alnum + "-.") {
		wantField(t, azure.ValidateHost("a"+c+"b.net"), "host")
	}
}

func TestValidateDeviceAndModuleID(t *testing.T) {
	for _, fn := range []struct {
		field    string
		validate func(string) error
	}{
		{"deviceId", azure.ValidateDeviceID},
		{"moduleId", azure.ValidateModuleID},
	} {
		t.Run(fn.field, func(t *testing.T) {
			tests := []struct {
				in   string
				want bool
			}{
				{"a", true},
				{"dev-001", true},
				{idPunct, true},
				{"$edgeAgent", true},
				{strings.Repeat("x", 128), true},
				{"", false},
				{strings.Repeat("x", 129), false},
				{"dev+1", false}, // '+' is an MQTT wildcard; the SDKs refuse it
				{"dev#1", false}, // '#' likewise
				{"dev/1", false}, // '/' would split the clientId and the resource
				{"dev 1", false},
				{"dev&1", false},
				{"dév", false},
			}
			for _, tc := range tests {
				field := ""
				if !tc.want {
					field = fn.field
				}
				wantField(t, fn.validate(tc.in), field)
			}
			for _, c := range allBytesExcept(alnum + idPunct) {
				wantField(t, fn.validate("a"+c+"b"), fn.field)
			}
			for _, c := range alnum + idPunct {
				wantField(t, fn.validate(string(c)), "")
			}
		})
	}
}

func TestValidateIDScope(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"0ne00000A0A", true},
		{"0ne0001f2c3", true},
		{"0neFFFFFFFF", true},
		{"0ne00000000", true},
		{"", false},
		{"0ne", false},
		{"0ne00000A0", false},   // 7 digits
		{"0ne00000A0A0", false}, // 9 digits
		{"0NE00000A0A", false},  // the prefix is lower case
		{"one00000A0A", false},
		{"1ne00000A0A", false},
		{"0ne00000G0A", false}, // 'G' is not hex
		{"0ne0000/A0A", false},
		{"0ne00000A0A/registrations/x", false},
	}
	for _, tc := range tests {
		field := ""
		if !tc.want {
			field = "idScope"
		}
		wantField(t, azure.ValidateIDScope(tc.in), field)
	}
	for _, c := range allBytesExcept(hexDigits) {
		wantField(t, azure.ValidateIDScope("0ne0000"+c+"000"), "idScope")
	}
}

func TestValidateRegistrationID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"7", true},
		{"-", true}, // a dash may end it
		{"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", true},
		{"a-._:z", true},
		{"Dev:01-", true},
		{strings.Repeat("r", 128), true},
		{"", false},
		{strings.Repeat("r", 129), false},
		{"dev.", false}, // must end with alphanumeric or '-'
		{"dev_", false},
		{"dev:", false},
		{".", false},
		{"dev/1", false},
		{"dev 1", false},
		{"dev@1", false}, // a device id may, a registration id may not
		{"dév", false},
	}
	for _, tc := range tests {
		field := ""
		if !tc.want {
			field = "registrationId"
		}
		wantField(t, azure.ValidateRegistrationID(tc.in), field)
	}
	for _, c := range allBytesExcept(alnum + regPunct) {
		wantField(t, azure.ValidateRegistrationID("a"+c+"b"), "registrationId")
	}
	// Every registration id is a device id: a group-enrolled device keeps
	// its registration id as its IoT Hub device id.
	for _, c := range alnum + regPunct {
		s := "a" + string(c) + "b"
		wantField(t, azure.ValidateRegistrationID(s), "")
		wantField(t, azure.ValidateDeviceID(s), "")
	}
}

func TestResolveTTL(t *testing.T) {
	tests := []struct {
		in    time.Duration
		want  time.Duration
		valid bool
	}{
		{0, time.Hour, true},
		{time.Minute, time.Minute, true},
		{2592000 * time.Second, 2592000 * time.Second, true},
		{86400 * time.Second, 86400 * time.Second, true},
		{59 * time.Second, 0, false},
		{2592001 * time.Second, 0, false},
		{-time.Second, 0, false},
		{time.Minute + time.Millisecond, 0, false}, // not whole seconds
		{time.Duration(1<<63 - 1), 0, false},
	}
	for _, tc := range tests {
		got, err := azure.ResolveTTL(tc.in)
		field := ""
		if !tc.valid {
			field = "ttlSeconds"
		}
		wantField(t, err, field)
		if got != tc.want {
			t.Errorf("ResolveTTL(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if azure.DefaultTTL != 3600*time.Second || azure.MinTTL != 60*time.Second || azure.MaxTTL != 2592000*time.Second {
		t.Errorf("TTL limits %v %v %v", azure.DefaultTTL, azure.MinTTL, azure.MaxTTL)
	}
}

// validHub is a valid request; tests change one field.
func validHub() azure.HubRequest {
	return azure.HubRequest{Hub: "myhub", DeviceID: "dev-001", IssuedAt: time.Unix(1700000000, 0)}
}

func validDPS() azure.DPSRequest {
	return azure.DPSRequest{IDScope: "0ne00000A0A", RegistrationID: "dev-001", IssuedAt: time.Unix(1700000000, 0)}
}

// TestSignRefusesBeforeMAC checks that each invalid field is reported by
// name, in order, and that the MAC (the key's owner) is never asked.
func TestSignRefusesBeforeMAC(t *testing.T) {
	hubTests := []struct {
		name  string
		edit  func(*azure.HubRequest)
		field string
	}{
		{"hub", func(r *azure.HubRequest) { r.Hub = "h" }, "hub"},
		{"host", func(r *azure.HubRequest) { r.Host = "h:1" }, "host"},
		{"deviceId", func(r *azure.HubRequest) { r.DeviceID = "" }, "deviceId"},
		{"moduleId", func(r *azure.HubRequest) { r.ModuleID = "m#" }, "moduleId"},
		{"ttl short", func(r *azure.HubRequest) { r.TTL = 59 * time.Second }, "ttlSeconds"},
		{"ttl long", func(r *azure.HubRequest) { r.TTL = azure.MaxTTL + time.Second }, "ttlSeconds"},
		{"first of several", func(r *azure.HubRequest) { r.Hub, r.DeviceID = "", "" }, "hub"},
	}
	for _, tc := range hubTests {
		t.Run("hub/"+tc.name, func(t *testing.T) {
			req := validHub()
			tc.edit(&req)
			wantField(t, req.Validate(), tc.field)
			_, err := azure.SignHub(req, forbiddenMAC(t))
			wantField(t, err, tc.field)
		})
	}
	dpsTests := []struct {
		name  string
		edit  func(*azure.DPSRequest)
		field string
	}{
		{"idScope", func(r *azure.DPSRequest) { r.IDScope = "" }, "idScope"},
		{"registrationId", func(r *azure.DPSRequest) { r.RegistrationID = "dev." }, "registrationId"},
		{"ttl", func(r *azure.DPSRequest) { r.TTL = time.Second }, "ttlSeconds"},
	}
	for _, tc := range dpsTests {
		t.Run("dps/"+tc.name, func(t *testing.T) {
			req := validDPS()
			tc.edit(&req)
			wantField(t, req.Validate(), tc.field)
			_, err := azure.SignDPS(req, forbiddenMAC(t))
			wantField(t, err, tc.field)
		})
	}
	t.Run("derive", func(t *testing.T) {
		_, err := azure.DeriveDeviceKey(forbiddenMAC(t), "bad/id")
		wantField(t, err, "registrationId")
		_, err = azure.DerivedMAC(forbiddenMAC(t), "")
		wantField(t, err, "registrationId")
		_, err = azure.DeriveContent("x.")
		wantField(t, err, "registrationId")
	})
}

func forbiddenMAC(t *testing.T) azure.MAC {
	return func([]byte) ([]byte, error) {
		t.Error("the MAC was called for an invalid request")
		return make([]byte, 32), nil
	}
}
