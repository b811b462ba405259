package aliyun_test

import (
	"bytes"
	"crypto/fips140"
	"os"
	"os/exec"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

// TestFIPS140Only checks that requests crypto/hmac would refuse in FIPS
// 140-only mode return errors instead of panicking. Unless the test binary
// already runs with GODEBUG=fips140=only, it re-runs itself that way.
func TestFIPS140Only(t *testing.T) {
	if !fips140.Enforced() {
		if testing.Short() {
			t.Skip("skipping subprocess test in short mode")
		}
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

	key14 := []byte("0123456789abcd")
	tests := []struct {
		name      string
		m         signing.Method
		secret    []byte
		want      string
		wantField string
		wantMsg   string
	}{
		{"sha256 14-byte key", signing.MethodHMACSHA256, key14,
			"b293b3c4d0a2bcd0cde079c242136517eb4a678ada95be7d077dd9b62e2dda64", "", ""},
		{"sha256 13-byte key", signing.MethodHMACSHA256, key14[:13], "",
			"secret", "secret: must be at least 14 bytes in FIPS 140-only mode"},
		{"sha1", signing.MethodHMACSHA1, key14, "",
			"signMethod", "signMethod: must be hmacsha256 in FIPS 140-only mode"},
		{"md5", signing.MethodHMACMD5, key14, "",
			"signMethod", "signMethod: must be hmacsha256 in FIPS 140-only mode"},
	}
	for _, tc := range tests {
		got, err := signing.HMACHex(tc.m, tc.secret, "content")
		if tc.wantField == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: HMACHex = %q, %v; want %q, nil", tc.name, got, err, tc.want)
			}
			continue
		}
		checkFieldError(t, tc.name+": HMACHex", err, tc.wantField, tc.wantMsg)
	}

	req := signing.ConnectRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Timestamp:  "1700000000000",
		Method:     signing.MethodHMACSHA1,
		Transport:  signing.TransportTLS,
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	_, err := signing.SignConnect(req, signing.DeviceSecretMAC(secret))
	checkFieldError(t, "SignConnect(hmacsha1)", err, "signMethod", "signMethod: must be hmacsha256 in FIPS 140-only mode")

	req.Method = signing.MethodHMACSHA256
	_, err = signing.SignConnect(req, signing.DeviceSecretMAC(secret[:13]))
	checkFieldError(t, "SignConnect(13-byte secret)", err, "deviceSecret", "deviceSecret: must be at least 14 bytes in FIPS 140-only mode")

	got, err := signing.SignConnect(req, signing.DeviceSecretMAC(secret))
	if want := "18cf6aa9b2fadd36cc0833c68a44b0c2bafd8998ba1f917229e4a9b812ab0d2f"; err != nil || got.Password != want {
		t.Errorf("SignConnect(hmacsha256) = %+v, %v; want password %q", got, err, want)
	}
}
