package settings

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type toy struct {
	addr    string
	on      bool
	n       int
	rate    float64
	wait    time.Duration
	cfgFile string
}

func toyFlags(c *toy) *flag.FlagSet {
	fs := flag.NewFlagSet("toy", flag.ContinueOnError)
	fs.StringVar(&c.addr, "listen-addr", ":1", "")
	fs.BoolVar(&c.on, "enabled", false, "")
	fs.IntVar(&c.n, "count", 10, "")
	fs.Float64Var(&c.rate, "rate", 2, "")
	fs.DurationVar(&c.wait, "wait", time.Second, "")
	fs.StringVar(&c.cfgFile, "config", "", "")
	return fs
}

var toyCmd = Command{Name: "toy", EnvPrefix: "TOY_", Ignore: map[string]bool{"TOY_SCRIPT_DIR": true}, ConfigFlag: "config", ConfigExample: "listen-addr"}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPrecedence: the command line wins over the environment, which wins
// over the file; Set holds what any source set.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, "listen-addr: file\ncount: 3\nrate: 0.5\nenabled: true\n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    toy
		wantSet []string
	}{
		{"defaults", nil, nil, toy{addr: ":1", n: 10, rate: 2, wait: time.Second}, nil},
		{"file", []string{"-config", file}, nil, toy{addr: "file", n: 3, rate: 0.5, on: true, wait: time.Second, cfgFile: file},
			[]string{"config", "count", "enabled", "listen-addr", "rate"}},
		{"environment over file", []string{"-config", file}, map[string]string{"TOY_COUNT": "4", "TOY_ENABLED": "false"},
			toy{addr: "file", n: 4, rate: 0.5, wait: time.Second, cfgFile: file}, []string{"config", "count", "enabled", "listen-addr", "rate"}},
		{"command line over both", []string{"-config", file, "-count", "5"}, map[string]string{"TOY_COUNT": "4"},
			toy{addr: "file", n: 5, rate: 0.5, on: true, wait: time.Second, cfgFile: file}, []string{"config", "count", "enabled", "listen-addr", "rate"}},
		{"file named by the environment", nil, map[string]string{"TOY_CONFIG": file},
			toy{addr: "file", n: 3, rate: 0.5, on: true, wait: time.Second, cfgFile: file}, []string{"config", "count", "enabled", "listen-addr", "rate"}},
		{"empty variable is unset", []string{"-count", "5"}, map[string]string{"TOY_LISTEN_ADDR": ""},
			toy{addr: ":1", n: 5, rate: 2, wait: time.Second}, []string{"count"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c toy
			res, err := toyCmd.Load(toyFlags(&c), tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Errorf("got %+v, want %+v", c, tc.want)
			}
			var set []string
			for _, n := range []string{"config", "count", "enabled", "listen-addr", "rate", "wait"} {
				if res.Set[n] {
					set = append(set, n)
				}
			}
			if strings.Join(set, ",") != strings.Join(tc.wantSet, ",") {
				t.Errorf("Set = %v, want %v", set, tc.wantSet)
			}
		})
	}
}

// TestErrors: every problem of every source in one error, each naming the
// flag, variable or file key and saying what was wanted.
func TestErrors(t *testing.T) {
	file := writeFile(t, "cuont: 1\nrate: fast\nconfig: x\n")
	args := []string{"-count", "1.5", "-rate=x", "-lisen-addr", "v", "-enabled=maybe", "stray", "-config", file}
	env := map[string]string{"TOY_WAIT": "soon", "TOY_RAT": "1", "TOY_FAR_OFF_NAME": "1", "TOY_SCRIPT_DIR": "/x", "TOYX": "1", "TOY_count": "1"}
	var c toy
	_, err := toyCmd.Load(toyFlags(&c), args, env)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`-count: "1.5" is not a whole number (want e.g. 10)`,
		`-rate: "x" is not a number (want e.g. 2)`,
		`-lisen-addr: no such flag; did you mean -listen-addr? (toy -h lists them)`,
		`-enabled: "maybe" is not a boolean (want true or false)`,
		`unexpected arguments ["stray"]: toy takes flags only`,
		`TOY_WAIT: "soon" is not a duration (want a number with a unit, e.g. 1s; units ms, s, m, h)`,
		`TOY_RAT: not a toy setting; did you mean TOY_RATE? (settings are TOY_ + a flag name`,
		`TOY_FAR_OFF_NAME: not a toy setting (settings are`,
		`TOY_count: not a toy setting; did you mean TOY_COUNT?`,
		`-config ` + file + `: unknown setting "cuont" (settings are flag names, e.g. listen-addr); did you mean count?`,
		`-config ` + file + `: unknown setting "config"`,
		`-config ` + file + `: rate: "fast" is not a number`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, notWant := range []string{"TOY_SCRIPT_DIR", "TOYX", "parse error", `"v"`, "did you mean config?"} {
		if strings.Contains(err.Error(), notWant) {
			t.Errorf("error has %q:\n%v", notWant, err)
		}
	}
	// A bad value keeps the default, not a zero the flag package left.
	if c.n != 10 || c.rate != 2 || c.wait != time.Second {
		t.Errorf("bad values changed the settings: %+v", c)
	}
}

// TestArgs: a command that takes arguments gets them, and flags after the
// first argument are arguments too, for the command to refuse.
func TestArgs(t *testing.T) {
	cmd := toyCmd
	cmd.TakesArgs = true
	var c toy
	res, err := cmd.Load(toyFlags(&c), []string{"-count", "2", "file.csv", "-enabled"}, nil)
	if err != nil || c.n != 2 || c.on || strings.Join(res.Args, " ") != "file.csv -enabled" {
		t.Errorf("Load = %v, %+v, args %q", err, c, res.Args)
	}
}

// TestSiblings: another subcommand's variables are settings (no error) but
// are not applied; a misspelt one is still found.
func TestSiblings(t *testing.T) {
	other := flag.NewFlagSet("toy other", flag.ContinueOnError)
	other.Int("concurrency", 1, "")
	cmd := toyCmd
	cmd.Siblings = []*flag.FlagSet{other}
	var c toy
	if _, err := cmd.Load(toyFlags(&c), nil, map[string]string{"TOY_CONCURRENCY": "bogus", "TOY_COUNT": "3"}); err != nil || c.n != 3 {
		t.Errorf("sibling's variable: %v, %+v", err, c)
	}
	_, err := cmd.Load(toyFlags(&c), nil, map[string]string{"TOY_CONCURENCY": "4"})
	if err == nil || !strings.Contains(err.Error(), "did you mean TOY_CONCURRENCY?") {
		t.Errorf("misspelt sibling variable: %v", err)
	}
}

func TestHelp(t *testing.T) {
	var c toy
	fs := toyFlags(&c)
	calls := 0
	fs.Usage = func() { calls++ }
	fs.SetOutput(io.Discard)
	_, err := toyCmd.Load(fs, []string{"-count", "x", "-h"}, nil)
	if !errors.Is(err, flag.ErrHelp) || calls != 1 {
		t.Errorf("-h: %v, usage printed %d times; want ErrHelp and once", err, calls)
	}
}

func TestEnviron(t *testing.T) {
	got := Environ([]string{"A=1", "B=x=y", "C=", "junk"})
	if len(got) != 3 || got["A"] != "1" || got["B"] != "x=y" || got["C"] != "" {
		t.Errorf("Environ = %v", got)
	}
}
