// Package tlsreload keeps TLS material read from files current: a server
// key pair and a CA bundle are re-read when their files change, so that
// certificate rotation (cert-manager, Kubernetes Secret updates) and CA
// removal (revocation) take effect without a restart.
//
// Files are checked at most once per CheckInterval, on use. A change is
// found by content, not by modification time and size: file-system clocks
// are coarse, so a rewrite in the same tick (or a `cp -p`) can leave both
// unchanged. A file that cannot be read or parsed keeps the last good
// material and is reported once through OnError, so a half-written update
// never takes the listener down.
//
// ServerConfig is the TLS policy of signerd's listeners, serving a KeyPair:
// the one place that says which versions, ciphers and client certificates
// they take.
package tlsreload

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// CheckInterval is how often files are checked for changes.
var CheckInterval = time.Second

// files are the files one piece of material is read from, and what was
// last seen in them.
type files struct {
	paths   []string
	seen    [sha256.Size]byte // digest of the contents last loaded or refused
	checked time.Time
}

// read returns the files' contents and their digest.
func (f *files) read() ([][]byte, [sha256.Size]byte, error) {
	h := sha256.New()
	out := make([][]byte, len(f.paths))
	for i, p := range f.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, [sha256.Size]byte{}, err
		}
		h.Write([]byte(strconv.Itoa(len(b)) + ":"))
		h.Write(b)
		out[i] = b
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return out, sum, nil
}

// changed returns the files' contents when CheckInterval has passed since
// the last check and they differ from what was last seen. A read error is
// returned once per distinct error.
func (f *files) changed(lastErr *string) ([][]byte, [sha256.Size]byte, bool, error) {
	now := time.Now()
	if now.Sub(f.checked) < CheckInterval {
		return nil, f.seen, false, nil
	}
	f.checked = now
	data, sum, err := f.read()
	if err != nil {
		if err.Error() == *lastErr {
			return nil, f.seen, false, nil
		}
		*lastErr = err.Error()
		return nil, f.seen, false, err
	}
	if sum == f.seen {
		return nil, sum, false, nil
	}
	return data, sum, true, nil
}

// KeyPair is a certificate and key loaded from files and reloaded on change.
type KeyPair struct {
	OnError func(error)

	mu      sync.Mutex
	f       files
	lastErr string
	cert    *tls.Certificate
}

// NewKeyPair loads the pair; it fails if the files are unusable now.
func NewKeyPair(certFile, keyFile string) (*KeyPair, error) {
	k := &KeyPair{f: files{paths: []string{certFile, keyFile}, checked: time.Now()}}
	data, sum, err := k.f.read()
	if err != nil {
		return nil, fmt.Errorf("tls key pair: %w", err)
	}
	if err := k.load(data, sum); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KeyPair) load(data [][]byte, sum [sha256.Size]byte) error {
	k.f.seen = sum
	c, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return fmt.Errorf("tls key pair %s, %s: %w", k.f.paths[0], k.f.paths[1], err)
	}
	k.cert, k.lastErr = &c, ""
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	data, sum, changed, err := k.f.changed(&k.lastErr)
	if err != nil {
		err = fmt.Errorf("tls key pair: %w", err)
	} else if changed {
		err = k.load(data, sum)
	}
	if err != nil && k.OnError != nil {
		k.OnError(err)
	}
	return k.cert, nil
}

// CAPool is a CA bundle loaded from a PEM file and reloaded on change.
type CAPool struct {
	OnError func(error)

	mu      sync.Mutex
	f       files
	lastErr string
	pool    *x509.CertPool
}

// NewCAPool loads the bundle; it fails if the file holds no certificate.
func NewCAPool(file string) (*CAPool, error) {
	c := &CAPool{f: files{paths: []string{file}, checked: time.Now()}}
	data, sum, err := c.f.read()
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	if err := c.load(data, sum); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CAPool) load(data [][]byte, sum [sha256.Size]byte) error {
	c.f.seen = sum
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[0]) {
		return errors.New("CA bundle " + c.f.paths[0] + ": no PEM certificate found")
	}
	c.pool, c.lastErr = pool, ""
	return nil
}

// Pool returns the current bundle.
func (c *CAPool) Pool() *x509.CertPool {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, sum, changed, err := c.f.changed(&c.lastErr)
	if err != nil {
		err = fmt.Errorf("CA bundle: %w", err)
	} else if changed {
		err = c.load(data, sum)
	}
	if err != nil && c.OnError != nil {
		c.OnError(err)
	}
	return c.pool
}
