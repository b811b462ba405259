package secrets

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go/v2/kwp/subtle"
)

// Transit computes device HMACs inside Vault's Transit engine: each
// device's secret is an imported Transit key of type hmac, and signerd asks
// Vault for the MAC, so signerd itself never holds the secret.
//
// Transit's HMAC offers SHA-2 and SHA-3 only: it serves the platform's
// hmacsha256 and nothing else.
type Transit struct {
	client  *vault.Client
	mount   string
	tmpl    string
	timeout time.Duration

	wrapMu  sync.Mutex
	wrapKey *rsa.PublicKey // the mount's BYOK wrapping key, once read
}

// TransitConfig configures Transit.
type TransitConfig struct {
	// Mount is the Transit mount; default "transit".
	Mount string
	// KeyTemplate names a device's key; default "{productKey}.{deviceName}"
	// (with the device name encoded, see KeyName).
	KeyTemplate string
	// Timeout bounds one Vault request; default DefaultVaultTimeout.
	Timeout time.Duration
}

// ErrExists: an import found the device's key already there.
var ErrExists = errors.New("already exists")

// NewTransit uses client (logged in and renewed by a Vault store).
func NewTransit(client *vault.Client, cfg TransitConfig) (*Transit, error) {
	if cfg.Mount == "" {
		cfg.Mount = "transit"
	}
	if cfg.KeyTemplate == "" {
		cfg.KeyTemplate = "{productKey}.{deviceName}"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultVaultTimeout
	}
	if !strings.Contains(cfg.KeyTemplate, "{productKey}") || !strings.Contains(cfg.KeyTemplate, "{deviceName}") {
		return nil, fmt.Errorf("transit key template %q: must contain {productKey} and {deviceName}", cfg.KeyTemplate)
	}
	return &Transit{client: client, mount: strings.Trim(cfg.Mount, "/"), tmpl: cfg.KeyTemplate, timeout: cfg.Timeout}, nil
}

// KeyName is the Transit key name of a device. Transit key names are
// \w(([\w-.]+)?\w)?, and device names may hold ':', '@' and end in '-' or
// '.', so every character of the device name but letters and digits is
// written as '_' and two hex digits ("dev-001" → "dev_2d001"): one name per
// device, never two devices per name.
func (t *Transit) KeyName(id DeviceID) string {
	var b strings.Builder
	for i := 0; i < len(id.DeviceName); i++ {
		c := id.DeviceName[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return strings.NewReplacer("{productKey}", id.ProductKey, "{deviceName}", b.String()).Replace(t.tmpl)
}

// keyPath is the API path of op ("keys", "hmac") on the device's key.
func (t *Transit) keyPath(id DeviceID, op string) string {
	return t.mount + "/" + op + "/" + url.PathEscape(t.KeyName(id))
}

// HMACHex returns the lower-case hex HMAC-SHA256 of content under the
// device's Transit key, as the platform's hmacsha256 wants it.
func (t *Transit) HMACHex(ctx context.Context, id DeviceID, content string) (string, error) {
	raw, err := t.hmac(ctx, id, []byte(content))
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(raw), nil
}

// Check implements MACer: Transit's HMAC has SHA-2 and SHA-3 only, so of
// the algorithms it serves HMACSHA256 alone.
func (t *Transit) Check(productKey string, alg Algorithm) error {
	if alg != HMACSHA256 {
		return &AlgorithmError{ProductKey: productKey, Home: "Vault Transit", Offers: "SHA-2/SHA-3 only",
			Algorithm: alg, Use: HMACSHA256}
	}
	return nil
}

// MAC implements MACer: Vault computes the HMAC under the device's Transit
// key, which never leaves Vault.
func (t *Transit) MAC(ctx context.Context, id DeviceID, alg Algorithm, content []byte) ([]byte, error) {
	if err := t.Check(id.ProductKey, alg); err != nil {
		return nil, err
	}
	return t.hmac(ctx, id, content)
}

// hmac returns the raw HMAC-SHA256 of content under the device's key.
func (t *Transit) hmac(ctx context.Context, id DeviceID, content []byte) ([]byte, error) {
	if strings.ContainsAny(id.ProductKey+id.DeviceName, "/?#%") {
		return nil, fmt.Errorf("device %q/%q: invalid name: %w", id.ProductKey, id.DeviceName, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	// Every message names this request's path, the one a policy must allow.
	path := t.keyPath(id, "hmac") + "/sha2-256"
	loc := fmt.Sprintf("device %s (vault %s)", id, path)
	s, err := t.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"input": base64.StdEncoding.EncodeToString(content),
	})
	if err != nil {
		var re *vault.ResponseError
		// Transit answers a missing key with 400 "encryption key not found".
		if errors.As(err, &re) && re.StatusCode == 400 && strings.Contains(strings.Join(re.Errors, " "), "not found") {
			return nil, fmt.Errorf("device %s: transit key %s missing (vault %s): %w", id, t.KeyName(id), t.keyPath(id, "keys"), ErrNotFound)
		}
		// classify names the request's path.
		return nil, fmt.Errorf("device %s: %w", id, classify(err))
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("%s: empty transit answer: %w", loc, ErrUnavailable)
	}
	mac, _ := s.Data["hmac"].(string)
	// "vault:v{N}:{base64}"
	parts := strings.SplitN(mac, ":", 3)
	if len(parts) != 3 || parts[0] != "vault" {
		return nil, fmt.Errorf("%s: unexpected transit HMAC format: %w", loc, ErrUnavailable)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != sha256.Size {
		return nil, fmt.Errorf("%s: undecodable transit HMAC: %w", loc, ErrUnavailable)
	}
	return raw, nil
}

// Import brings a device's secret into Transit as an hmac key with Vault's
// BYOK import: the secret is wrapped (AES-KWP under a fresh AES-256 key,
// itself RSA-OAEP-wrapped with Transit's wrapping key), so it crosses the
// wire only inside Vault's own envelope. An existing key is left untouched
// and reported as ErrExists.
func (t *Transit) Import(ctx context.Context, id DeviceID, secret []byte) error {
	// The wrapping key first, on its own budget (see wrappingKey); then the
	// import's requests on the usual one.
	rsaPub, err := t.wrappingKey(ctx, id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 4*t.timeout)
	defer cancel()
	keys := t.keyPath(id, "keys")
	if existing, err := t.client.Logical().ReadWithContext(ctx, keys); err == nil && existing != nil {
		return fmt.Errorf("device %s (vault %s): %w", id, keys, ErrExists)
	}
	ephemeral := make([]byte, 32)
	if _, err := rand.Read(ephemeral); err != nil {
		return err
	}
	kwp, err := subtle.NewKWP(ephemeral)
	if err != nil {
		return fmt.Errorf("transit import: %w", err)
	}
	wrappedSecret, err := kwp.Wrap(secret)
	if err != nil {
		return fmt.Errorf("transit import: wrap: %w", err)
	}
	wrappedKey, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, ephemeral, nil)
	if err != nil {
		return fmt.Errorf("transit import: %w", err)
	}
	_, err = t.client.Logical().WriteWithContext(ctx, keys+"/import", map[string]any{
		"ciphertext":    base64.StdEncoding.EncodeToString(append(wrappedKey, wrappedSecret...)),
		"type":          "hmac",
		"hash_function": "SHA256",
		"exportable":    false,
	})
	if err != nil {
		// classify names the request's path.
		return fmt.Errorf("device %s: import: %w", id, classify(err))
	}
	return nil
}

// wrappingKeyTimeout bounds the read of a mount's wrapping key. Vault makes
// that RSA-4096 key on the mount's first read, which takes seconds on a
// small node and tens of seconds on a loaded one: the per-request budget
// would report a healthy Vault as unavailable on a fresh mount's first
// import.
const wrappingKeyTimeout = 2 * time.Minute

// wrappingKey reads the mount's BYOK wrapping key once and keeps it: it is
// the same for every import, and one read per device would double an
// import's round trips.
func (t *Transit) wrappingKey(ctx context.Context, id DeviceID) (*rsa.PublicKey, error) {
	t.wrapMu.Lock()
	defer t.wrapMu.Unlock()
	if t.wrapKey != nil {
		return t.wrapKey, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wrappingKeyTimeout)
	defer cancel()
	ws, err := t.client.Logical().ReadWithContext(ctx, t.mount+"/wrapping_key")
	if err != nil {
		return nil, fmt.Errorf("device %s: transit wrapping key: %w", id, classify(err))
	}
	if ws == nil {
		return nil, fmt.Errorf("transit wrapping key: nothing at %s/wrapping_key (is %s/ a Transit mount?): %w", t.mount, t.mount, ErrNotFound)
	}
	pemKey, _ := ws.Data["public_key"].(string)
	block, _ := pem.Decode([]byte(pemKey))
	if block == nil {
		return nil, errors.New("transit wrapping key: not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("transit wrapping key: %w", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("transit wrapping key: not RSA")
	}
	t.wrapKey = rsaPub
	return rsaPub, nil
}
