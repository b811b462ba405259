package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/deploy"
)

// The soak's environment: a CA for every TLS party, a Vault with
// persistent (file) storage over TLS that can be killed and started again
// without losing its devices, and the signerd binary. Nothing here is a
// fake: only the IoT platform is emulated (platform/aliyun/aliyuntest).

// soakCA issues the certificates of the soak: signerd's and Vault's server
// certificates for 127.0.0.1, backend (SPIFFE) and device
// (aliyun-iot://…) client certificates.
type soakCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newSoakCA(name string) (*soakCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &soakCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (ca *soakCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue makes a leaf: a server certificate for 127.0.0.1 when server, else
// a client certificate naming uri.
func (ca *soakCA) issue(cn, uri string, server bool) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// writePair writes c as PEM files dir/name.crt and dir/name.key.
func writePair(dir, name string, c tls.Certificate) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	kd, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
}

// --- Vault -----------------------------------------------------------

// soakVault is `vault server` with file storage and a TLS listener,
// initialized and unsealed by the soak. Unlike a dev server it keeps its
// devices across a kill, so a restart is an outage, not a data loss.
type soakVault struct {
	bin, dir, caFile string
	port             int
	addr             string // https://127.0.0.1:PORT
	unsealKey        string
	client           *vault.Client // root token, for fixtures

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

func newSoakVault(bin, dir string, ca *soakCA) (*soakVault, error) {
	v := &soakVault{bin: bin, dir: dir, caFile: filepath.Join(dir, "vault-ca.pem")}
	if err := os.WriteFile(v.caFile, ca.pem, 0o600); err != nil {
		return nil, err
	}
	cert, err := ca.issue("vault", "", true)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := writePair(dir, "vault", cert)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	v.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	v.addr = "https://127.0.0.1:" + strconv.Itoa(v.port)
	hcl := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address       = "127.0.0.1:%d"
  tls_cert_file = %q
  tls_key_file  = %q
}
disable_mlock = true
api_addr      = %q
`, filepath.Join(dir, "vault-data"), v.port, certFile, keyFile, v.addr)
	if err := os.WriteFile(filepath.Join(dir, "vault.hcl"), []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	if v.log, err = os.Create(filepath.Join(dir, "vault.log")); err != nil {
		return nil, err
	}
	cfg := vault.DefaultConfig()
	cfg.Address = v.addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: v.caFile}); err != nil {
		return nil, err
	}
	if v.client, err = vault.NewClient(cfg); err != nil {
		return nil, err
	}
	return v, nil
}

// start runs the server and waits until it answers (sealed).
func (v *soakVault) start(ctx context.Context) error {
	cmd := exec.Command(v.bin, "server", "-config="+filepath.Join(v.dir, "vault.hcl"))
	cmd.Env = append(cleanEnv(), "HOME="+v.dir)
	cmd.Stdout, cmd.Stderr = v.log, v.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start vault %s: %w", v.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	v.mu.Lock()
	v.cmd, v.exited = cmd, exited
	v.mu.Unlock()
	return retry(ctx, 60*time.Second, "vault listening", func(ctx context.Context) error {
		select {
		case <-exited:
			return errPermanent{fmt.Errorf("vault exited; see %s", v.log.Name())}
		default:
		}
		_, err := v.client.Sys().InitStatusWithContext(ctx)
		return err
	})
}

// initialize initializes a fresh server (one key share), unseals it, and
// sets up what signerd needs: KV v2 at "iot", the shipped signerd policy,
// and a periodic token with that policy (renewed by signerd, never
// expiring while it is renewed, and valid across restarts).
func (v *soakVault) initialize(ctx context.Context) (token string, err error) {
	init, err := v.client.Sys().InitWithContext(ctx, &vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return "", fmt.Errorf("vault init: %w", err)
	}
	v.unsealKey = init.Keys[0]
	v.client.SetToken(init.RootToken)
	if err := v.unseal(ctx); err != nil {
		return "", err
	}
	err = retry(ctx, 30*time.Second, "mount iot", func(ctx context.Context) error {
		return v.client.Sys().MountWithContext(ctx, "iot", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	})
	if err != nil {
		return "", err
	}
	if err := v.client.Sys().PutPolicyWithContext(ctx, "signerd", deploy.VaultPolicy); err != nil {
		return "", fmt.Errorf("vault policy: %w", err)
	}
	s, err := v.client.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{
		Policies: []string{"signerd"}, Period: "10m", DisplayName: "signerd-soak"})
	if err != nil {
		return "", fmt.Errorf("vault token: %w", err)
	}
	// A fresh KV v2 mount refuses writes while it upgrades itself.
	err = retry(ctx, 30*time.Second, "kv ready", func(ctx context.Context) error {
		_, err := v.client.KVv2("iot").Put(ctx, "_probe", map[string]any{"ok": "1"})
		return err
	})
	return s.Auth.ClientToken, err
}

// unseal unseals the server and waits until it is active.
func (v *soakVault) unseal(ctx context.Context) error {
	if _, err := v.client.Sys().UnsealWithContext(ctx, v.unsealKey); err != nil {
		return fmt.Errorf("vault unseal: %w", err)
	}
	return retry(ctx, 60*time.Second, "vault active", func(ctx context.Context) error {
		h, err := v.client.Sys().HealthWithContext(ctx)
		if err != nil {
			return err
		}
		if !h.Initialized || h.Sealed || h.Standby {
			return fmt.Errorf("vault health %+v", *h)
		}
		return nil
	})
}

// kill ends the server with SIGKILL: no graceful step-down, as when a
// node is lost.
func (v *soakVault) kill() {
	v.mu.Lock()
	cmd, exited := v.cmd, v.exited
	v.cmd = nil
	v.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

func (v *soakVault) pid() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil {
		return 0
	}
	return v.cmd.Process.Pid
}

// --- signerd -----------------------------------------------------------

// signerdProc is the signerd binary under test.
type signerdProc struct {
	cmd                         *exec.Cmd
	exited                      chan struct{}
	exitErr                     error
	logFile                     string
	grpcAddr, httpAddr, metrics string
}

// startSignerd runs bin with args, its stderr (JSON log) to logFile, and
// waits for its "listening" line.
func startSignerd(ctx context.Context, bin string, args, env []string, logFile string) (*signerdProc, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start signerd %s: %w", bin, err)
	}
	p := &signerdProc{cmd: cmd, exited: make(chan struct{}), logFile: logFile}
	go func() { p.exitErr = cmd.Wait(); f.Close(); close(p.exited) }()
	err = retry(ctx, 60*time.Second, "signerd listening", func(context.Context) error {
		select {
		case <-p.exited:
			return errPermanent{fmt.Errorf("signerd exited (%v); see %s", p.exitErr, logFile)}
		default:
		}
		r, err := os.Open(logFile)
		if err != nil {
			return err
		}
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "listening" {
				p.grpcAddr, _ = m["grpc"].(string)
				p.httpAddr, _ = m["http"].(string)
				p.metrics, _ = m["metrics"].(string)
				return nil
			}
		}
		return errors.New("no listening line yet")
	})
	if err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return nil, err
	}
	return p, nil
}

// stop sends SIGTERM and waits (at most a minute) for the exit.
func (p *signerdProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("signerd did not exit within a minute of SIGTERM")
	}
	return p.exitErr
}

// cleanEnv is this process's environment without SIGNERD_ and VAULT_
// settings: signerd refuses unknown SIGNERD_ variables, and a VAULT_ADDR
// of the caller's must not point the soak elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SIGNERD_") && !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	return env
}

// errPermanent stops retry at once.
type errPermanent struct{ error }

// retry calls fn every 100 ms until it succeeds, fails permanently, or
// limit passes.
func retry(ctx context.Context, limit time.Duration, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		var p errPermanent
		if errors.As(err, &p) {
			return fmt.Errorf("%s: %w", what, p.error)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: not within %s: %w", what, limit, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
