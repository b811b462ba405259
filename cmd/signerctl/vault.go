package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/secrets"
)

// connect logs in to Vault the way signerd does (token, AppRole or
// Kubernetes; the token is kept alive until Close) and sizes the client for
// concurrent writes.
func connect(ctx context.Context, f vaultFlags, concurrency int, stderr io.Writer) (*secrets.Vault, error) {
	newAuth, err := f.AuthConfig().Builder()
	if err != nil {
		return nil, fmt.Errorf("-vault-auth=%s: %w", f.Auth, err)
	}
	// A connection per worker, and a few for the Transit calls and retries.
	hc := &http.Client{Transport: secrets.VaultTransport(concurrency + 4)}
	v, err := secrets.NewVault(ctx, secrets.VaultConfig{
		Address:      f.Addr,
		Namespace:    f.Namespace,
		NewAuth:      newAuth,
		TokenFile:    f.TokenFile,
		Mount:        f.KVMount,
		PathTemplate: f.KVPath,
		Field:        f.KVField,
		Timeout:      f.timeout,
		HTTPClient:   hc,
		Logger:       slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, fmt.Errorf("vault (-vault-addr, -vault-auth=%s): %w", f.Auth, err)
	}
	// NewVault turns retries off (signerd answers callers within a
	// deadline). An import is better off retrying a 5xx or a dropped
	// connection, and retrying is safe: a repeated check-and-set write that
	// had in fact gone through comes back as "unchanged".
	v.Client().SetMaxRetries(2)
	return v, nil
}

// outcome is what happened to one device at one target (KV or Transit).
type outcome uint8

const (
	created   outcome = iota // written (or, in a dry run, would be)
	unchanged                // already there with the same secret
	conflict                 // already there with another secret: left alone
	failed                   // Vault error
	notTried                 // Transit: skipped as KV conflicted or failed
)

// store writes devices to Vault. Its answers' messages never contain a
// secret.
type store struct {
	v       *secrets.Vault
	kv      *vault.KVv2
	transit *secrets.Transit // nil without -transit
	dryRun  bool
	mount   string // KV v2
	trMount string // Transit
	tmpl    string
	field   string
	timeout time.Duration
}

// transitProbe is the content of the HMAC that tells whether an existing
// Transit key holds the file's secret.
const transitProbe = "signerctl import: does this key hold the secret?"

func (s *store) path(id secrets.DeviceID) string {
	return strings.NewReplacer("{productKey}", id.ProductKey, "{deviceName}", id.DeviceName).Replace(s.tmpl)
}

// putKV stores a device's secret in KV v2 unless the device is there.
//
// Never a half-written device: the device's entry is written by one KV v2
// request carrying its whole data ({field: secret}), which Vault applies
// atomically as version 1; nothing else is ever written to KV for it. So at
// any moment, including after a crash or ^C, each device is either absent
// or complete. Never an overwrite: the write carries cas=0, which Vault
// refuses when the path has any version (even a deleted one), and the
// decision is Vault's, taken atomically with the write, so no concurrent
// writer can slip in between a check and the write. A re-run hence only
// adds what is missing.
func (s *store) putKV(ctx context.Context, d device) (outcome, string) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.dryRun {
		return s.checkKV(ctx, d)
	}
	_, err := s.kv.Put(ctx, s.path(d.id), map[string]any{s.field: d.secret}, vault.WithCheckAndSet(0))
	if err == nil {
		return created, ""
	}
	casMismatch := isCASMismatch(err)
	// A token allowed to create but not update (the policy "signerctl
	// policy" prints) is refused with 403 where the device exists.
	denied := httpStatus(err) == http.StatusForbidden
	if !casMismatch && !denied {
		return failed, "write: " + describe(err, d.secret)
	}
	o, msg := s.compareKV(ctx, d)
	if o == failed && denied {
		return failed, "write: " + describe(err, d.secret) + " (the token may not create secrets here)"
	}
	if o == created { // the device is not readable as present
		if casMismatch {
			return conflict, "Vault has this device with its latest version deleted or destroyed; not overwritten (undelete it, or delete its metadata to import anew)"
		}
		return failed, "write: " + describe(err, d.secret) + " (the token may not create secrets here, or the device exists with its latest version deleted)"
	}
	return o, msg
}

// checkKV is putKV's dry run: it reads, and never writes.
func (s *store) checkKV(ctx context.Context, d device) (outcome, string) {
	o, msg := s.compareKV(ctx, d)
	if o != created {
		return o, msg
	}
	// Absent or deleted? A deleted latest version would block the write.
	if md, err := s.kv.GetMetadata(ctx, s.path(d.id)); err == nil && md != nil && md.CurrentVersion > 0 {
		return conflict, "Vault has this device with its latest version deleted or destroyed; it would not be overwritten"
	}
	return created, ""
}

// compareKV reads the device as signerd will (secrets.Vault.Lookup):
// created means absent.
func (s *store) compareKV(ctx context.Context, d device) (outcome, string) {
	got, err := s.v.Lookup(ctx, d.id)
	switch {
	case err == nil:
		if subtle.ConstantTimeCompare(got.Bytes(), []byte(d.secret)) == 1 {
			return unchanged, ""
		}
		return conflict, "Vault holds a different secret for this device; not overwritten"
	case errors.Is(err, secrets.ErrNotFound):
		return created, ""
	case errors.Is(err, secrets.ErrUnusable):
		return conflict, fmt.Sprintf("Vault has an entry for this device without a usable %q field; not overwritten", s.field)
	default:
		return failed, "read: " + describe(err, d.secret)
	}
}

// putTransit imports the device's secret as a Transit hmac key unless the
// key exists. An existing key is checked with an HMAC: the same secret is
// "unchanged", another one (or a rotated key) a conflict.
func (s *store) putTransit(ctx context.Context, d device) (outcome, string) {
	if !s.dryRun {
		err := s.transit.Import(ctx, d.id, []byte(d.secret))
		if err == nil {
			return created, ""
		}
		if !errors.Is(err, secrets.ErrExists) {
			return failed, describe(err, d.secret)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	got, err := s.transit.HMACHex(ctx, d.id, transitProbe)
	switch {
	case err == nil:
		m := hmac.New(sha256.New, []byte(d.secret))
		m.Write([]byte(transitProbe))
		if hmac.Equal([]byte(got), []byte(hex.EncodeToString(m.Sum(nil)))) {
			return unchanged, ""
		}
		return conflict, "the Transit key holds a different secret (or was rotated); not replaced"
	case s.dryRun && errors.Is(err, secrets.ErrNotFound):
		return created, ""
	default:
		return failed, "checking the existing key: " + describe(err, d.secret)
	}
}

// preflight asks Vault whether the token may do what the run needs, so that
// a policy problem is one clear error before anything is written instead
// of one per device. Paths are the first device's.
func (s *store) preflight(ctx context.Context, first secrets.DeviceID) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	type need struct {
		path string
		caps []string
	}
	kvCaps := []string{"create", "read"}
	if s.dryRun {
		kvCaps = []string{"read"}
	}
	needs := []need{{s.mount + "/data/" + s.path(first), kvCaps}}
	if s.transit != nil {
		key := s.transit.KeyName(first)
		needs = append(needs, need{s.transitMount() + "/hmac/" + key + "/sha2-256", []string{"update"}})
		if !s.dryRun {
			needs = append(needs,
				need{s.transitMount() + "/keys/" + key, []string{"read"}},
				need{s.transitMount() + "/keys/" + key + "/import", []string{"update"}},
				need{s.transitMount() + "/wrapping_key", []string{"read"}})
		}
	}
	if err := s.checkMount(ctx, s.mount, "kv", "-vault-kv-mount"); err != nil {
		return err
	}
	if s.transit != nil {
		if err := s.checkMount(ctx, s.transitMount(), "transit", "-vault-transit-mount"); err != nil {
			return err
		}
	}
	var errs []error
	for _, n := range needs {
		have, err := s.v.Client().Sys().CapabilitiesSelfWithContext(ctx, n.path)
		if err != nil {
			return fmt.Errorf("vault: asking for the token's capabilities: %s", describe(err, ""))
		}
		if slices.Contains(have, "root") {
			continue
		}
		for _, c := range n.caps {
			if !slices.Contains(have, c) {
				errs = append(errs, fmt.Errorf("the Vault token lacks %q on %s (it has %v); see \"signerctl policy\"", c, n.path, have))
			}
		}
	}
	return errors.Join(errs...)
}

// checkMount makes sure that mount is a secrets engine of the given type
// (KV: version 2), with the endpoint the vault CLI uses for the same check;
// any token with access to the mount may read it.
func (s *store) checkMount(ctx context.Context, mount, typ, flag string) error {
	mount = strings.Trim(mount, "/")
	m, err := s.v.Client().Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+mount)
	if err != nil {
		return fmt.Errorf("%s %q: no such mount, or the token has no access to it (%s)", flag, mount, describe(err, ""))
	}
	if m == nil || m.Data == nil {
		return fmt.Errorf("%s %q: Vault did not describe the mount", flag, mount)
	}
	gotType, _ := m.Data["type"].(string)
	gotPath, _ := m.Data["path"].(string)
	version := ""
	if o, ok := m.Data["options"].(map[string]any); ok {
		version, _ = o["version"].(string)
	}
	switch {
	case strings.Trim(gotPath, "/") != mount:
		return fmt.Errorf("%s %q: lies inside the mount %q; give the mount, and the rest in -vault-kv-path", flag, mount, gotPath)
	case gotType != typ:
		return fmt.Errorf("%s %q: is a %q secrets engine, want %q", flag, mount, gotType, typ)
	case typ == "kv" && version != "2":
		return fmt.Errorf("%s %q: is KV version %q; signerd needs KV version 2", flag, mount, version)
	}
	return nil
}

func (s *store) transitMount() string { return strings.Trim(s.trMount, "/") }

// isCASMismatch: Vault refused a check-and-set write because the path has a
// version.
func isCASMismatch(err error) bool {
	var re *vault.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	return slices.ContainsFunc(re.Errors, func(e string) bool { return strings.Contains(e, "check-and-set") })
}

func httpStatus(err error) int {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// describe makes a one-line message of a Vault error. vault/api's errors
// carry the method, URL (mount and device path) and Vault's messages,
// never the request body; as a second guard, the row's secret is cut out
// should it ever appear.
func describe(err error, secret string) string {
	var msg string
	var re *vault.ResponseError
	if errors.As(err, &re) {
		var parts []string
		for _, e := range re.Errors {
			// Vault sends several errors as one go-multierror text:
			// "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n".
			if head, list, ok := strings.Cut(e, "occurred:"); ok && strings.Contains(head, "error") {
				for l := range strings.SplitSeq(list, "\n") {
					if l = strings.TrimPrefix(strings.TrimSpace(l), "* "); l != "" {
						parts = append(parts, l)
					}
				}
				continue
			}
			parts = append(parts, e)
		}
		msg = fmt.Sprintf("HTTP %d: %s", re.StatusCode, strings.Join(parts, "; "))
	} else {
		msg = err.Error()
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	return msg
}
