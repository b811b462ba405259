package azure_test

import (
	"bytes"
	"crypto/fips140"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/azure"
)

// TestFIPS140Only checks that a key crypto/hmac would refuse in FIPS
// 140-only mode (shorter than 14 bytes) is an error, not a panic, and that
// a long enough one signs. Unless the test binary already runs with
// GODEBUG=fips140=only, it re-runs itself that way.
func TestFIPS140Only(t *testing.T) {
	if !fips140.Enforced() {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestFIPS140Only$", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG=fips140=only")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFIPS140Only")) {
			t.Fatalf("GODEBUG=fips140=only %s: %v\n%s", exe, err, out)
		}
		return
	}
	req := azure.HubRequest{Hub: "myhub", DeviceID: "dev-001", IssuedAt: time.Unix(1700000000, 0)}
	if _, err := azure.SignHub(req, azure.KeyMAC([]byte("0123456789abc"))); !errors.Is(err, azure.ErrKey) {
		t.Errorf("13-byte key: error %v, want ErrKey", err)
	}
	if _, err := azure.DerivedMAC(azure.KeyMAC([]byte("0123456789abc")), "dev-001"); !errors.Is(err, azure.ErrKey) {
		t.Errorf("13-byte group key: error %v, want ErrKey", err)
	}
	if _, err := azure.SignHub(req, azure.KeyMAC([]byte("0123456789abcd"))); err != nil {
		t.Errorf("14-byte key: %v", err)
	}
	// A derived key is 32 bytes: always long enough.
	mac, err := azure.DerivedMAC(azure.KeyMAC([]byte("0123456789abcdef")), "dev-001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := azure.SignDPS(azure.DPSRequest{IDScope: "0ne00000A0A", RegistrationID: "dev-001", IssuedAt: time.Unix(1700000000, 0)}, mac); err != nil {
		t.Errorf("derived key: %v", err)
	}
}
