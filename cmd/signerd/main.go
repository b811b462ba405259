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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the usage was asked for, not an error
		}
		fmt.Fprintln(os.Stderr, "signerd:", err)
		os.Exit(2)
	}
}

// run is main without the process: tests call it with their own arguments,
// environment and outputs.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.version {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	if cfg.checkConfig {
		if err := checkFiles(cfg); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "signerd: configuration OK")
		return nil
	}
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	return serve(ctx, cfg, log)
}

func nopLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
