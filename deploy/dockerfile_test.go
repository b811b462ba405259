package deploy_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	from, name string
	ins        []instruction
}

// parseDockerfile splits a Dockerfile into stages. There is no Docker
// engine here to build it; this reads what it says.
func parseDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s: %s before the first FROM", file, in.cmd)
			}
			return
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("%s: want a multi-stage build, got %d stage(s)", file, len(stages))
	}
	return stages
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	final := stages[len(stages)-1]
	var build stage
	for _, s := range stages[:len(stages)-1] {
		for _, r := range s.all("RUN") {
			if strings.Contains(r, "go build") {
				build = s
			}
		}
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)

	checks := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"final stage is distroless static or scratch", func(t *testing.T) {
			if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
				t.Errorf("final stage FROM %s", final.from)
			}
		}},
		{"final stage runs as non-root", func(t *testing.T) {
			users := final.all("USER")
			if len(users) == 0 {
				t.Fatal("no USER in the final stage")
			}
			// Numeric, so the kubelet can enforce runAsNonRoot.
			uid, gid, _ := strings.Cut(users[len(users)-1], ":")
			for _, id := range []string{uid, gid} {
				if n, err := strconv.Atoi(id); id != "" && (err != nil || n == 0) {
					t.Errorf("USER %s: want a numeric non-root uid:gid", users[len(users)-1])
				}
			}
			if uid != "65532" {
				t.Errorf("USER %s: want 65532, the uid deploy/k8s runs as", uid)
			}
		}},
		{"entrypoint is the copied binary", func(t *testing.T) {
			eps := final.all("ENTRYPOINT")
			if len(eps) != 1 {
				t.Fatalf("want one ENTRYPOINT, got %q", eps)
			}
			var argv []string
			if err := json.Unmarshal([]byte(eps[0]), &argv); err != nil || len(argv) == 0 {
				t.Fatalf("ENTRYPOINT %s: want exec form (there is no shell in the image): %v", eps[0], err)
			}
			copied := false
			for _, c := range final.all("COPY") {
				f := strings.Fields(c)
				copied = copied || strings.HasPrefix(c, "--from="+build.name) && f[len(f)-1] == argv[0]
			}
			if !copied {
				t.Errorf("ENTRYPOINT %s is not copied from the build stage", argv[0])
			}
			if len(final.all("RUN")) > 0 {
				t.Error("RUN in the final stage: it has no shell")
			}
		}},
		{"exposes the manifests' ports", func(t *testing.T) {
			var exposed []int32
			for _, e := range final.all("EXPOSE") {
				for _, p := range strings.Fields(e) {
					n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
					if err != nil {
						t.Fatalf("EXPOSE %s: %v", p, err)
					}
					exposed = append(exposed, int32(n))
				}
			}
			var ports []int32
			for _, p := range render(t, "k8s/base").container(t).Ports {
				ports = append(ports, p.ContainerPort)
			}
			slices.Sort(exposed)
			slices.Sort(ports)
			if !slices.Equal(exposed, ports) {
				t.Errorf("EXPOSE %v, the Deployment's container ports are %v", exposed, ports)
			}
		}},
		{"builder", func(t *testing.T) {
			if build.name == "" {
				t.Fatal("no named stage runs go build")
			}
			if want := "golang:" + string(goVersion[1]); build.from != want && !strings.HasPrefix(build.from, want+"@") && !strings.HasPrefix(build.from, want+".") {
				t.Errorf("build stage FROM %s, want %s (go.mod's Go)", build.from, want)
			}
			var run string
			for _, r := range build.all("RUN") {
				if strings.Contains(r, "go build") {
					run = r
				}
			}
			want := `go build ` + strings.Join(buildFlags[:2], " ") + ` "-s -w -X main.version=${VERSION}"`
			for _, s := range []string{"CGO_ENABLED=0", want, "./cmd/signerd"} {
				if !strings.Contains(run, s) {
					t.Errorf("go build step lacks %q:\n%s", s, run)
				}
			}
			if !slices.ContainsFunc(build.all("ARG"), func(a string) bool { return strings.HasPrefix(a, "VERSION") }) {
				t.Error("build stage has no ARG VERSION")
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.fn)
	}
}

// TestStaticBinary checks the binary the Dockerfile builds: static (it runs
// on distroless static or scratch, which have no libc or dynamic loader),
// without local paths, with the stamped version.
func TestStaticBinary(t *testing.T) {
	bin := signerdBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %s: not a static binary", p.Type)
		}
	}
	for _, name := range []string{".interp", ".dynamic", ".dynsym"} {
		if f.Section(name) != nil {
			t.Errorf("section %s: not a static binary", name)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("links %v", libs)
	}

	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(root)
	if bytes.Contains(data, []byte(abs+"/")) || bytes.Contains(data, []byte(tmpDir)) {
		t.Error("the binary holds build-machine paths: not built with -trimpath")
	}

	cmd := exec.Command(bin, "-version")
	cmd.Env = signerdEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("signerd -version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "signerd test ") && strings.TrimSpace(string(out)) != "signerd test" {
		t.Errorf("signerd -version printed %q, want the stamped version: signerd test …", out)
	}
}

// TestDockerignore checks that the build context keeps what go build needs
// (TestStaticBinary builds from it) and drops what the image must not see.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	rules := parseDockerignore(string(data))
	for p, want := range map[string]bool{
		".git/config": true, "cmd/signerd/signerd": true, "deploy/vault/policy.hcl": true,
		"secrets/vault_test.go": true, "signing/aliyun/testdata/mqtt_sign.json": true,
		"go.mod": false, "go.sum": false, "cmd/signerd/main.go": false,
		"proto/signer/v1/signer.swagger.json": false, // embedded by the binary
	} {
		if got := dockerignored(rules, p); got != want {
			t.Errorf("%s: ignored %v, want %v", p, got, want)
		}
	}
}
