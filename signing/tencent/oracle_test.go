package tencent_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOracleRegenerates runs the independent Python implementation
// (tools/oracle/iotsign/gen.py) into a temporary directory and checks that
// it writes the committed vectors byte for byte: the vectors the Go tests
// check are the oracle's, not a copy someone edited. CI machines have
// python3 (standard library only); its absence is a failure, not a skip.
func TestOracleRegenerates(t *testing.T) {
	const platform = "tencent"
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required to check the vectors against the oracle: %v", err)
	}
	out := t.TempDir()
	cmd := exec.Command(python, filepath.Join("..", "..", "tools", "oracle", "iotsign", "gen.py"), "--out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.py: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(filepath.Join(out, "signing", platform, "testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("testdata/vectors.json differs from what tools/oracle/iotsign/gen.py writes: run it and commit the result")
	}
}
