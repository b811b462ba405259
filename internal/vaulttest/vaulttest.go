// Package vaulttest runs a real Vault server (`vault server -dev`) for tests:
// built from the Go module proxy by scripts/vault-build.sh and named by
// SIGNERD_VAULT_BIN, listening on a 127.0.0.1 ephemeral port, with KV v2 at
// "iot", AppRole and Transit enabled and signerd's least-privilege policy
// (deploy/vault/policy.hcl) loaded; or bare, as `vault server -dev` starts.
// Nothing here imitates Vault.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/deploy"
)

// EnvBin names the Vault binary; scripts/test.sh sets it.
const EnvBin = "SIGNERD_VAULT_BIN"

// Policy is signerd's Vault policy: read device secrets, nothing else. It is
// the shipped deploy/vault/policy.hcl, so tests check the real one.
var Policy = deploy.VaultPolicy

// Server is a running Vault dev server.
type Server struct {
	Addr      string // http://127.0.0.1:PORT
	RootToken string
	// Client is logged in with the root token, for fixtures.
	Client *vault.Client

	bin  string
	port int
	log  *os.File

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

// Bin returns the Vault binary or a clear error saying how to get one.
func Bin() (string, error) {
	bin := os.Getenv(EnvBin)
	if bin == "" {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		return "", fmt.Errorf("%s is not set: run the tests with scripts/test.sh, or set it to the output of %s",
			EnvBin, filepath.Join(root, "scripts", "vault-build.sh"))
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s=%s: %w", EnvBin, bin, err)
	}
	return bin, nil
}

// Start starts a Vault dev server and configures it. logDir receives the
// server's output (vault.log).
func Start(logDir string) (*Server, error) {
	s, err := StartBare(logDir)
	if err != nil {
		return nil, err
	}
	if err := s.Configure(context.Background()); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartBare starts a Vault dev server as `vault server -dev` leaves it (KV v2
// at "secret", token auth, no signerd policy), for tests of set-up code such
// as deploy/vault/apply.sh. Configure adds signerd's fixtures.
func StartBare(logDir string) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	s := &Server{bin: bin, RootToken: "root-" + hex.EncodeToString(tok)}
	if s.log, err = os.Create(filepath.Join(logDir, "vault.log")); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = s.start(); err == nil {
			break
		}
		if attempt == 3 {
			return nil, err
		}
	}
	return s, nil
}

// StartT is Start for one test: the server stops at cleanup.
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatalf("start vault: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartBareT is StartBare for one test: the server stops at cleanup.
func StartBareT(t testing.TB) *Server {
	t.Helper()
	s, err := StartBare(t.TempDir())
	if err != nil {
		t.Fatalf("start vault: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Shared is one Vault server for a package's tests, started by the first
// test that asks for it. A package's TestMain must not start Vault itself:
// then its tests that need no Vault could not run without SIGNERD_VAULT_BIN.
type Shared struct {
	once sync.Once
	dir  string
	srv  *Server
	err  error
}

// Get returns the shared server, starting it on first use. A test that
// needs Vault fails, never skips, when it cannot start: a missing
// SIGNERD_VAULT_BIN must not pass as a green run.
func (s *Shared) Get(t testing.TB) *Server {
	t.Helper()
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "signerd-vault-"); s.err != nil {
			return
		}
		s.srv, s.err = Start(s.dir)
	})
	if s.err != nil {
		t.Fatalf("this test needs a real Vault server: %v", s.err)
	}
	return s.srv
}

// Close stops the shared server if a test started it; TestMain calls it
// after m.Run. When the tests failed, the server's log is kept and its
// path printed; otherwise it is removed.
func (s *Shared) Close(failed bool) {
	s.once.Do(func() { s.err = errors.New("vaulttest: Shared.Get called after Close") })
	if s.srv != nil {
		s.srv.Stop()
	}
	if s.dir == "" {
		return
	}
	log := filepath.Join(s.dir, "vault.log")
	if _, err := os.Stat(log); err == nil && failed {
		fmt.Fprintln(os.Stderr, "vault server log:", log)
		return
	}
	_ = os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	s.Addr = "http://127.0.0.1:" + strconv.Itoa(s.port)
	cmd := exec.Command(s.bin, "server", "-dev",
		"-dev-root-token-id="+s.RootToken,
		"-dev-listen-address=127.0.0.1:"+strconv.Itoa(s.port),
		"-dev-no-store-token",
	)
	cmd.Env = append(os.Environ(), "VAULT_DISABLE_MLOCK=true", "HOME="+os.TempDir())
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	cfg := vault.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	client, err := vault.NewClient(cfg)
	if err != nil {
		cmd.Process.Kill()
		return err
	}
	client.SetToken(s.RootToken)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("vault exited early (%v); see %s", err, s.log.Name())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		h, herr := client.Sys().HealthWithContext(ctx)
		cancel()
		if herr == nil && h.Initialized && !h.Sealed {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return fmt.Errorf("vault not healthy after 60s: %v; see %s", herr, s.log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.Client = client
	s.mu.Unlock()
	return nil
}

// Configure mounts KV v2 at "iot", enables AppRole and Transit and loads the
// signerd policy. Start calls it; call it again after Restart (a dev server
// keeps everything in memory).
func (s *Server) Configure(ctx context.Context) error { return configure(ctx, s.Client) }

// configure gives a Vault (a dev server or a cluster's active node, through
// client) signerd's fixtures.
func configure(ctx context.Context, client *vault.Client) error {
	sys := client.Sys()
	if err := sys.MountWithContext(ctx, "iot", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		return fmt.Errorf("mount kv v2: %w", err)
	}
	if err := sys.MountWithContext(ctx, "transit", &vault.MountInput{Type: "transit"}); err != nil {
		return fmt.Errorf("mount transit: %w", err)
	}
	if err := sys.EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		return fmt.Errorf("enable approle: %w", err)
	}
	if err := sys.PutPolicyWithContext(ctx, "signerd", Policy); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	// KV v2 answers 404/500 for a short while after mounting while it
	// upgrades; wait until a write works.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := client.KVv2("iot").Put(ctx, "_probe", map[string]any{"ok": "1"})
		if err == nil {
			return client.KVv2("iot").DeleteMetadata(ctx, "_probe")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kv v2 not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PutDevice writes a device secret at signerd's default path.
func (s *Server) PutDevice(ctx context.Context, productKey, deviceName, secret string) error {
	_, err := s.Client.KVv2("iot").Put(ctx, "devices/"+productKey+"/"+deviceName, map[string]any{"deviceSecret": secret})
	return err
}

// AppRole creates an AppRole role with signerd's policy and the given token
// TTLs and returns its role id and a fresh secret id.
func (s *Server) AppRole(ctx context.Context, name string, ttl, maxTTL time.Duration) (roleID, secretID string, err error) {
	_, err = s.Client.Logical().WriteWithContext(ctx, "auth/approle/role/"+name, map[string]any{
		"token_policies": "signerd",
		"token_ttl":      ttl.String(),
		"token_max_ttl":  maxTTL.String(),
	})
	if err != nil {
		return "", "", err
	}
	r, err := s.Client.Logical().ReadWithContext(ctx, "auth/approle/role/"+name+"/role-id")
	if err != nil {
		return "", "", err
	}
	w, err := s.Client.Logical().WriteWithContext(ctx, "auth/approle/role/"+name+"/secret-id", nil)
	if err != nil {
		return "", "", err
	}
	return r.Data["role_id"].(string), w.Data["secret_id"].(string), nil
}

// KubernetesRole is a role of Vault's Kubernetes auth method, issuing
// tokens with signerd's policy.
type KubernetesRole struct {
	Name            string
	ServiceAccounts []string // bound_service_account_names
	Namespaces      []string // bound_service_account_namespaces
	Audience        string   // audience the service-account JWT must carry; "" for none
	TTL, MaxTTL     time.Duration
}

// EnableKubernetesAuth enables Vault's Kubernetes auth method at mount,
// pointed at the kube-apiserver at host (in tests, an emulated TokenReview
// endpoint) with reviewerJWT as its bearer token for the TokenReview API,
// and creates roles. Vault is told never to fall back to a local pod's CA
// and token (disable_local_ca_jwt). Disable the mount to remove it again.
func (s *Server) EnableKubernetesAuth(ctx context.Context, mount, host, reviewerJWT string, roles ...KubernetesRole) error {
	if err := s.Client.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		return fmt.Errorf("enable kubernetes auth at %s: %w", mount, err)
	}
	_, err := s.Client.Logical().WriteWithContext(ctx, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host":      host,
		"token_reviewer_jwt":   reviewerJWT,
		"disable_local_ca_jwt": true,
	})
	if err != nil {
		return fmt.Errorf("configure kubernetes auth at %s: %w", mount, err)
	}
	for _, r := range roles {
		_, err := s.Client.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/"+r.Name, map[string]any{
			"bound_service_account_names":      r.ServiceAccounts,
			"bound_service_account_namespaces": r.Namespaces,
			"audience":                         r.Audience,
			"token_policies":                   "signerd",
			"token_ttl":                        r.TTL.String(),
			"token_max_ttl":                    r.MaxTTL.String(),
		})
		if err != nil {
			return fmt.Errorf("kubernetes auth role %s: %w", r.Name, err)
		}
	}
	return nil
}

// Token creates a token with signerd's policy.
func (s *Server) Token(ctx context.Context, ttl, maxTTL time.Duration, renewable bool) (string, error) {
	sec, err := s.Client.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{
		Policies:       []string{"signerd"},
		TTL:            ttl.String(),
		ExplicitMaxTTL: maxTTL.String(),
		Renewable:      &renewable,
		NoParent:       true,
	})
	if err != nil {
		return "", err
	}
	return sec.Auth.ClientToken, nil
}

// Stop kills the server.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
	}
	// Wait until the port is free, so a Restart can bind it again.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.Addr, "http://"), 50*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts the server again on the same address with the same root
// token. A dev server's storage is in memory: call Configure and reload
// fixtures afterwards.
func (s *Server) Restart() error {
	if err := s.start(); err != nil {
		return err
	}
	return s.Configure(context.Background())
}
