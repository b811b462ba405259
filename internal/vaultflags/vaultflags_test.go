package vaultflags

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of the errors; none when nil
	}{
		{name: "defaults", args: nil},
		{name: "approle without its settings", args: []string{"-vault-auth", "approle"},
			want: []string{"-vault-approle-role-id: required", "-vault-approle-secret-id-file: required"}},
		{name: "kubernetes without a role", args: []string{"-vault-auth", "kubernetes"}, want: []string{"-vault-k8s-role: required"}},
		{name: "unknown method", args: []string{"-vault-auth", "ldap"}, want: []string{`-vault-auth "ldap": want token, approle or kubernetes`}},
		{name: "device path without the device", args: []string{"-vault-kv-path", "devices/{productKey}"}, want: []string{"-vault-kv-path", "{deviceName}"}},
		{name: "device path out of the mount", args: []string{"-vault-kv-path", "../{productKey}/{deviceName}"}, want: []string{"-vault-kv-path", "relative to the mount"}},
		{name: "empty mount", args: []string{"-vault-kv-mount", ""}, want: []string{"-vault-kv-mount, -vault-kv-field, -vault-transit-mount: must not be empty"}},
		{name: "everything at once", args: []string{"-vault-auth", "kubernetes", "-vault-kv-path", "x", "-vault-kv-field", ""},
			want: []string{"-vault-k8s-role", "-vault-kv-path", "must not be empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l Login
			var y Layout
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			l.Register(fs)
			y.Register(fs, "Transit mount")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, err := range append(l.Validate(), y.Validate()...) {
				msgs = append(msgs, err.Error())
			}
			got := strings.Join(msgs, "\n")
			if tc.want == nil && got != "" {
				t.Fatalf("errors for a good setting:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("errors lack %q:\n%s", w, got)
				}
			}
		})
	}
}
