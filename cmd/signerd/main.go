// Command signerd serves Alibaba Cloud IoT Platform login credentials for
// devices whose DeviceSecrets stay in the secret store. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/signerd/signerd/internal/settings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], settings.Environ(os.Environ()), os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the usage was asked for, not an error
		}
		fmt.Fprintln(os.Stderr, "signerd:", err)
		os.Exit(2)
	}
}

// run is main without the process: tests call it with their own arguments,
// environment and outputs.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	cfg, cfgErr := parseConfig(args, env, stderr)
	if errors.Is(cfgErr, flag.ErrHelp) {
		return cfgErr
	}
	if cfg.version && cfgErr == nil {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil || cfg.checkConfig {
		log = nopLogger() // a bad -log-level is in cfgErr already
	}
	// -check-config and the real start both go through build: what the
	// check passes, start-up builds the same way; only dialing out is left.
	a, loadErr := build(cfg, env, log)
	if err := errors.Join(cfgErr, loadErr); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if cfg.checkConfig {
		fmt.Fprintln(stdout, "signerd: configuration OK")
		fmt.Fprintln(stdout, "not checked (needs the network or the running process):")
		for _, s := range notChecked(cfg, env) {
			fmt.Fprintln(stdout, "  -", s)
		}
		return nil
	}
	slog.SetDefault(log)
	return serve(ctx, cfg, a, log)
}

func nopLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
