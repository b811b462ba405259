// Command signerctl is signerd's operator tool. Its import command loads the
// IoT Platform console's device export (CSV) into Vault; see docs/IMPORT.md.
//
//	signerctl import [flags] FILE.csv
//	signerctl policy [flags]
//
// Exit status: 0 when every row was imported (or already there, unchanged);
// 1 when any row was bad, conflicted with Vault or failed (every other row
// was still imported); 2 for a usage or set-up error (flags, unreadable
// file, header, Vault login), before anything was written; 3 when the run
// stopped early (interrupted, or -max-errors reached): re-run to continue.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/signerd/signerd/internal/settings"
)

// Exit statuses.
const (
	exitOK         = 0
	exitRowsFailed = 1
	exitUsage      = 2
	exitIncomplete = 3
)

func main() {
	// The first SIGINT/SIGTERM stops handing out new rows; requests in
	// flight finish and the summary is printed (exit 3). A second signal
	// kills the process the default way: that too is safe, as every device
	// is one atomic Vault write.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], settings.Environ(os.Environ()), os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own arguments,
// environment and outputs. It returns the exit status.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "import":
		return runImport(ctx, args[1:], env, stdout, stderr)
	case "policy":
		return runPolicy(args[1:], env, stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "signerctl: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  signerctl import [flags] FILE.csv   load the console's device export into Vault KV v2 (and Transit)
  signerctl policy [flags]            print the Vault policy the import needs

Run "signerctl import -h" for the flags. Every flag can also be set as
`+envPrefix+`NAME (e.g. `+envPrefix+`VAULT_ADDR); VAULT_ADDR, VAULT_TOKEN,
VAULT_CACERT, VAULT_NAMESPACE and the other standard VAULT_* variables apply.

Exit status: 0 all rows imported or unchanged; 1 some rows bad, conflicting
or failed (the others were imported); 2 usage or set-up error, nothing
written; 3 stopped early (interrupted or -max-errors): re-run to continue.
`)
}
