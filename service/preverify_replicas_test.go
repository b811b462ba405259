package service_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/vaulttest"
	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
)

// replicas is n signerd services sharing one token store, one platform
// (emulator) and one clock, as N replicas share Vault and the platform.
type replicas struct {
	svcs   []*service.Server
	emu    *platformtest.Server
	tokens service.TokenStore
	clock  *pvClock
	logs   *strings.Builder
}

// lockedBuilder lets several loggers write one buffer.
type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newReplicas(t *testing.T, n, devices int, tokens service.TokenStore, cfg service.TokenConfig) *replicas {
	t.Helper()
	emu := platformtest.New(t, platformtest.WithMQTT("mqtt.test.local", 8883))
	store := secrets.NewMemory()
	for i := range devices {
		dn := fmt.Sprintf("dev-%04d", i)
		emu.AddDevice(pvPK, dn, pvSecret)
		store.Put(secrets.DeviceID{ProductKey: pvPK, DeviceName: dn}, []byte(pvSecret))
	}
	client, err := platform.New(platform.Config{
		RootCAs:        emu.CertPool(),
		RegionBaseURLs: map[string]string{"cn-shanghai": emu.URL()},
		Retries:        1,
		BackoffBase:    time.Millisecond,
		BackoffMax:     5 * time.Millisecond,
		AttemptTimeout: 20 * time.Second, // a loaded test machine, 300 callers at once
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &replicas{emu: emu, tokens: tokens, clock: &pvClock{t: time.Unix(1_800_000_000, 0)}, logs: &strings.Builder{}}
	w := &lockedWriter{b: r.logs}
	for i := range n {
		c := cfg
		c.Store = tokens
		c.Owner = fmt.Sprintf("replica-%d", i)
		r.svcs = append(r.svcs, service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(r.clock.now),
			service.WithPreVerify(client, c), service.WithLogger(slog.New(slog.NewJSONHandler(w, nil)))))
	}
	return r
}

// askAll asks every device through every replica at once and returns the
// tokens handed out, by device and replica.
func (r *replicas) askAll(t *testing.T, devices int, force bool) [][]string {
	t.Helper()
	got := make([][]string, devices)
	var wg sync.WaitGroup
	errs := make(chan error, devices*len(r.svcs))
	for d := range devices {
		got[d] = make([]string, len(r.svcs))
		for i, svc := range r.svcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := svc.PreVerify(context.Background(), &signerv1.PreVerifyRequest{
					ProductKey: pvPK, DeviceName: fmt.Sprintf("dev-%04d", d), ForceRefresh: force})
				if err != nil {
					errs <- fmt.Errorf("device %d at replica %d: %w", d, i, err)
					return
				}
				got[d][i] = resp.GetIotToken()
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return got
}

// TestPreVerifySharedAcrossReplicas: replicas sharing a store make one
// platform call per device, however many ask at once, and hand out the
// same token; after one replica replaces a device's token, no replica
// hands out the old one.
func TestPreVerifySharedAcrossReplicas(t *testing.T) {
	const devices = 100
	stores := map[string]func(t *testing.T) service.TokenStore{
		"memory": func(*testing.T) service.TokenStore { return secrets.NewMemoryTokens(0) },
		"vault":  vaultTokens,
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			r := newReplicas(t, 3, devices, newStore(t), service.TokenConfig{ForceRefreshInterval: time.Hour, ClaimTTL: 30 * time.Second})
			got := r.askAll(t, devices, false)
			if calls := r.emu.Calls(); calls != devices {
				t.Errorf("platform calls = %d for %d devices asked through 3 replicas at once, want %d", calls, devices, devices)
			}
			for d, toks := range got {
				for i, tok := range toks {
					if tok != toks[0] {
						t.Fatalf("device %d: replica %d handed out another token than replica 0", d, i)
					}
				}
			}
			// Asked again: all from the store.
			again := r.askAll(t, devices, false)
			if calls := r.emu.Calls(); calls != devices {
				t.Errorf("platform calls after asking again = %d, want %d", calls, devices)
			}
			for d := range again {
				if again[d][1] != got[d][0] {
					t.Fatalf("device %d: token changed without refresh", d)
				}
			}

			// force_refresh at replica 0: every replica hands out the new
			// token afterwards.
			ctx := context.Background()
			forced, err := r.svcs[0].PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "dev-0007", ForceRefresh: true})
			if err != nil {
				t.Fatal(err)
			}
			if forced.GetIotToken() == got[7][0] || r.emu.Calls() != devices+1 {
				t.Fatalf("force_refresh: same token or %d platform calls, want a new token from one more call", r.emu.Calls())
			}
			for i, svc := range r.svcs {
				resp, err := svc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "dev-0007"})
				if err != nil {
					t.Fatal(err)
				}
				if resp.GetIotToken() != forced.GetIotToken() {
					t.Errorf("replica %d hands out the replaced token after replica 0's force_refresh", i)
				}
			}

			// A second force_refresh within the interval is refused at
			// every replica, not only at the one that forced: the limit
			// holds fleet-wide.
			for i, svc := range r.svcs {
				_, err := svc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "dev-0007", ForceRefresh: true})
				if status.Code(err) != codes.ResourceExhausted {
					t.Errorf("second force_refresh within the interval at replica %d = %v, want RESOURCE_EXHAUSTED", i, err)
				}
			}
			if r.emu.Calls() != devices+1 {
				t.Fatalf("platform calls after refused force_refreshes = %d, want %d", r.emu.Calls(), devices+1)
			}

			// Past the refresh margin, every replica asks at once: one
			// refresh per device.
			r.clock.advance(6*24*time.Hour + time.Minute)
			refreshed := r.askAll(t, devices, false)
			if calls := r.emu.Calls(); calls != 2*devices+1 {
				t.Errorf("platform calls after the refresh margin = %d, want %d (one refresh per device)", calls, 2*devices+1)
			}
			for d := range refreshed {
				for i := range refreshed[d] {
					if refreshed[d][i] != refreshed[d][0] || refreshed[d][i] == got[d][0] {
						t.Fatalf("device %d after the margin: replica %d handed out another or the old token", d, i)
					}
				}
			}
			// Past the interval, force_refresh works again, at any replica.
			if _, err := r.svcs[2].PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "dev-0007", ForceRefresh: true}); err != nil {
				t.Errorf("force_refresh after its interval: %v", err)
			}
			if strings.Contains(r.logs.String(), got[0][0]) {
				t.Error("a token reached the logs")
			}
		})
	}
}

// vaultTokens is the Vault token store on a real Vault.
func vaultTokens(t *testing.T) service.TokenStore {
	t.Helper()
	srv := vaulttest.StartT(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(srv.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := secrets.NewVault(context.Background(), secrets.VaultConfig{
		Address: srv.Addr, TokenFile: tokenFile,
		// As signerd's: enough connections for the concurrent readers,
		// and time for a loaded test machine.
		HTTPClient: &http.Client{Transport: secrets.VaultTransport(64)}, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	s, err := secrets.NewVaultTokens(v, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPreVerifyClaims: a replica waits for another's unexpired claim
// instead of calling the platform, and takes over an expired one.
func TestPreVerifyClaims(t *testing.T) {
	tokens := secrets.NewMemoryTokens(0)
	r := newReplicas(t, 1, 1, tokens, service.TokenConfig{ClaimTTL: 10 * time.Second})
	id := secrets.DeviceID{ProductKey: pvPK, DeviceName: "dev-0000"}
	if _, err := tokens.Put(context.Background(), id, secrets.TokenRecord{
		Claim: &secrets.TokenClaim{Owner: "a replica that died", Until: r.clock.now().Add(10 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.svcs[0].PreVerify(context.Background(), &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "dev-0000"})
		done <- err
	}()
	// Let it poll the claimed record a few times.
	for range 5 {
		rec, err := tokens.Get(context.Background(), id)
		if err != nil || rec.Claim == nil || rec.Claim.Owner != "a replica that died" {
			t.Fatalf("the claim of the other replica was taken before it expired: %+v %v", rec, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if calls := r.emu.Calls(); calls != 0 {
		t.Fatalf("platform calls while another replica's claim holds = %d, want 0", calls)
	}
	r.clock.advance(11 * time.Second)
	if err := <-done; err != nil {
		t.Fatalf("after the claim expired: %v", err)
	}
	if calls := r.emu.Calls(); calls != 1 {
		t.Errorf("platform calls = %d, want 1", calls)
	}
	rec, err := tokens.Get(context.Background(), id)
	if err != nil || rec.Claim != nil || len(rec.Tokens) != 1 {
		t.Errorf("record after the fetch: %v %v; want one token, no claim", rec, err)
	}
}

// flakyTokens fails every call with err after the first ok ones.
type flakyTokens struct {
	service.TokenStore
	mu  sync.Mutex
	ok  int
	err error
}

func (f *flakyTokens) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ok > 0 {
		f.ok--
		return nil
	}
	return f.err
}

func (f *flakyTokens) Get(ctx context.Context, id secrets.DeviceID) (secrets.TokenRecord, error) {
	if err := f.fail(); err != nil {
		return secrets.TokenRecord{}, err
	}
	return f.TokenStore.Get(ctx, id)
}

func (f *flakyTokens) Put(ctx context.Context, id secrets.DeviceID, rec secrets.TokenRecord) (int, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.TokenStore.Put(ctx, id, rec)
}

// TestPreVerifyStoreFaults: without the store no token is handed out, and
// a token that could not be stored is not handed out either.
func TestPreVerifyStoreFaults(t *testing.T) {
	down := fmt.Errorf("vault GET iot/data/preverify-tokens/x: no answer: %w", secrets.ErrUnavailable)
	tests := []struct {
		name  string
		ok    int // store calls that succeed first
		err   error
		want  codes.Code
		calls int
	}{
		{"store down", 0, down, codes.Unavailable, 0},
		{"claim not written", 1, down, codes.Unavailable, 0},
		{"token not stored", 2, down, codes.Unavailable, 1},
		{"store denies signerd", 0, fmt.Errorf("vault: HTTP 403: %w", secrets.ErrPermission), codes.Unavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &flakyTokens{TokenStore: secrets.NewMemoryTokens(0), ok: tt.ok, err: tt.err}
			r := newReplicas(t, 1, 1, store, service.TokenConfig{})
			_, err := r.svcs[0].PreVerify(context.Background(), &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "dev-0000"})
			if status.Code(err) != tt.want {
				t.Fatalf("PreVerify = %v, want %v", err, tt.want)
			}
			if calls := r.emu.Calls(); calls != tt.calls {
				t.Errorf("platform calls = %d, want %d", calls, tt.calls)
			}
			if errors.Is(err, secrets.ErrUnavailable) {
				t.Error("the store's error reached the caller unmapped")
			}
		})
	}
}

// overtaking is a store in which another replica takes over a claim that
// expired while this one was asking the platform: it stores its own token
// just before this replica's token write, which then conflicts.
type overtaking struct {
	service.TokenStore
	mu     sync.Mutex
	puts   int
	winner secrets.Token
}

func (o *overtaking) Put(ctx context.Context, id secrets.DeviceID, rec secrets.TokenRecord) (int, error) {
	o.mu.Lock()
	o.puts++
	n := o.puts
	o.mu.Unlock()
	if n == 2 { // this replica's token write, after its claim
		cur, err := o.TokenStore.Get(ctx, id)
		if err != nil {
			return 0, err
		}
		cur.Claim = nil
		cur.Tokens = map[string]secrets.Token{pvPK + "." + id.DeviceName: o.winner}
		if _, err := o.TokenStore.Put(ctx, id, cur); err != nil {
			return 0, err
		}
	}
	return o.TokenStore.Put(ctx, id, rec)
}

// TestPreVerifyLostRace: a replica whose token write conflicts hands out
// the winner's stored token, never the one it fetched itself.
func TestPreVerifyLostRace(t *testing.T) {
	store := &overtaking{TokenStore: secrets.NewMemoryTokens(0)}
	r := newReplicas(t, 1, 1, store, service.TokenConfig{})
	store.winner = secrets.Token{IotID: "iot-winner", IotToken: "the-winners-token", Host: "mqtt.test.local", Port: 8883, IssuedAt: r.clock.now()}
	resp, err := r.svcs[0].PreVerify(context.Background(), &signerv1.PreVerifyRequest{ProductKey: pvPK, DeviceName: "dev-0000"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetIotToken() != "the-winners-token" || resp.GetIotId() != "iot-winner" {
		t.Errorf("after losing the race the replica handed out %q, want the stored winner's token", resp.GetIotId())
	}
	if calls := r.emu.Calls(); calls != 1 {
		t.Errorf("platform calls = %d, want 1 (the token that lost is dropped, not fetched again)", calls)
	}
}
