package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/internal/pkitest"
)

// Cluster is Vault as deployed: n server processes with Raft storage and
// TLS listeners on 127.0.0.1, initialized (Shamir, one key share), unsealed
// and joined by the test, with signerd's fixtures (Configure) on it. The
// listeners' certificate comes from a CA the test made; CAFile is the PEM
// to give clients (VAULT_CACERT).
type Cluster struct {
	Nodes     []*Node
	RootToken string
	UnsealKey string
	CAFile    string

	dir string
}

// Node is one Vault server of a Cluster.
type Node struct {
	Index int
	Addr  string // https://127.0.0.1:PORT
	// Client talks to this node only, with the root token.
	Client *vault.Client

	bin, config string
	log         *os.File
	key         string // unseal key, once the cluster is initialized

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

// clusterTimeout bounds every wait for the cluster to settle. It only turns
// a hang into a failure; nothing asserts how fast Vault is.
const clusterTimeout = 90 * time.Second

// StartCluster starts an n-node cluster for one test; it stops at cleanup.
// Prefer SharedCluster: starting a cluster costs seconds.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := startCluster(t, t.TempDir(), n)
	if err != nil {
		t.Fatalf("start vault cluster: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// SharedCluster is one cluster for a package's tests, started by the first
// test that asks for it, as Shared is for the dev server. Tests that kill,
// seal or restart nodes must not run in parallel with each other, and must
// leave every node up and unsealed (Heal) when they end.
type SharedCluster struct {
	N    int // nodes; default 3
	once sync.Once
	dir  string
	c    *Cluster
	err  error
}

// Get returns the shared cluster, starting it on first use, healed: every
// node running and unsealed. A test that needs it fails, never skips, when
// it cannot start.
func (s *SharedCluster) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() {
		s.err = errors.New("vault cluster start aborted")
		if s.dir, s.err = os.MkdirTemp("", "signerd-vault-cluster-"); s.err != nil {
			return
		}
		n := s.N
		if n == 0 {
			n = 3
		}
		s.c, s.err = startCluster(t, s.dir, n)
	})
	if s.err != nil {
		t.Fatalf("this test needs a real Vault cluster: %v", s.err)
		return nil
	}
	if err := s.c.Heal(); err != nil {
		t.Fatalf("vault cluster: %v", err)
		return nil
	}
	return s.c
}

// Close stops the shared cluster if a test started it; TestMain calls it
// after m.Run. When the tests failed the nodes' logs are kept and their
// directory printed.
func (s *SharedCluster) Close(failed bool) {
	s.once.Do(func() { s.err = errors.New("vaulttest: SharedCluster.Get called after Close") })
	if s.c != nil {
		s.c.Stop()
	}
	if s.dir == "" {
		return
	}
	if failed {
		fmt.Fprintln(os.Stderr, "vault cluster logs:", s.dir)
		return
	}
	_ = os.RemoveAll(s.dir)
}

func startCluster(t testing.TB, dir string, n int) (c *Cluster, err error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	ca := pkitest.NewCA(t, "vault test CA")
	certFile, keyFile := pkitest.WriteFiles(t, dir, "vault", ca.Issue(t, pkitest.Options{CommonName: "vault", Server: true}))
	c = &Cluster{CAFile: filepath.Join(dir, "vault-ca.pem"), dir: dir}
	if err := os.WriteFile(c.CAFile, ca.PEM, 0o600); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	for i := 0; i < n; i++ {
		nd := &Node{Index: i, bin: bin}
		c.Nodes = append(c.Nodes, nd)
		// A port taken between freePort and Vault's bind shows as an early
		// exit: pick new ports (nothing refers to them before the join).
		for attempt := 0; ; attempt++ {
			if err = nd.configure(dir, certFile, keyFile, c.CAFile); err != nil {
				return nil, err
			}
			if err = nd.start(); err == nil {
				break
			}
			if attempt == 3 {
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()

	first := c.Nodes[0]
	init, err := first.Client.Sys().InitWithContext(ctx, &vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", first.Addr, err)
	}
	c.RootToken, c.UnsealKey = init.RootToken, init.Keys[0]
	for _, nd := range c.Nodes {
		nd.key = c.UnsealKey
		nd.Client.SetToken(c.RootToken)
	}
	if err := first.Unseal(); err != nil {
		return nil, err
	}
	if _, err := c.waitLeader(ctx); err != nil {
		return nil, err
	}
	// New Raft peers join as non-voters and are promoted once stable; a
	// short stabilization time makes all n voters within seconds, so that
	// the cluster survives losing its leader.
	if _, err := first.Client.Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration", map[string]any{
		"server_stabilization_time": "1s",
		"cleanup_dead_servers":      false,
	}); err != nil {
		return nil, fmt.Errorf("autopilot configuration: %w", err)
	}
	leaderCA, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, err
	}
	for _, nd := range c.Nodes[1:] {
		if _, err := nd.Client.Sys().RaftJoinWithContext(ctx, &vault.RaftJoinRequest{
			LeaderAPIAddr: first.Addr, LeaderCACert: string(leaderCA),
		}); err != nil {
			return nil, fmt.Errorf("join %s to %s: %w", nd.Addr, first.Addr, err)
		}
		if err := nd.Unseal(); err != nil {
			return nil, err
		}
	}
	if err := c.waitVoters(ctx); err != nil {
		return nil, err
	}
	leader, err := c.waitLeader(ctx)
	if err != nil {
		return nil, err
	}
	if err := configure(ctx, leader.Client); err != nil {
		return nil, fmt.Errorf("configure %s: %w", leader.Addr, err)
	}
	return c, nil
}

// configure writes the node's configuration file with fresh ports.
func (nd *Node) configure(dir, certFile, keyFile, caFile string) error {
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	clusterPort, err := freePort()
	if err != nil {
		return err
	}
	name := "node" + strconv.Itoa(nd.Index)
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	nd.Addr = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	// performance_multiplier 1 is Raft's tightest timing (elections within
	// about a second); Vault's default, 5, suits slow production disks.
	hcl := fmt.Sprintf(`ui = false
disable_mlock = true
api_addr = %q
cluster_addr = "https://127.0.0.1:%d"
storage "raft" {
  path = %q
  node_id = %q
  performance_multiplier = 1
}
listener "tcp" {
  address = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_cert_file = %q
  tls_key_file = %q
}
`, nd.Addr, clusterPort, data, name, apiPort, clusterPort, certFile, keyFile)
	nd.config = filepath.Join(dir, name+".hcl")
	if err := os.WriteFile(nd.config, []byte(hcl), 0o600); err != nil {
		return err
	}
	if nd.log == nil {
		if nd.log, err = os.Create(filepath.Join(dir, name+".log")); err != nil {
			return err
		}
	}
	cfg := vault.DefaultConfig()
	cfg.Address = nd.Addr
	cfg.MaxRetries = 0
	if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: caFile}); err != nil {
		return err
	}
	tok := ""
	if nd.Client != nil {
		tok = nd.Client.Token()
	}
	if nd.Client, err = vault.NewClient(cfg); err != nil {
		return err
	}
	nd.Client.SetToken(tok)
	return nil
}

// start runs the node's process and waits until its listener answers
// (sealed, as a Raft node always starts).
func (nd *Node) start() error {
	cmd := exec.Command(nd.bin, "server", "-config="+nd.config)
	cmd.Env = append(os.Environ(), "HOME="+os.TempDir())
	cmd.Stdout, cmd.Stderr = nd.log, nd.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(clusterTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("vault node %d exited early (%v); see %s", nd.Index, err, nd.log.Name())
		default:
		}
		if _, err := nd.health(); err == nil {
			break
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("vault node %d does not answer: %v; see %s", nd.Index, err, nd.log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	nd.mu.Lock()
	nd.cmd, nd.exited = cmd, exited
	nd.mu.Unlock()
	return nil
}

func (nd *Node) health() (*vault.HealthResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return nd.Client.Sys().HealthWithContext(ctx)
}

// Running reports whether the node's process is running.
func (nd *Node) Running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil
}

// Kill ends the node's process with SIGKILL, as a crashed pod or host.
func (nd *Node) Kill() { nd.stop(syscall.SIGKILL) }

// Stop ends the node's process with SIGTERM (an active node steps down).
func (nd *Node) Stop() { nd.stop(syscall.SIGTERM) }

func (nd *Node) stop(sig syscall.Signal) {
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.cmd = nil
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Start starts a stopped node again (same address, same Raft data) and
// unseals it.
func (nd *Node) Start() error {
	if nd.Running() {
		return nil
	}
	// The port may still be held briefly by the old process's socket.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = nd.start(); err == nil {
			return nd.Unseal()
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

// Seal seals the node (sys/seal, with the root token). Vault seals only
// the active node; a standby answers "cannot seal when in standby mode".
func (nd *Node) Seal() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nd.Client.Sys().SealWithContext(ctx); err != nil {
		return fmt.Errorf("seal node %d: %w", nd.Index, err)
	}
	return nil
}

// Unseal unseals the node with the cluster's key and waits until it is
// unsealed.
func (nd *Node) Unseal() error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for {
		st, err := nd.Client.Sys().UnsealWithContext(ctx, nd.key)
		if err == nil && !st.Sealed {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("unseal node %d: %v; see %s", nd.Index, err, nd.log.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Sealed reports whether the node answers as sealed.
func (nd *Node) Sealed() bool {
	h, err := nd.health()
	return err == nil && h.Sealed
}

// Active reports whether the node is the cluster's active node (its leader).
func (nd *Node) Active() bool {
	h, err := nd.health()
	return err == nil && h.Initialized && !h.Sealed && !h.Standby
}

// Leader waits until one running node is active and returns it.
func (c *Cluster) Leader() (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	return c.waitLeader(ctx)
}

func (c *Cluster) waitLeader(ctx context.Context) (*Node, error) {
	for {
		for _, nd := range c.Nodes {
			if nd.Running() && nd.Active() {
				return nd, nil
			}
		}
		if ctx.Err() != nil {
			return nil, errors.New("no vault node became active")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Standby returns a running node that is not the leader.
func (c *Cluster) Standby() (*Node, error) {
	leader, err := c.Leader()
	if err != nil {
		return nil, err
	}
	for _, nd := range c.Nodes {
		if nd != leader && nd.Running() {
			return nd, nil
		}
	}
	return nil, errors.New("no running standby node")
}

// waitVoters waits until every node is a healthy Raft voter.
func (c *Cluster) waitVoters(ctx context.Context) error {
	var last string
	for {
		leader, err := c.waitLeader(ctx)
		if err != nil {
			return err
		}
		st, err := leader.Client.Sys().RaftAutopilotStateWithContext(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case st == nil:
			last = "no autopilot state"
		default:
			healthy := 0
			for _, s := range st.Servers {
				if s.Healthy && (s.Status == "voter" || s.Status == "leader") {
					healthy++
				}
			}
			if st.Healthy && len(st.Voters) == len(c.Nodes) && healthy == len(c.Nodes) {
				return nil
			}
			last = fmt.Sprintf("%d of %d nodes are healthy voters", healthy, len(c.Nodes))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("raft peers: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Heal starts every stopped node, unseals every sealed one and waits for a
// leader and all voters, so that a test leaves the cluster as it found it.
func (c *Cluster) Heal() error {
	for _, nd := range c.Nodes {
		if !nd.Running() {
			if err := nd.Start(); err != nil {
				return err
			}
		} else if nd.Sealed() {
			if err := nd.Unseal(); err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	return c.waitVoters(ctx)
}

// Fixtures returns a Server whose root Client talks to the current
// leader, for the fixture helpers (PutDevice, AppRole, Token). It does not
// own the nodes: its Stop does nothing.
func (c *Cluster) Fixtures(t testing.TB) *Server {
	t.Helper()
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Addr: leader.Addr, RootToken: c.RootToken, Client: leader.Client}
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, nd := range c.Nodes {
		nd.Kill()
		if nd.log != nil {
			nd.log.Close()
		}
	}
}
