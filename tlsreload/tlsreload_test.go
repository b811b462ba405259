package tlsreload_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/tlsreload"
)

func TestMain(m *testing.M) {
	tlsreload.CheckInterval = time.Millisecond
	os.Exit(m.Run())
}

// patience bounds how long a test waits for a reload; it only turns a
// missed reload into a failure.
const patience = 10 * time.Second

// errs collects OnError reports.
type errs struct {
	mu   sync.Mutex
	list []error
}

func (e *errs) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, err)
}

func (e *errs) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.list)
}

func (e *errs) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s []string
	for _, err := range e.list {
		s = append(s, err.Error())
	}
	return strings.Join(s, "; ")
}

// eventually polls cond until it holds or patience runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// replace writes data to path in place (as `cp` or an editor would); with
// sameStamp it also restores the file's previous modification time, as when
// the rewrite falls in the same tick of the file system's coarse clock, or
// with `cp -p` of files made at the same time.
func replace(t *testing.T, path string, data []byte, sameStamp bool) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if sameStamp {
		if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
}

// pad makes PEM data exactly n bytes long with trailing newlines (PEM
// parsers skip them), so that two files differ in content only.
func pad(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	if len(b) > n {
		t.Fatalf("pad: %d bytes > %d", len(b), n)
	}
	return append(append([]byte(nil), b...), bytes.Repeat([]byte("\n"), n-len(b))...)
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leafOf(t *testing.T, c *tls.Certificate) []byte {
	t.Helper()
	if c == nil || len(c.Certificate) == 0 {
		t.Fatal("GetCertificate returned no certificate")
	}
	return c.Certificate[0]
}

func TestKeyPairReload(t *testing.T) {
	for _, sameStamp := range []bool{false, true} {
		name := "new stamp"
		if sameStamp {
			name = "same size and modification time"
		}
		t.Run(name, func(t *testing.T) {
			ca := pkitest.NewCA(t, "server CA")
			dir := t.TempDir()
			gen1 := ca.Issue(t, pkitest.Options{CommonName: "gen1", Server: true})
			gen2 := ca.Issue(t, pkitest.Options{CommonName: "gen2", Server: true})
			certFile, keyFile := pkitest.WriteFiles(t, dir, "server", gen1)
			c2, k2 := pkitest.WriteFiles(t, t.TempDir(), "server", gen2)
			cert1, key1, cert2, key2 := read(t, certFile), read(t, keyFile), read(t, c2), read(t, k2)
			const size = 2048
			replace(t, certFile, pad(t, cert1, size), false)
			replace(t, keyFile, pad(t, key1, size), false)

			kp, err := tlsreload.NewKeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			var reported errs
			kp.OnError = reported.add
			get := func() []byte {
				c, err := kp.GetCertificate(&tls.ClientHelloInfo{})
				if err != nil {
					t.Fatalf("GetCertificate: %v", err)
				}
				return leafOf(t, c)
			}
			if !bytes.Equal(get(), gen1.Certificate[0]) {
				t.Fatal("initial certificate is not gen1")
			}

			// The key first, then the certificate: in between the pair does
			// not match, and the old pair must stay in use.
			replace(t, keyFile, pad(t, key2, size), sameStamp)
			time.Sleep(5 * time.Millisecond)
			if !bytes.Equal(get(), gen1.Certificate[0]) {
				t.Fatal("a mismatched pair replaced the working one")
			}
			replace(t, certFile, pad(t, cert2, size), sameStamp)
			eventually(t, "gen2 picked up", func() bool { return bytes.Equal(get(), gen2.Certificate[0]) })

			// A broken certificate file keeps gen2 and is reported.
			n := reported.len()
			replace(t, certFile, pad(t, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"), size), sameStamp)
			eventually(t, "broken file reported", func() bool { get(); return reported.len() > n })
			if !bytes.Equal(get(), gen2.Certificate[0]) {
				t.Error("a broken certificate file replaced the working pair")
			}
			// Reported once, not at every check while it stays broken.
			for i := 0; i < 10; i++ {
				time.Sleep(2 * tlsreload.CheckInterval)
				get()
			}
			if got := reported.len(); got != n+1 {
				t.Errorf("broken file reported %d times, want once: %s", got-n, &reported)
			}
			// Mended again: picked up.
			replace(t, certFile, pad(t, cert1, size), sameStamp)
			replace(t, keyFile, pad(t, key1, size), sameStamp)
			eventually(t, "gen1 picked up again", func() bool { return bytes.Equal(get(), gen1.Certificate[0]) })
		})
	}
}

func TestKeyPairMissingFileKeepsPair(t *testing.T) {
	ca := pkitest.NewCA(t, "server CA")
	gen1 := ca.Issue(t, pkitest.Options{CommonName: "gen1", Server: true})
	certFile, keyFile := pkitest.WriteFiles(t, t.TempDir(), "server", gen1)
	kp, err := tlsreload.NewKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var reported errs
	kp.OnError = reported.add
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, "missing file reported", func() bool {
		c, err := kp.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || !bytes.Equal(leafOf(t, c), gen1.Certificate[0]) {
			t.Fatalf("GetCertificate with the file gone: %v, or not the last good pair", err)
		}
		return reported.len() > 0
	})
}

func TestNewKeyPairErrors(t *testing.T) {
	ca := pkitest.NewCA(t, "server CA")
	dir := t.TempDir()
	certFile, keyFile := pkitest.WriteFiles(t, dir, "a", ca.Issue(t, pkitest.Options{Server: true}))
	_, otherKey := pkitest.WriteFiles(t, dir, "b", ca.Issue(t, pkitest.Options{Server: true}))
	for name, files := range map[string][2]string{
		"missing cert":    {filepath.Join(dir, "missing.crt"), keyFile},
		"missing key":     {certFile, filepath.Join(dir, "missing.key")},
		"mismatched pair": {certFile, otherKey},
		"swapped":         {keyFile, certFile},
	} {
		if kp, err := tlsreload.NewKeyPair(files[0], files[1]); err == nil {
			t.Errorf("%s: NewKeyPair = %v, want an error", name, kp)
		}
	}
}

func verifies(pool *x509.CertPool, c tls.Certificate) bool {
	_, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func TestCAPoolReload(t *testing.T) {
	for _, sameStamp := range []bool{false, true} {
		name := "new stamp"
		if sameStamp {
			name = "same size and modification time"
		}
		t.Run(name, func(t *testing.T) {
			ca1, ca2 := pkitest.NewCA(t, "CA one"), pkitest.NewCA(t, "CA two")
			dev1, dev2 := ca1.Device(t, "a1PK", "dev-0001"), ca2.Device(t, "a1PK", "dev-0002")
			const size = 4096
			file := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(file, pad(t, append(append([]byte(nil), ca1.PEM...), ca2.PEM...), size), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := tlsreload.NewCAPool(file)
			if err != nil {
				t.Fatal(err)
			}
			var reported errs
			p.OnError = reported.add
			if !verifies(p.Pool(), dev1) || !verifies(p.Pool(), dev2) {
				t.Fatal("initial bundle does not hold both CAs")
			}

			// CA two removed: its certificates are revoked.
			replace(t, file, pad(t, ca1.PEM, size), sameStamp)
			eventually(t, "CA two removed", func() bool { return !verifies(p.Pool(), dev2) })
			if !verifies(p.Pool(), dev1) {
				t.Error("CA one lost when CA two was removed")
			}

			// A broken bundle keeps the last good one and is reported.
			n := reported.len()
			replace(t, file, pad(t, []byte("not a certificate\n"), size), sameStamp)
			eventually(t, "broken bundle reported", func() bool { p.Pool(); return reported.len() > n })
			if pool := p.Pool(); !verifies(pool, dev1) || verifies(pool, dev2) {
				t.Error("a broken bundle replaced the last good one")
			}

			// CA two alone.
			replace(t, file, pad(t, ca2.PEM, size), sameStamp)
			eventually(t, "CA two alone", func() bool { pool := p.Pool(); return verifies(pool, dev2) && !verifies(pool, dev1) })
		})
	}
}

func TestNewCAPoolErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("# no certificates here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{empty, filepath.Join(dir, "missing.pem")} {
		if p, err := tlsreload.NewCAPool(f); err == nil {
			t.Errorf("NewCAPool(%s) = %v, want an error", f, p)
		}
	}
}

// TestConcurrentUse runs reloads under the race detector.
func TestConcurrentUse(t *testing.T) {
	ca := pkitest.NewCA(t, "CA")
	dir := t.TempDir()
	certFile, keyFile := pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{Server: true}))
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	kp, err := tlsreload.NewKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tlsreload.NewCAPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if c, err := kp.GetCertificate(nil); err != nil || c == nil {
					t.Errorf("GetCertificate: %v", err)
					return
				}
				if p.Pool() == nil {
					t.Error("Pool() = nil")
					return
				}
			}
		}()
	}
	for j := 0; j < 20; j++ {
		pkitest.WriteFiles(t, dir, "server", ca.Issue(t, pkitest.Options{Server: true}))
	}
	wg.Wait()
}
