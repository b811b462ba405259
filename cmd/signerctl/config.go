package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signerd/signerd/internal/settings"
	"github.com/signerd/signerd/internal/vaultflags"
)

// envPrefix: every flag NAME can also be set as SIGNERCTL_NAME (upper case,
// dashes as underscores); the command line wins.
const envPrefix = "SIGNERCTL_"

// vaultFlags are signerd's Vault flags, with the same names and defaults
// (but a longer -vault-timeout: an import writes, in bulk).
type vaultFlags struct {
	vaultflags.Login
	vaultflags.Layout
	timeout time.Duration
}

func (v *vaultFlags) register(fs *flag.FlagSet) {
	v.Login.Register(fs)
	v.registerLayout(fs)
	fs.DurationVar(&v.timeout, "vault-timeout", 10*time.Second, "bound on one Vault request")
}

// registerLayout registers the flags saying where secrets go (all that
// "signerctl policy" needs).
func (v *vaultFlags) registerLayout(fs *flag.FlagSet) {
	v.Layout.Register(fs, "Transit mount for -transit")
}

func (v *vaultFlags) validate() []error {
	var errs []error
	errs = append(errs, v.Login.Validate()...)
	if v.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-vault-timeout %s: must be positive", v.timeout))
	}
	errs = append(errs, v.Layout.Validate()...)
	return errs
}

// importConfig is everything "signerctl import" is told.
type importConfig struct {
	file             string
	dryRun, offline  bool
	transit          bool
	concurrency      int
	maxErrors        int
	progress         string
	progressInterval time.Duration
	vault            vaultFlags
}

const maxConcurrency = 256

// command is how signerctl's settings are named in the environment. Its
// subcommands share one environment: each one's variables are settings of
// the others too (siblings), not unknown names.
func command(self string) settings.Command {
	c := settings.Command{Name: "signerctl", EnvPrefix: envPrefix, TakesArgs: true}
	var ic importConfig
	var v vaultFlags
	var transit bool
	for name, fs := range map[string]*flag.FlagSet{"import": newImportFlags(&ic, io.Discard), "policy": newPolicyFlags(&v, &transit, io.Discard)} {
		if name != self {
			c.Siblings = append(c.Siblings, fs)
		}
	}
	return c
}

func newImportFlags(c *importConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("signerctl import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.dryRun, "dry-run", false, "validate the file and report what would happen, writing nothing (reads Vault unless -offline)")
	fs.BoolVar(&c.offline, "offline", false, "with -dry-run: validate the file only, without contacting Vault")
	fs.BoolVar(&c.transit, "transit", false, "also import each secret into Vault Transit as an hmac key (BYOK), for products in Transit mode")
	fs.IntVar(&c.concurrency, "concurrency", 16, fmt.Sprintf("devices written to Vault at once (1–%d)", maxConcurrency))
	fs.IntVar(&c.maxErrors, "max-errors", 100, "stop handing out rows after this many Vault errors (0: never stop); re-run to continue")
	fs.StringVar(&c.progress, "progress", "auto", "progress on stderr: auto (a bar on a terminal, plain lines otherwise), bar, plain or off")
	fs.DurationVar(&c.progressInterval, "progress-interval", 5*time.Second, "with plain progress: time between lines")
	c.vault.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: signerctl import [flags] FILE.csv\n\n"+
			"FILE.csv is the IoT Platform console's device export: a header line naming\n"+
			"ProductKey, DeviceName and DeviceSecret columns (any case, any order; other\n"+
			"columns are ignored), then one device per row. Every flag can also be set as\n"+
			"%sNAME (e.g. %sVAULT_ADDR). See docs/IMPORT.md.\n\n", envPrefix, envPrefix)
		fs.PrintDefaults()
	}
	return fs
}

// parseImport reads the flags, then fills every flag not given on the
// command line from its environment variable, as signerd does. It reports
// every problem at once.
func parseImport(args []string, env map[string]string, stderr io.Writer) (importConfig, error) {
	var c importConfig
	fs := newImportFlags(&c, stderr)
	res, err := command("import").Load(fs, args, env)
	if errors.Is(err, flag.ErrHelp) {
		return c, err
	}
	errs := []error{err}
	if len(res.Args) != 1 {
		for _, a := range res.Args[min(1, len(res.Args)):] {
			if strings.HasPrefix(a, "-") {
				return c, errors.Join(err, fmt.Errorf("flag %s after FILE.csv: flags go before the file", a))
			}
		}
		return c, errors.Join(err, fmt.Errorf("want exactly one FILE.csv argument, got %d (see signerctl import -h)", len(res.Args)))
	}
	c.file = res.Args[0]
	if !c.offline {
		errs = append(errs, c.vault.validate()...)
	}
	if c.offline && !c.dryRun {
		errs = append(errs, errors.New("-offline: only with -dry-run (an import needs Vault)"))
	}
	if c.offline && c.transit {
		errs = append(errs, errors.New("-offline and -transit: -offline does not contact Vault; drop one"))
	}
	if c.concurrency < 1 || c.concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("-concurrency %d: must be between 1 and %d", c.concurrency, maxConcurrency))
	}
	if c.maxErrors < 0 {
		errs = append(errs, fmt.Errorf("-max-errors %d: must not be negative", c.maxErrors))
	}
	switch c.progress {
	case "auto", "bar", "plain", "off":
	default:
		errs = append(errs, fmt.Errorf("-progress %q: want auto, bar, plain or off", c.progress))
	}
	if c.progressInterval <= 0 {
		errs = append(errs, fmt.Errorf("-progress-interval %s: must be positive", c.progressInterval))
	}
	return c, errors.Join(errs...)
}
