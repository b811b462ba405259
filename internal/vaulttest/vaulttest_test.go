package vaulttest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skip instead of ending
// the test, so that Shared.Get's failure can be checked.
type recorder struct {
	testing.TB
	fatal   []string
	skipped bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, a ...any) {
	r.fatal = append(r.fatal, fmt.Sprintf(format, a...))
}
func (r *recorder) Skip(...any)          { r.skipped = true }
func (r *recorder) Skipf(string, ...any) { r.skipped = true }
func (r *recorder) SkipNow()             { r.skipped = true }

// Without SIGNERD_VAULT_BIN a test that needs Vault fails, saying how to
// run it; it must not skip, or a missing variable would pass as green.
func TestSharedWithoutBinaryFails(t *testing.T) {
	t.Setenv(EnvBin, "")
	var s Shared
	for i := 0; i < 2; i++ { // the second caller gets the same answer
		r := &recorder{}
		if srv := s.Get(r); srv != nil {
			t.Fatalf("Get returned a server without %s", EnvBin)
		}
		if r.skipped || len(r.fatal) != 1 {
			t.Fatalf("Get: skipped %v, fatal %q; want one Fatalf", r.skipped, r.fatal)
		}
		for _, want := range []string{EnvBin, "scripts/test.sh", "vault-build.sh"} {
			if !strings.Contains(r.fatal[0], want) {
				t.Errorf("Get's failure %q does not mention %s", r.fatal[0], want)
			}
		}
	}
	dir := s.dir
	s.Close(true) // no server log to keep: the directory goes
	if _, err := os.Stat(dir); dir == "" || !os.IsNotExist(err) {
		t.Errorf("log directory %q after Close: %v", dir, err)
	}
}

// SharedCluster fails the same way.
func TestSharedClusterWithoutBinaryFails(t *testing.T) {
	t.Setenv(EnvBin, "")
	var s SharedCluster
	for i := 0; i < 2; i++ {
		r := &recorder{}
		if c := s.Get(r); c != nil {
			t.Fatalf("Get returned a cluster without %s", EnvBin)
		}
		if r.skipped || len(r.fatal) != 1 {
			t.Fatalf("Get: skipped %v, fatal %q; want one Fatalf", r.skipped, r.fatal)
		}
		if !strings.Contains(r.fatal[0], EnvBin) {
			t.Errorf("Get's failure %q does not mention %s", r.fatal[0], EnvBin)
		}
	}
	dir := s.dir
	s.Close(false)
	if _, err := os.Stat(dir); dir == "" || !os.IsNotExist(err) {
		t.Errorf("cluster directory %q after Close: %v", dir, err)
	}
}

// A package's TestMain must not start Vault (or look for its binary):
// when SIGNERD_VAULT_BIN is unset it could only exit, and take the
// package's tests that need no Vault with it. Vault-backed tests start
// their server themselves (StartT, or Shared.Get for one per package).
func TestNoTestMainStartsVault(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	banned := map[string]bool{"Start": true, "StartBare": true, "StartT": true, "StartBareT": true, "StartCluster": true, "Bin": true}
	mains := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "tools") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || fn.Name.Name != "TestMain" {
				continue
			}
			mains++
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "vaulttest" && banned[sel.Sel.Name] {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s: TestMain calls vaulttest.%s; start Vault lazily from the tests that need it (vaulttest.Shared)", rel, sel.Sel.Name)
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mains == 0 {
		t.Fatal("found no TestMain at all: is the module root right?")
	}
}
