package layers

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/signerd/signerd"

// allowed maps a package (or a "prefix/..." pattern) to the signerd
// packages it may import (non-test code); the first matching rule wins.
// Anything not listed here may import nothing of signerd's.
var allowed = []struct {
	pkg     string
	imports []string
}{
	{"device", nil},
	{"proto/signer/v1", nil},
	{"signing", nil},
	{"signing/...", []string{"device"}},
	{"auth", []string{"device", "proto/signer/v1"}},
	{"secrets", []string{"device"}},
	{"limits", nil},
	{"metrics", nil},
	{"tlsreload", nil},
	{"audit", []string{"auth", "device"}},
	{"platform", []string{"device", "secrets", "proto/signer/v1"}},
	// Alibaba's endpoint client and its emulator.
	{"platform/aliyun", nil},
	{"platform/aliyun/aliyuntest", []string{"platform/aliyun", "signing/aliyun", "device"}},
	{"platform/internal/platformtest", []string{"device", "secrets", "platform", "internal/..."}},
	{"platform/internal/...", []string{"device", "secrets", "platform"}},
	// Every other platform: the seam, its own sign rules, nothing of
	// another platform's.
	{"platform/{p}", []string{"platform", "signing/{p}", "device", "secrets", "proto/signer/v1", "platform/internal/..."}},
	{"service", []string{"audit", "auth", "device", "platform", "platform/aliyun", "proto/signer/v1", "secrets", "signing/aliyun"}},
	{"server", []string{"audit", "auth", "device", "limits", "metrics", "proto/signer/v1", "service", "tlsreload"}},
	{"deploy", nil},
	{"internal/...", []string{"..."}},
	{"examples/...", []string{"..."}},
	{"cmd/...", []string{"..."}},
	{"tools/...", []string{"..."}},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

// rule returns the imports allowed to p (module-relative), with {p}
// bound, and whether a rule matched.
func rule(p string) ([]string, bool) {
	for _, r := range allowed {
		if r.pkg == p {
			return r.imports, true
		}
		if prefix, ok := strings.CutSuffix(r.pkg, "/..."); ok && strings.HasPrefix(p, prefix+"/") {
			return r.imports, true
		}
		if prefix, ok := strings.CutSuffix(r.pkg, "/{p}"); ok {
			if name, ok := strings.CutPrefix(p, prefix+"/"); ok && !strings.Contains(name, "/") {
				out := make([]string, len(r.imports))
				for i, imp := range r.imports {
					out[i] = strings.ReplaceAll(imp, "{p}", name)
				}
				return out, true
			}
		}
	}
	return nil, false
}

func permits(imports []string, imp string) bool {
	for _, a := range imports {
		if a == "..." || a == imp {
			return true
		}
		if prefix, ok := strings.CutSuffix(a, "/..."); ok && strings.HasPrefix(imp, prefix+"/") {
			return true
		}
	}
	return false
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if rel == "" {
			continue
		}
		seen++
		allow, ok := rule(rel)
		if !ok {
			t.Errorf("package %s has no layering rule: add one to allowed", rel)
			continue
		}
		for _, imp := range p.Imports {
			irel, ours := strings.CutPrefix(imp, module+"/")
			if !ours {
				continue
			}
			if strings.HasPrefix(irel, "cmd/") {
				t.Errorf("%s imports the command %s", rel, irel)
			}
			if !permits(allow, irel) {
				t.Errorf("%s imports %s, which docs/ARCHITECTURE.md's layering does not allow", rel, irel)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("go list named only %d packages", seen)
	}
}
