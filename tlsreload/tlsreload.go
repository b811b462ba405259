// Package tlsreload keeps TLS material read from files current: a server
// key pair and a CA bundle are re-read when their files change, so that
// certificate rotation (cert-manager, Kubernetes Secret updates) and CA
// removal (revocation) take effect without a restart.
//
// Files are checked at most once per CheckInterval, on use; a file that
// fails to parse keeps the last good material and is reported through
// OnError, so a half-written update never takes the listener down.
package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// CheckInterval is how often files are checked for changes.
var CheckInterval = time.Second

type fileStamp struct {
	mod  time.Time
	size int64
}

func stat(paths ...string) ([]fileStamp, error) {
	out := make([]fileStamp, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mod.Equal(b[i].mod) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}

// KeyPair is a certificate and key loaded from files and reloaded on change.
type KeyPair struct {
	certFile, keyFile string
	OnError           func(error)

	mu      sync.Mutex
	cert    *tls.Certificate
	stamps  []fileStamp
	checked time.Time
}

// NewKeyPair loads the pair; it fails if the files are unusable now.
func NewKeyPair(certFile, keyFile string) (*KeyPair, error) {
	k := &KeyPair{certFile: certFile, keyFile: keyFile}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KeyPair) load() error {
	stamps, err := stat(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("tls key pair: %w", err)
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("tls key pair %s: %w", k.certFile, err)
	}
	k.cert, k.stamps = &c, stamps
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); now.Sub(k.checked) >= CheckInterval {
		k.checked = now
		if stamps, err := stat(k.certFile, k.keyFile); err == nil && !sameStamps(stamps, k.stamps) {
			if err := k.load(); err != nil && k.OnError != nil {
				k.OnError(err)
			}
		}
	}
	return k.cert, nil
}

// CAPool is a CA bundle loaded from a PEM file and reloaded on change.
type CAPool struct {
	file    string
	OnError func(error)

	mu      sync.Mutex
	pool    *x509.CertPool
	stamps  []fileStamp
	checked time.Time
}

// NewCAPool loads the bundle; it fails if the file holds no certificate.
func NewCAPool(file string) (*CAPool, error) {
	c := &CAPool{file: file}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CAPool) load() error {
	stamps, err := stat(c.file)
	if err != nil {
		return fmt.Errorf("CA bundle: %w", err)
	}
	pem, err := os.ReadFile(c.file)
	if err != nil {
		return fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("CA bundle " + c.file + ": no PEM certificate found")
	}
	c.pool, c.stamps = pool, stamps
	return nil
}

// Pool returns the current bundle.
func (c *CAPool) Pool() *x509.CertPool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= CheckInterval {
		c.checked = now
		if stamps, err := stat(c.file); err == nil && !sameStamps(stamps, c.stamps) {
			if err := c.load(); err != nil && c.OnError != nil {
				c.OnError(err)
			}
		}
	}
	return c.pool
}
