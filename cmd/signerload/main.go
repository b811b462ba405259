// Command signerload drives load at a running signerd, and at the baselines
// signerd is compared with, and reports throughput, latency percentiles
// (HDR histogram) and errors by code. scripts/bench.sh uses it to produce
// docs/BENCHMARKS.md.
//
// Usage:
//
//	signerload <mode> [flags]
//
// Load modes (closed loop: -c workers, each sending its next request when
// the previous one is answered):
//
//	grpc     SignMqttConnect (or BatchSignMqttConnect with -batch) over gRPC
//	rest     SignMqttConnect over REST (POST …:signMqttConnect)
//	transit  Vault Transit POST {mount}/hmac/{key}/sha2-256, with vault/api
//	kv       Vault KV v2 read of a device secret, with vault/api
//	hmac     HMAC-SHA256 of the sign content in this process (the floor)
//
// Fixture and reporting modes:
//
//	seed     write the devices' secrets to Vault KV v2 (and import them as
//	         Transit hmac keys), timed; or to a signerd -dev -dev-secrets file
//	report   print a Markdown table (with ratios) of -json result files
//	token    a fresh RS256 key's JWKS and a bearer token of it, for a JWT run
//	soak     start Vault, the platform emulator and signerd, run a
//	         realistic mix with faults for -duration and check every
//	         answer (soak.go; docs/RELIABILITY.md)
//
// With -server-pid, a load mode also reports the server's CPU time per sign
// over the measured run (from /proc), and report divides it by the bare
// HMAC's (the hmac run's own CPU per sign).
//
// Devices are {product}/dev-0000000 … with secrets derived from
// -secret-seed, so seed, load (-verify) and hmac agree without sharing files.
//
// Safety: a load mode talks only to 127.0.0.1, ::1 or localhost unless
// -allow-remote is given, and always stops by itself: after -d or -count,
// whichever comes first, and in any case after -max-duration (default 10m).
//
// Examples:
//
//	signerd -dev &   # one demo device
//	signerload grpc -plaintext -addr 127.0.0.1:9090 -product a1DemoProduct -device demo-device-01 -d 10s
//
//	signerload seed -dev-secrets devices.json -n 1000 && signerd -dev -dev-secrets devices.json &
//	signerload rest -plaintext -url http://127.0.0.1:8080 -n 1000 -c 16 -d 20s -verify
//
//	signerload seed -vault-addr http://127.0.0.1:8200 -n 10000 -transit-keys 1000
//	signerload grpc -addr 127.0.0.1:9090 -ca ca.pem -cert backend.pem -key backend.key -c 16 -n 1000 -d 20s
//	signerload grpc … -unique -device-offset 1000 -n 20000   # every device once: a cold cache
//	signerload transit -vault-addr http://127.0.0.1:8200 -c 16 -n 1000 -d 20s
//	signerload report results/*.json
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `Usage: signerload <mode> [flags]

Load modes:
  grpc      SignMqttConnect (BatchSignMqttConnect with -batch) over gRPC
  rest      SignMqttConnect over REST
  transit   Vault Transit HMAC (sha2-256) with vault/api
  kv        Vault KV v2 read with vault/api
  hmac      HMAC-SHA256 in this process (the floor)
Other modes:
  seed      write device secrets to Vault KV v2 / import them into Transit,
            or to a signerd -dev -dev-secrets file
  report    Markdown table of -json result files: signerload report FILE...
  token     a fresh RS256 key's JWKS (for signerd -jwks-file) and a bearer
            token of it (for -token-file), for a JWT run
  soak      start Vault, the platform emulator and signerd, run a realistic
            mix for -duration with faults, check every answer (soak.go)

"signerload <mode> -h" lists the mode's flags. Load modes target loopback
addresses only unless -allow-remote is given, and stop after -d or -count,
and always after -max-duration.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	mode, rest := args[0], args[1:]
	var err error
	switch mode {
	case "grpc", "rest", "transit", "kv", "hmac":
		err = loadMain(mode, rest, stdout, stderr)
	case "seed":
		err = seedMain(rest, stdout, stderr)
	case "report":
		err = reportMain(rest, stdout, stderr)
	case "token":
		err = tokenMain(rest, stdout, stderr)
	case "soak":
		err = soakMain(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "signerload: unknown mode %q\n\n%s", mode, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "signerload:", err)
	return 1
}

// errUsage: the flag package has already told the user what is wrong.
var errUsage = errors.New("usage")
