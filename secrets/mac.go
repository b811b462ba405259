package secrets

import (
	"context"
	"crypto/fips140"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"strconv"
)

// Algorithm is an HMAC algorithm a device key is used with. It is this
// package's own type, not a platform's sign method, so that secrets knows
// nothing of any platform's rules; the service maps one onto the other.
type Algorithm int

// The HMAC algorithms. The zero value is not a valid algorithm.
const (
	AlgorithmUnspecified Algorithm = iota
	HMACSHA256
	HMACSHA1
	HMACMD5
)

// String returns "hmacsha256", "hmacsha1" or "hmacmd5", or "Algorithm(n)".
func (a Algorithm) String() string {
	switch a {
	case HMACSHA256:
		return "hmacsha256"
	case HMACSHA1:
		return "hmacsha1"
	case HMACMD5:
		return "hmacmd5"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

func (a Algorithm) newHash() func() hash.Hash {
	switch a {
	case HMACSHA256:
		return sha256.New
	case HMACSHA1:
		return sha1.New
	case HMACMD5:
		return md5.New
	}
	return nil
}

// MACer computes "the MAC of this content with this device's key, by this
// algorithm". It is the one question the service asks about keys: where a
// key lives (in a Store that hands it to this process, or in Vault Transit,
// which never does) is the MACer's business, so the service has no branch
// per key home and a new home is a new MACer, not edits across the service.
//
// Implementations must be safe for concurrent use and must never put a key
// into a result other than the MAC, nor into an error or a log line.
type MACer interface {
	// Check returns, without I/O, the error MAC would return for every
	// device of productKey by alg (such as an algorithm the home cannot
	// compute), or nil if MAC may succeed. Callers that sign for several
	// devices at once use it to refuse a call before any key is looked up.
	Check(productKey string, alg Algorithm) error
	// MAC returns the raw (binary) MAC of content keyed with the device's
	// key. Errors wrap ErrNotFound, ErrUnusable, ErrUnavailable or
	// ErrPermission as Store.Lookup's do, or are an *AlgorithmError or a
	// *NoHomeError. MAC does not modify or retain content.
	MAC(ctx context.Context, id DeviceID, alg Algorithm, content []byte) ([]byte, error)
}

// AlgorithmError: the home of a product's keys cannot compute the MAC by
// the algorithm asked for. No retry fixes it; the caller must ask for Use.
type AlgorithmError struct {
	ProductKey string
	// Home is where the product's keys live, such as "Vault Transit".
	Home string
	// Offers says what the home can compute, such as "SHA-2/SHA-3 only".
	Offers string
	// Algorithm is the algorithm asked for; Use the one to ask for instead.
	Algorithm, Use Algorithm
}

func (e *AlgorithmError) Error() string {
	return fmt.Sprintf("product %s keeps its device secrets in %s, whose HMAC has %s: use %s, not %s",
		e.ProductKey, e.Home, e.Offers, e.Use, e.Algorithm)
}

// NoHomeError: a product's keys are configured to live somewhere this
// server has not been given, so none of its devices can be signed for.
type NoHomeError struct {
	ProductKey string
}

func (e *NoHomeError) Error() string {
	return fmt.Sprintf("product %s is in Transit mode, but this server has no Vault Transit configured", e.ProductKey)
}

// LocalMACer is the MACer for keys held by a Store (usually a Cache in
// front of Vault KV): it looks the device's secret up and computes the HMAC
// in this process. The secret goes no further than crypto/hmac.
type LocalMACer struct {
	store Store
}

// NewLocalMACer returns a LocalMACer over store.
func NewLocalMACer(store Store) *LocalMACer { return &LocalMACer{store: store} }

// Check implements MACer: a local key serves every algorithm.
func (*LocalMACer) Check(string, Algorithm) error { return nil }

// MAC implements MACer. Store errors are returned as they are, so that
// their messages (naming the device and storage path) reach callers
// unchanged.
func (l *LocalMACer) MAC(ctx context.Context, id DeviceID, alg Algorithm, content []byte) ([]byte, error) {
	return l.mac(ctx, id, alg, func(secret []byte) ([]byte, []byte) { return secret, content })
}

// MACSecret implements SecretMACer: the HMAC of the device's secret, keyed
// by key.
func (l *LocalMACer) MACSecret(ctx context.Context, id DeviceID, alg Algorithm, key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("device %s: empty HMAC key", id)
	}
	return l.mac(ctx, id, alg, func(secret []byte) ([]byte, []byte) { return key, secret })
}

// mac looks the device's secret up and computes the HMAC of the message
// under the key that roles picks from the secret.
func (l *LocalMACer) mac(ctx context.Context, id DeviceID, alg Algorithm, roles func(secret []byte) (key, msg []byte)) ([]byte, error) {
	newHash := alg.newHash()
	if newHash == nil {
		return nil, fmt.Errorf("device %s: unknown HMAC algorithm %v", id, alg)
	}
	secret, err := l.store.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(secret.Bytes()) == 0 {
		// A Store answers ErrNotFound or ErrUnusable rather than an empty
		// secret; one that does not is a bug (INTERNAL).
		return nil, fmt.Errorf("device %s: the store returned an empty secret", id)
	}
	key, msg := roles(secret.Bytes())
	// crypto/hmac panics on what FIPS 140-only mode refuses; answer an
	// error instead (INTERNAL, as before keys were routed here).
	if fips140.Enforced() {
		if alg != HMACSHA256 {
			return nil, fmt.Errorf("device %s: %v in FIPS 140-only mode: %w", id, alg, errFIPS)
		}
		if len(key) < fipsMinKeyLen {
			return nil, fmt.Errorf("device %s: HMAC key shorter than %d bytes in FIPS 140-only mode: %w", id, fipsMinKeyLen, errFIPS)
		}
	}
	h := hmac.New(newHash, key)
	h.Write(msg) // hash.Hash.Write never returns an error.
	return h.Sum(nil), nil
}

// SecretMACer computes "the MAC of this device's key, keyed by this
// content": the form of platforms that key the HMAC with a public value
// and hash the secret (Huawei IoTDA keys it with the timestamp). Only a
// home that holds the key in this process can compute it.
type SecretMACer interface {
	MACSecret(ctx context.Context, id DeviceID, alg Algorithm, key []byte) ([]byte, error)
}

// fipsMinKeyLen is the shortest HMAC key crypto/hmac accepts in FIPS
// 140-only mode.
const fipsMinKeyLen = 112 / 8

var errFIPS = errors.New("refused by FIPS 140-only mode (only hmacsha256 with keys of at least 14 bytes)")

// Router is the MACer the service signs with: it sends each device to the
// MACer of its product's key home, the Store (local) or Vault Transit, as
// the per-product setting inTransit says.
type Router struct {
	local     MACer
	transit   MACer // nil: no Transit configured
	inTransit func(productKey string) bool
}

// NewRouter returns a Router. transit may be nil when no product is in
// Transit mode; a product that is anyway gets a *NoHomeError. A nil
// inTransit puts every product in local.
func NewRouter(local, transit MACer, inTransit func(productKey string) bool) *Router {
	if inTransit == nil {
		inTransit = func(string) bool { return false }
	}
	return &Router{local: local, transit: transit, inTransit: inTransit}
}

// home returns the MACer of productKey's keys. Transit mode is a setting
// of Alibaba products only: other platforms' devices (whose product names
// may coincide with an Alibaba product's) always have local keys.
func (r *Router) home(platform, productKey string) (MACer, error) {
	if platform != "" || !r.inTransit(productKey) {
		return r.local, nil
	}
	if r.transit == nil {
		return nil, &NoHomeError{ProductKey: productKey}
	}
	return r.transit, nil
}

// Check implements MACer.
func (r *Router) Check(productKey string, alg Algorithm) error {
	m, err := r.home("", productKey)
	if err != nil {
		return err
	}
	return m.Check(productKey, alg)
}

// MAC implements MACer.
func (r *Router) MAC(ctx context.Context, id DeviceID, alg Algorithm, content []byte) ([]byte, error) {
	m, err := r.home(id.Platform, id.ProductKey)
	if err != nil {
		return nil, err
	}
	return m.MAC(ctx, id, alg, content)
}

// MACSecret implements SecretMACer for devices whose keys are local; a
// device whose key is in Transit gets a *NoHomeError-like refusal, as
// Transit cannot use a key as the message.
func (r *Router) MACSecret(ctx context.Context, id DeviceID, alg Algorithm, key []byte) ([]byte, error) {
	m, err := r.home(id.Platform, id.ProductKey)
	if err != nil {
		return nil, err
	}
	sm, ok := m.(SecretMACer)
	if !ok {
		return nil, &AlgorithmError{ProductKey: id.ProductKey, Home: "Vault Transit", Offers: "no HMAC of the key itself", Algorithm: alg, Use: alg}
	}
	return sm.MACSecret(ctx, id, alg, key)
}

// InStore returns nil if productKey's device secrets are kept in the Store
// (so that writing one there, as registration does, is what signs for the
// device), or an error saying where they are kept instead.
func (r *Router) InStore(productKey string) error {
	if r.inTransit(productKey) { // registration is Alibaba's only
		return fmt.Errorf("product %s keeps its device secrets in Vault Transit", productKey)
	}
	return nil
}
