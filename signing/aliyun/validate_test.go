package aliyun_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// Expected error messages. They state the rule and never the value.
const (
	errProductKey = "productKey: must be 1–32 characters of [A-Za-z0-9]"
	errDeviceName = "deviceName: must be 4–32 characters of [A-Za-z0-9_.@:-]"
	errClientID   = "clientId: must be 1–64 characters of [A-Za-z0-9_.:@-]"
	errTimestamp  = "timestamp: must be 1–19 decimal digits (milliseconds since the Unix epoch)"
	errSignMethod = "signMethod: must be one of hmacsha256, hmacsha1, hmacmd5"
	errTransport  = "transport: must be TLS, TCP or WebSocket over TLS"
	errSecret     = "deviceSecret: must not be empty"
)

// checkFieldError reports a test error unless err is a *FieldError for
// wantField whose message is wantMsg.
func checkFieldError(t *testing.T, call string, err error, wantField, wantMsg string) {
	t.Helper()
	var fe *signing.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("%s = %v (%T), want *signing.FieldError for %s", call, err, err, wantField)
		return
	}
	if fe.Field != wantField {
		t.Errorf("%s: Field = %q, want %q", call, fe.Field, wantField)
	}
	if got := err.Error(); got != wantMsg {
		t.Errorf("%s: Error() = %q, want %q", call, got, wantMsg)
	}
}

// validator describes one field's validation function and rules.
type validator struct {
	name     string
	fn       func(string) error
	field    string
	msg      string
	minLen   int
	maxLen   int
	allowed  string // every allowed byte
	goodFill string // a valid filler byte
}

const (
	digits  = "0123456789"
	letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

var validators = []validator{
	{"ValidateProductKey", signing.ValidateProductKey, "productKey", errProductKey, 1, 32, letters + digits, "a"},
	{"ValidateDeviceName", signing.ValidateDeviceName, "deviceName", errDeviceName, 4, 32, letters + digits + "-_.@:", "d"},
	{"ValidateClientID", signing.ValidateClientID, "clientId", errClientID, 1, 64, letters + digits + "_.:@-", "c"},
	{"ValidateTimestamp", signing.ValidateTimestamp, "timestamp", errTimestamp, 1, 19, digits, "1"},
}

func TestValidateFields(t *testing.T) {
	tests := []struct {
		fn   func(string) error
		name string
		good []string
		bad  []string
	}{
		{
			fn:   signing.ValidateProductKey,
			name: "ValidateProductKey",
			good: []string{"a", "a1FakePK01", "a1owFRdwWIb", "Z9", strings.Repeat("k", 32)},
			bad: []string{
				"", strings.Repeat("k", 33),
				"a1-PK", "a1_PK", "a1.PK", "a1@PK", "a1:PK", "a1 PK", " a1PK", "a1PK\n",
				"a1|PK", "a1,PK", "a1=PK", "a1&PK", "a1/PK", "a1\x00PK", "a1PKé", "ａ1PK",
			},
		},
		{
			fn:   signing.ValidateDeviceName,
			name: "ValidateDeviceName",
			good: []string{
				"dev1", "dev-001", "a-_.@:", "qCN4p.5vTJoheviVNzrY-l", "::::", "----",
				strings.Repeat("d", 32),
			},
			bad: []string{
				"", "dev", strings.Repeat("d", 33),
				"dev 1", "dev\t1", "dev1\r\n", "dev|1", "dev,1", "dev=1", "dev&1",
				"dev/1", "dev+1", "dev%1", "dev#1", "dev\x7f", "dév1", "dev1\u2028",
			},
		},
		{
			fn:   signing.ValidateClientID,
			name: "ValidateClientID",
			good: []string{"c", "dev-001", "_.:@-", "00:1A:2B:3C:4D:5E", strings.Repeat("c", 64)},
			bad: []string{
				"", strings.Repeat("c", 65),
				"c 1", "c|1", "c|securemode=3|", "c,signmethod=hmacmd5", "c=1", "c&1",
				"c\x001", "c\n", "c;1", "c\"1", "cü", "c\xff",
			},
		},
		{
			fn:   signing.ValidateTimestamp,
			name: "ValidateTimestamp",
			good: []string{"0", "1700000000000", "0001", strings.Repeat("9", 19)},
			bad: []string{
				"", strings.Repeat("9", 20),
				"-1", "+1", "1.5", "1e12", " 1", "1 ", "0x1F", "1,000", "１",
			},
		},
	}
	for _, tc := range tests {
		v := validatorNamed(t, tc.name)
		for _, s := range tc.good {
			if err := tc.fn(s); err != nil {
				t.Errorf("%s(%q) = %v, want nil", tc.name, s, err)
			}
		}
		for _, s := range tc.bad {
			checkFieldError(t, tc.name+"("+strconv.Quote(s)+")", tc.fn(s), v.field, v.msg)
		}
	}
}

func validatorNamed(t *testing.T, name string) validator {
	t.Helper()
	for _, v := range validators {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no validator %q", name)
	return validator{}
}

// TestValidateLengths checks every length from 0 to one past the maximum.
func TestValidateLengths(t *testing.T) {
	for _, v := range validators {
		for n := 0; n <= v.maxLen+1; n++ {
			s := strings.Repeat(v.goodFill, n)
			err := v.fn(s)
			if wantOK := n >= v.minLen && n <= v.maxLen; wantOK {
				if err != nil {
					t.Errorf("%s(%d bytes) = %v, want nil", v.name, n, err)
				}
				continue
			}
			checkFieldError(t, v.name, err, v.field, v.msg)
		}
	}
}

// TestValidateCharacters checks every byte value in every position class
// against the allow-list, so that no framing character (| , = &),
// whitespace, control or non-ASCII byte is accepted anywhere.
func TestValidateCharacters(t *testing.T) {
	for _, v := range validators {
		pad := strings.Repeat(v.goodFill, v.minLen)
		for b := 0; b < 256; b++ {
			c := string([]byte{byte(b)})
			wantOK := strings.Contains(v.allowed, c)
			for _, s := range []string{c + pad, pad + c} {
				err := v.fn(s)
				if wantOK && err != nil {
					t.Errorf("%s(%q) = %v, want nil", v.name, s, err)
				}
				if !wantOK && err == nil {
					t.Errorf("%s(%q) = nil, want error", v.name, s)
				}
			}
		}
	}
}

func TestConnectRequestValidate(t *testing.T) {
	valid := signing.ConnectRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Timestamp:  "1700000000000",
		Method:     signing.MethodHMACSHA256,
		Transport:  signing.TransportTLS,
	}
	tests := []struct {
		name      string
		modify    func(*signing.ConnectRequest)
		wantField string // "" means valid
		wantMsg   string
	}{
		{"valid", func(*signing.ConnectRequest) {}, "", ""},
		{"no timestamp", func(r *signing.ConnectRequest) { r.Timestamp = "" }, "", ""},
		{"hmacmd5 over tcp", func(r *signing.ConnectRequest) {
			r.Method, r.Transport = signing.MethodHMACMD5, signing.TransportTCP
		}, "", ""},
		{"hmacsha1 over wss", func(r *signing.ConnectRequest) {
			r.Method, r.Transport = signing.MethodHMACSHA1, signing.TransportWebSocketTLS
		}, "", ""},
		{"empty productKey", func(r *signing.ConnectRequest) { r.ProductKey = "" }, "productKey", errProductKey},
		{"productKey with &", func(r *signing.ConnectRequest) { r.ProductKey = "a1&x" }, "productKey", errProductKey},
		{"short deviceName", func(r *signing.ConnectRequest) { r.DeviceName = "dev" }, "deviceName", errDeviceName},
		{"deviceName with &", func(r *signing.ConnectRequest) { r.DeviceName = "dev&a1Other" }, "deviceName", errDeviceName},
		{"empty clientId", func(r *signing.ConnectRequest) { r.ClientID = "" }, "clientId", errClientID},
		{"clientId smuggling an extension", func(r *signing.ConnectRequest) {
			r.ClientID = "dev|securemode=3,signmethod=hmacmd5|x"
		}, "clientId", errClientID},
		{"timestamp with sign", func(r *signing.ConnectRequest) { r.Timestamp = "-1" }, "timestamp", errTimestamp},
		{"timestamp smuggling a parameter", func(r *signing.ConnectRequest) {
			r.Timestamp = "1,ext=1"
		}, "timestamp", errTimestamp},
		{"unspecified method", func(r *signing.ConnectRequest) { r.Method = signing.MethodUnspecified }, "signMethod", errSignMethod},
		{"out-of-range method", func(r *signing.ConnectRequest) { r.Method = 42 }, "signMethod", errSignMethod},
		{"unspecified transport", func(r *signing.ConnectRequest) { r.Transport = signing.TransportUnspecified }, "transport", errTransport},
		{"negative transport", func(r *signing.ConnectRequest) { r.Transport = -1 }, "transport", errTransport},
		{"first invalid field is reported", func(r *signing.ConnectRequest) {
			r.DeviceName, r.Timestamp, r.Method = "", "x", 0
		}, "deviceName", errDeviceName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := valid
			tc.modify(&req)
			err := req.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Errorf("%+v.Validate() = %v, want nil", req, err)
				}
				return
			}
			checkFieldError(t, "Validate()", err, tc.wantField, tc.wantMsg)
		})
	}
}

// TestSignConnectErrors checks that SignConnect validates before signing,
// names the field, and never puts the secret in the error.
func TestSignConnectErrors(t *testing.T) {
	const secret = "S3cretValue-must-not-leak"
	valid := signing.ConnectRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Method:     signing.MethodHMACSHA256,
		Transport:  signing.TransportTLS,
	}
	tests := []struct {
		name      string
		secret    []byte
		modify    func(*signing.ConnectRequest)
		wantField string
		wantMsg   string
	}{
		{"nil secret", nil, func(*signing.ConnectRequest) {}, "deviceSecret", errSecret},
		{"empty secret", []byte{}, func(*signing.ConnectRequest) {}, "deviceSecret", errSecret},
		{"secret as productKey", []byte(secret), func(r *signing.ConnectRequest) { r.ProductKey = secret }, "productKey", errProductKey},
		{"secret as deviceName", []byte(secret), func(r *signing.ConnectRequest) { r.DeviceName = secret + "|" }, "deviceName", errDeviceName},
		{"secret as clientId", []byte(secret), func(r *signing.ConnectRequest) { r.ClientID = secret + "|" }, "clientId", errClientID},
		{"secret as timestamp", []byte(secret), func(r *signing.ConnectRequest) { r.Timestamp = secret }, "timestamp", errTimestamp},
		{"bad method", []byte(secret), func(r *signing.ConnectRequest) { r.Method = 0 }, "signMethod", errSignMethod},
		{"bad transport", []byte(secret), func(r *signing.ConnectRequest) { r.Transport = 9 }, "transport", errTransport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := valid
			tc.modify(&req)
			got, err := signing.SignConnect(req, signing.DeviceSecretMAC(tc.secret))
			if got != (signing.ConnectParams{}) {
				t.Errorf("SignConnect returned %+v alongside an error, want zero ConnectParams", got)
			}
			checkFieldError(t, "SignConnect", err, tc.wantField, tc.wantMsg)
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("SignConnect error %q contains the secret", err)
			}
		})
	}
}

func TestParseMethod(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want signing.Method
	}{
		{"hmacsha256", signing.MethodHMACSHA256},
		{"hmacsha1", signing.MethodHMACSHA1},
		{"hmacmd5", signing.MethodHMACMD5},
	} {
		got, err := signing.ParseMethod(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMethod(%q) = %v, %v; want %v, nil", tc.in, got, err, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, s, tc.in)
		}
	}
	for _, in := range []string{"", "HMACSHA256", "HmacSHA1", "hmacsha256 ", "sha256", "hmacsha512", "hmac-sha256"} {
		got, err := signing.ParseMethod(in)
		if got != signing.MethodUnspecified {
			t.Errorf("ParseMethod(%q) = %v, want MethodUnspecified", in, got)
		}
		checkFieldError(t, "ParseMethod("+strconv.Quote(in)+")", err, "signMethod", errSignMethod)
	}
}

func TestMethodAndTransportStrings(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{signing.MethodUnspecified.String(), "Method(0)"},
		{signing.Method(7).String(), "Method(7)"},
		{signing.TransportTLS.String(), "tls"},
		{signing.TransportTCP.String(), "tcp"},
		{signing.TransportWebSocketTLS.String(), "wss"},
		{signing.TransportUnspecified.String(), "Transport(0)"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

func TestTransportSecureMode(t *testing.T) {
	for _, tc := range []struct {
		t    signing.Transport
		want int
	}{
		{signing.TransportTLS, 2},
		{signing.TransportWebSocketTLS, 2},
		{signing.TransportTCP, 3},
		{signing.TransportUnspecified, 0},
		{signing.Transport(99), 0},
	} {
		if got := tc.t.SecureMode(); got != tc.want {
			t.Errorf("%v.SecureMode() = %d, want %d", tc.t, got, tc.want)
		}
	}
}
