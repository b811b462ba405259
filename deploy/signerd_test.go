package deploy_test

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The module root, seen from this package's directory (go test's working
// directory).
const root = ".."

var (
	tmpDir string

	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if tmpDir, err = os.MkdirTemp("", "signerd-deploy-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

// buildFlags are the Dockerfile's `go build` flags with VERSION=test; the
// Dockerfile test checks that the Dockerfile still uses them.
var buildFlags = []string{"-trimpath", "-ldflags", "-s -w -X main.version=test"}

// signerdBinary builds cmd/signerd once per test run the way the Dockerfile
// does: from a copy of what the Docker build context holds (.dockerignore
// applied), with CGO_ENABLED=0 and the Dockerfile's flags. It returns the
// binary's path: the signerd the image runs.
func signerdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildBin, buildErr = buildFromContext()
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func buildFromContext() (string, error) {
	ctxDir := filepath.Join(tmpDir, "context")
	if err := copyContext(root, ctxDir); err != nil {
		return "", fmt.Errorf("copy the Docker build context: %w", err)
	}
	bin := filepath.Join(tmpDir, "signerd")
	args := append(append([]string{"build"}, buildFlags...), "-o", bin, "./cmd/signerd")
	cmd := exec.Command("go", args...)
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("in the Docker build context (.dockerignore applied): CGO_ENABLED=0 go %q: %v\n%s", args, err, out)
	}
	return bin, nil
}

// copyContext copies the files of src that .dockerignore lets into a
// Docker build context to dst.
func copyContext(src, dst string) error {
	data, err := os.ReadFile(filepath.Join(src, ".dockerignore"))
	if err != nil {
		return err
	}
	rules := parseDockerignore(string(data))
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		if dockerignored(rules, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type ignoreRule struct {
	pattern string
	negate  bool
}

// parseDockerignore reads .dockerignore's patterns (comments and blank
// lines skipped, leading "/" dropped, "!" re-includes).
func parseDockerignore(data string) []ignoreRule {
	var rules []ignoreRule
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if p, ok := strings.CutPrefix(line, "!"); ok {
			r.negate, line = true, p
		}
		r.pattern = path.Clean(strings.TrimPrefix(line, "/"))
		rules = append(rules, r)
	}
	return rules
}

// dockerignored reports whether Docker leaves rel (slash-separated, relative
// to the context) out: the last rule matching it or a parent directory wins.
func dockerignored(rules []ignoreRule, rel string) bool {
	out := false
	parts := strings.Split(rel, "/")
	for _, r := range rules {
		for i := 1; i <= len(parts); i++ {
			if globMatch(r.pattern, strings.Join(parts[:i], "/")) {
				out = !r.negate
				break
			}
		}
	}
	return out
}

// globMatch is path.Match with Docker's "**/" (any number of directories).
func globMatch(pattern, name string) bool {
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		segs := strings.Split(name, "/")
		for i := range segs {
			if globMatch(rest, strings.Join(segs[i:], "/")) {
				return true
			}
		}
		return false
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

// signerdEnv is this process's environment without SIGNERD_* variables, so
// a developer's settings cannot change what signerd does in a test.
func signerdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGNERD_") {
			env = append(env, kv)
		}
	}
	return env
}

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)\b`)

// signerdFlags returns the flags `signerd -h` lists.
func signerdFlags(t *testing.T) map[string]bool {
	t.Helper()
	cmd := exec.Command(signerdBinary(t), "-h")
	cmd.Env = signerdEnv()
	out, _ := cmd.CombinedOutput() // the exit code of -h does not matter here
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 || !flags["grpc-addr"] {
		t.Fatalf("signerd -h lists no flags:\n%s", out)
	}
	return flags
}
