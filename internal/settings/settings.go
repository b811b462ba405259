package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Command says how one command's settings are named outside its flags.
type Command struct {
	// Name is the command's name in messages ("not a signerd setting").
	Name string
	// EnvPrefix starts every variable of a setting, e.g. "SIGNERD_".
	EnvPrefix string
	// Ignore are EnvPrefix variables that are not settings but belong to
	// scripts around the command; a developer's shell may export them.
	Ignore map[string]bool
	// ConfigFlag is the flag naming the YAML file of settings; "" when the
	// command reads none.
	ConfigFlag string
	// ConfigExample is a setting the file's errors show as an example.
	ConfigExample string
	// TakesArgs: arguments follow the flags (a file, say); parsing stops
	// at the first one, as the flag package does, and they are returned.
	// Otherwise the command takes flags only, and any argument is an error.
	TakesArgs bool
	// Siblings are the flags of the command's other subcommands. One
	// environment serves all of them, so their variables are settings too:
	// not reported as unknown, and not applied to this subcommand.
	Siblings []*flag.FlagSet
}

// Result is what Load found besides the values it set.
type Result struct {
	// Set are the flags that some source set.
	Set map[string]bool
	// Args are the arguments after the flags (TakesArgs only).
	Args []string
}

// EnvName is the variable of flag name: EnvPrefix and the name in upper
// case, dashes as underscores.
func (c Command) EnvName(name string) string {
	return c.EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Load sets fs's flags from args, then every flag args did not set from
// its variable in env, then every flag neither set from the ConfigFlag
// file: the command line wins, as operators expect. It reports every
// problem of every source at once, joined. For -h it calls fs.Usage and
// returns flag.ErrHelp.
func (c Command) Load(fs *flag.FlagSet, args []string, env map[string]string) (Result, error) {
	res := Result{Set: map[string]bool{}}
	errs, rest, err := c.parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return res, err
	}
	res.Args = rest
	fs.Visit(func(f *flag.Flag) { res.Set[f.Name] = true })
	errs = append(errs, c.applyEnv(fs, env, res.Set)...)
	if c.ConfigFlag != "" {
		if f := fs.Lookup(c.ConfigFlag); f != nil && f.Value.String() != "" {
			errs = append(errs, c.applyConfigFile(fs, f.Value.String(), res.Set)...)
		}
	}
	return res, errors.Join(errs...)
}

// parseArgs parses the command line, going on past a bad flag so that
// every bad flag is reported, not only the first. The flag package's own
// messages ("parse error") do not say what was wanted: bad values get
// setError's instead.
func (c Command) parseArgs(fs *flag.FlagSet, args []string) ([]error, []string, error) {
	var last *setError
	restore := map[string]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		restore[f.Name] = f.Value
		f.Value = &checkedValue{Value: f.Value, flag: f, last: &last}
	})
	defer fs.VisitAll(func(f *flag.Flag) { f.Value = restore[f.Name] })
	// The flag package would print each error and the usage: errors are
	// returned instead, and the usage printed once, for -h only.
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	defer func() { fs.Usage = usage; fs.SetOutput(out) }()

	var errs []error
	var stray []string
	for rest := args; ; {
		last = nil
		err := fs.Parse(rest)
		next := fs.Args()
		switch {
		case err == nil && len(next) == 0:
			if len(stray) > 0 {
				errs = append(errs, fmt.Errorf("unexpected arguments %q: %s takes flags only (a flag's value may need quotes, or a misplaced space split it)", stray, fs.Name()))
			}
			return errs, nil, nil
		case err == nil && c.TakesArgs:
			return errs, next, nil
		case err == nil:
			// The flag package stops at the first non-flag: note it and
			// go on, so that the flags after it are still read.
			stray = append(stray, next[0])
			next = next[1:]
		case errors.Is(err, flag.ErrHelp):
			return nil, nil, err
		case last != nil:
			errs = append(errs, fmt.Errorf("-%s: %w", last.flag.Name, last))
		default:
			if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
				err = fmt.Errorf("-%s: no such flag%s (%s -h lists them)", name, c.didYouMean([]*flag.FlagSet{fs}, name, styleFlag), fs.Name())
				// "-grpc-adr :1": the unknown flag's value would
				// otherwise read as a stray argument.
				if bad := rest[len(rest)-len(next)-1]; !strings.Contains(bad, "=") && len(next) > 0 && !strings.HasPrefix(next[0], "-") {
					next = next[1:]
				}
			}
			errs = append(errs, err)
		}
		rest = next
	}
}

// checkedValue is a flag's value while the command line is parsed: it keeps
// the last error for parseArgs, which the flag package would flatten.
type checkedValue struct {
	flag.Value
	flag *flag.Flag
	last **setError
}

func (v *checkedValue) Set(s string) error {
	err := setFlag(v.flag, v.Value, s)
	if err != nil {
		*v.last = err
		return err
	}
	return nil
}

func (v *checkedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// setError is a value a flag does not take, with what it wants instead.
type setError struct {
	flag  *flag.Flag
	value string
	want  string
}

func (e *setError) Error() string { return fmt.Sprintf("%q is not %s", e.value, e.want) }

// setFlag sets a flag's value to s from any source; a bad value's error
// says what the flag wants, from its type and default.
func setFlag(f *flag.Flag, v flag.Value, s string) *setError {
	prev := v.String()
	if v.Set(s) == nil {
		return nil
	}
	// The flag package zeroes some values on a failed Set: keep the
	// previous one, so that later checks do not report a zero nobody set.
	_ = v.Set(prev)
	return &setError{flag: f, value: s, want: wants(f, v)}
}

func wants(f *flag.Flag, v flag.Value) string {
	g, _ := v.(flag.Getter)
	if g == nil {
		return "valid"
	}
	switch g.Get().(type) {
	case bool:
		return "a boolean (want true or false)"
	case int:
		return fmt.Sprintf("a whole number (want e.g. %s)", exampleOf(f, "10"))
	case float64:
		return fmt.Sprintf("a number (want e.g. %s)", exampleOf(f, "50"))
	case time.Duration:
		return fmt.Sprintf("a duration (want a number with a unit, e.g. %s; units ms, s, m, h)", exampleOf(f, "30s"))
	}
	return "valid"
}

func exampleOf(f *flag.Flag, fallback string) string {
	switch f.DefValue {
	case "", "0", "0s":
		return fallback
	}
	return f.DefValue
}

// applyEnv sets every flag that the command line did not set from its
// variable, and reports every EnvPrefix variable that names no setting: a
// misspelt variable in a manifest would otherwise leave its setting at the
// default without a word.
func (c Command) applyEnv(fs *flag.FlagSet, env map[string]string, set map[string]bool) []error {
	names := make([]string, 0, len(env))
	for k := range env {
		if strings.HasPrefix(k, c.EnvPrefix) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	all := append([]*flag.FlagSet{fs}, c.Siblings...)
	var errs []error
	for _, k := range names {
		flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, c.EnvPrefix), "_", "-"))
		f := fs.Lookup(flagName)
		switch {
		case c.Ignore[k]:
			continue
		case f == nil && c.EnvName(flagName) == k && c.sibling(flagName):
			continue // another subcommand's setting
		case f == nil || c.EnvName(flagName) != k:
			errs = append(errs, fmt.Errorf("%s: not a %s setting%s (settings are %s + a flag name in upper case, dashes as underscores; %s -h lists the flags)",
				k, c.Name, c.didYouMean(all, flagName, styleEnv), c.EnvPrefix, fs.Name()))
			continue
		case set[f.Name] || env[k] == "":
			continue
		}
		if err := setFlag(f, f.Value, env[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
		set[f.Name] = true
	}
	return errs
}

func (c Command) sibling(name string) bool {
	for _, s := range c.Siblings {
		if s.Lookup(name) != nil {
			return true
		}
	}
	return false
}

// Ways of writing a setting's name, for didYouMean.
const (
	styleFlag = iota // -grpc-addr
	styleEnv         // SIGNERD_GRPC_ADDR
	styleFile        // grpc-addr
)

// didYouMean suggests the setting closest to a misspelt name, written the
// way the caller wrote it.
func (c Command) didYouMean(sets []*flag.FlagSet, name string, style int) string {
	best, bestDist := "", 3 // farther than 2 edits is a guess, not a typo
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) {
			if d := editDistance(name, f.Name); d < bestDist {
				best, bestDist = f.Name, d
			}
		})
	}
	switch {
	case best == "":
		return ""
	case style == styleEnv:
		best = c.EnvName(best)
	case style == styleFlag:
		best = "-" + best
	}
	return fmt.Sprintf("; did you mean %s?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// applyConfigFile sets every flag named in the YAML file that neither the
// command line nor the environment set. Unknown names are errors, so a
// misspelt setting cannot silently fall back to its default.
func (c Command) applyConfigFile(fs *flag.FlagSet, path string, set map[string]bool) []error {
	opt := "-" + c.ConfigFlag
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", opt, err)}
	}
	var settings map[string]any
	if err := yaml.UnmarshalStrict(data, &settings); err != nil {
		return []error{fmt.Errorf("%s %s: %w", opt, path, err)}
	}
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		f := fs.Lookup(name)
		switch {
		case name == c.ConfigFlag:
			// One file of settings: it cannot name another.
			errs = append(errs, fmt.Errorf("%s %s: unknown setting %q (settings are flag names, e.g. %s)", opt, path, name, c.ConfigExample))
			continue
		case f == nil:
			errs = append(errs, fmt.Errorf("%s %s: unknown setting %q (settings are flag names, e.g. %s)%s", opt, path, name, c.ConfigExample, c.didYouMean([]*flag.FlagSet{fs}, name, styleFile)))
			continue
		case set[name]:
			continue
		}
		var s string
		switch x := settings[name].(type) {
		case string:
			s = x
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			s = fmt.Sprint(x)
		}
		if err := setFlag(f, f.Value, s); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %s: %w", opt, path, name, err))
			continue
		}
		set[name] = true
	}
	return errs
}

// Environ turns os.Environ's KEY=value list into a map.
func Environ(kvs []string) map[string]string {
	env := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}
