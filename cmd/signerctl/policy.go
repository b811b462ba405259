package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// runPolicy prints the least-privilege Vault policy for "signerctl import"
// with the same layout flags: create and read device secrets, never update
// them, so that even the token cannot overwrite a device.
func runPolicy(args []string, env map[string]string, stdout, stderr io.Writer) int {
	var v vaultFlags
	var transit bool
	fs := newPolicyFlags(&v, &transit, stderr)
	c := command("policy")
	c.TakesArgs = false
	if _, err := c.Load(fs, args, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "signerctl policy:", err)
		return exitUsage
	}
	p, err := importPolicy(v.KVMount, v.KVPath, v.TransitMount, transit)
	if err != nil {
		fmt.Fprintln(stderr, "signerctl policy:", err)
		return exitUsage
	}
	fmt.Fprint(stdout, p)
	return exitOK
}

func newPolicyFlags(v *vaultFlags, transit *bool, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("signerctl policy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(transit, "transit", false, "include what -transit needs")
	v.registerLayout(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: signerctl policy [flags]\n\nPrints the Vault policy (HCL) that \"signerctl import\" needs with the same flags.\n\n")
		fs.PrintDefaults()
	}
	return fs
}

// importPolicy renders the policy. Each path segment holding {productKey}
// or {deviceName} becomes "+", which matches exactly one segment (names
// cannot contain '/').
func importPolicy(kvMount, kvPath, transitMount string, transit bool) (string, error) {
	if !strings.Contains(kvPath, "{productKey}") || !strings.Contains(kvPath, "{deviceName}") {
		return "", fmt.Errorf("-vault-kv-path %q: must contain {productKey} and {deviceName}", kvPath)
	}
	segs := strings.Split(strings.Trim(kvPath, "/"), "/")
	for i, s := range segs {
		if strings.Contains(s, "{productKey}") || strings.Contains(s, "{deviceName}") {
			segs[i] = "+"
		}
	}
	kvMount = strings.Trim(kvMount, "/")
	var b strings.Builder
	fmt.Fprintf(&b, `# Vault policy for "signerctl import" (printed by "signerctl policy").
# KV v2: create device secrets and read them back (re-runs compare), never
# update: Vault refuses a write to an existing device with 403 even without
# check-and-set. Metadata read lets -dry-run tell a deleted device from an
# absent one.
path "%[1]s/data/%[2]s" {
  capabilities = ["create", "read"]
}
path "%[1]s/metadata/%[2]s" {
  capabilities = ["read"]
}
`, kvMount, strings.Join(segs, "/"))
	if transit {
		fmt.Fprintf(&b, `# Transit (-transit): import each secret as an hmac key (BYOK, wrapped
# with Transit's wrapping key); an HMAC checks an existing key. Keys are not
# exportable; no key can be read back, deleted or rotated with this policy.
path "%[1]s/wrapping_key" {
  capabilities = ["read"]
}
path "%[1]s/keys/+" {
  capabilities = ["read"]
}
path "%[1]s/keys/+/import" {
  capabilities = ["update"]
}
path "%[1]s/hmac/+/sha2-256" {
  capabilities = ["update"]
}
`, strings.Trim(transitMount, "/"))
	}
	return b.String(), nil
}
