package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/secrets"
)

// SeedResult is what seed reports (and writes with -json).
type SeedResult struct {
	Devices        int     `json:"devices"`
	KVSeconds      float64 `json:"kvSeconds,omitempty"`
	KVPerSecond    float64 `json:"kvWritesPerSecond,omitempty"`
	TransitKeys    int     `json:"transitKeys,omitempty"`
	TransitSeconds float64 `json:"transitSeconds,omitempty"`
	Writers        int     `json:"writers"`
}

// seedMain writes devices offset … offset+n-1 to KV v2 (what signerd
// reads) and imports the first -transit-keys of them into Transit as hmac
// keys with the same secret (BYOK import, as secrets.Transit does it).
func seedMain(args []string, stdout, stderr io.Writer) error {
	var (
		vf                   vaultFlags
		f                    fleet
		n, offset, c, tkeys  int
		writeKV, allowRemote bool
		maxDuration          time.Duration
		jsonOut, devSecrets  string
	)
	fs := flag.NewFlagSet("signerload seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vf.register(fs)
	fs.StringVar(&vf.kvMount, "kv-mount", "iot", "KV v2 mount")
	fs.StringVar(&vf.kvPath, "kv-path", "devices/{productKey}/{deviceName}", "path of a device's secret in the mount")
	fs.StringVar(&vf.kvField, "kv-field", "deviceSecret", "field holding the secret")
	fs.StringVar(&vf.transitMount, "transit-mount", "transit", "Transit mount")
	fs.IntVar(&n, "n", 1000, "devices to write")
	fs.IntVar(&offset, "device-offset", 0, "index of the first device")
	fs.IntVar(&c, "c", 16, "concurrent writers")
	fs.IntVar(&tkeys, "transit-keys", 0, "also import the first this-many devices into Transit as hmac keys (BYOK; slow: an RSA unwrap each)")
	fs.BoolVar(&writeKV, "kv", true, "write the devices to KV v2")
	fs.BoolVar(&allowRemote, "allow-remote", false, "allow a Vault that is not on this machine's loopback")
	fs.DurationVar(&maxDuration, "max-duration", 30*time.Minute, "hard cap (at most 1h)")
	fs.StringVar(&jsonOut, "json", "", "also write the timings as JSON to this file")
	fs.StringVar(&devSecrets, "dev-secrets", "", "instead of Vault, write the devices as a signerd -dev -dev-secrets file (JSON)")
	fs.StringVar(&f.product, "product", "a1SignerLoad", "productKey of the devices")
	fs.StringVar(&f.seed, "secret-seed", "signerload", "seed the device secrets are derived from")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if n < 1 || offset < 0 || offset+n > 9_999_999 || c < 1 || c > 256 || tkeys < 0 || tkeys > n ||
		maxDuration <= 0 || maxDuration > hardCap {
		return errors.New("want -n ≥ 1 within dev-0000000…dev-9999999, -c 1–256, 0 ≤ -transit-keys ≤ -n, 0 < -max-duration ≤ 1h")
	}
	if devSecrets != "" {
		return writeDevSecrets(devSecrets, f, offset, n, stdout)
	}
	client, err := vf.client(c, allowRemote)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxDuration)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	res := SeedResult{Devices: n, Writers: c}
	if writeKV {
		kv := client.KVv2(vf.kvMount)
		put := func(ctx context.Context, i int) error {
			path := strings.NewReplacer("{productKey}", f.product, "{deviceName}", f.name(i)).Replace(vf.kvPath)
			_, err := kv.Put(ctx, path, map[string]any{vf.kvField: string(f.secret(i))})
			return err
		}
		// A freshly mounted KV v2 refuses writes for a moment while it
		// upgrades itself: retry the first one.
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := put(ctx, offset)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("kv write: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		start := time.Now()
		if err := parallel(ctx, c, offset+1, offset+n, "kv", stderr, put); err != nil {
			return err
		}
		res.KVSeconds = time.Since(start).Seconds()
		res.KVPerSecond = float64(n) / res.KVSeconds
		fmt.Fprintf(stdout, "kv: wrote %d devices (%s/%s … %s) to %s in %.1fs: %.0f writes/s with %d writers\n",
			n, f.product, f.name(offset), f.name(offset+n-1), vf.kvMount, res.KVSeconds, res.KVPerSecond, c)
	}
	if tkeys > 0 {
		tr, err := secrets.NewTransit(client, secrets.TransitConfig{Mount: vf.transitMount})
		if err != nil {
			return err
		}
		start := time.Now()
		err = parallel(ctx, c, offset, offset+tkeys, "transit", stderr, func(ctx context.Context, i int) error {
			err := tr.Import(ctx, secrets.DeviceID{ProductKey: f.product, DeviceName: f.name(i)}, f.secret(i))
			if errors.Is(err, secrets.ErrExists) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		res.TransitKeys = tkeys
		res.TransitSeconds = time.Since(start).Seconds()
		fmt.Fprintf(stdout, "transit: imported %d hmac keys (BYOK) in %.1fs: %.0f imports/s with %d writers\n",
			tkeys, res.TransitSeconds, float64(tkeys)/res.TransitSeconds, c)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// parallel runs fn for every i in [from, to) on c goroutines and returns
// the first error; it reports progress every 10 s.
func parallel(ctx context.Context, c, from, to int, what string, stderr io.Writer, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= to {
					return
				}
				rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
				err := fn(rctx, i)
				rcancel()
				if err != nil {
					cancel(fmt.Errorf("%s: device %d: %w", what, i, vaultErr(err)))
					return
				}
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-finished:
			if err := context.Cause(ctx); err != nil {
				return err
			}
			return nil
		case <-t.C:
			fmt.Fprintf(stderr, "%s: %d of %d\n", what, done.Load(), to-from)
		}
	}
}

func vaultErr(err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("vault HTTP %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err
}

// writeDevSecrets writes devices offset … offset+n-1 in the format of
// signerd -dev -dev-secrets: load without Vault.
func writeDevSecrets(path string, f fleet, offset, n int, stdout io.Writer) error {
	type device struct {
		ProductKey   string `json:"productKey"`
		DeviceName   string `json:"deviceName"`
		DeviceSecret string `json:"deviceSecret"`
	}
	list := make([]device, n)
	for i := range list {
		list[i] = device{f.product, f.name(offset + i), string(f.secret(offset + i))}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d devices to %s (signerd -dev -dev-secrets %s)\n", n, path, path)
	return nil
}
