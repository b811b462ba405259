package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	vault "github.com/hashicorp/vault/api"
)

// ErrConflict: a check-and-set write found a newer version than the one it
// was based on (another replica wrote first).
var ErrConflict = errors.New("token record changed since it was read")

// Token is one PreVerify answer of the platform: the MQTT credentials of a
// device for one client ID. IotToken is a credential: String, GoString,
// Format and LogValue redact it, so a Token cannot reach a log line.
type Token struct {
	IotID    string    `json:"iotId"`
	IotToken string    `json:"iotToken"`
	Host     string    `json:"host"`
	Port     int       `json:"port"`
	IssuedAt time.Time `json:"issuedAt"`
	// Forced: fetched for a force_refresh, which the replicas then refuse
	// for the device until its interval has passed.
	Forced bool `json:"forced,omitempty"`
}

func (t Token) String() string {
	return fmt.Sprintf("{iotId %s, iotToken [redacted], %s:%d, issued %s}", t.IotID, t.Host, t.Port, t.IssuedAt.Format(time.RFC3339))
}
func (t Token) GoString() string           { return "secrets.Token" + t.String() }
func (t Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }
func (t Token) LogValue() slog.Value       { return slog.StringValue(t.String()) }
func (t TokenRecord) String() string {
	return fmt.Sprintf("token record v%d (%d tokens)", t.Version, len(t.Tokens))
}
func (t TokenRecord) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }
func (t TokenRecord) LogValue() slog.Value       { return slog.StringValue(t.String()) }

// TokenClaim says that Owner is asking the platform for a token of the
// device until Until: other replicas wait for its answer instead of asking
// too, so that N replicas make one platform call per device.
type TokenClaim struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// TokenRecord is everything kept for one device: its tokens by client ID
// and the claim of the replica fetching a new one, if any. Version is the
// store's version of the record (0: none stored yet); a Put succeeds only
// if the stored version is still Version.
type TokenRecord struct {
	Version int              `json:"-"`
	Tokens  map[string]Token `json:"tokens,omitempty"`
	Claim   *TokenClaim      `json:"claim,omitempty"`
}

// MaxTokensPerDevice bounds the client IDs whose tokens a record keeps;
// Trim drops the oldest beyond it.
const MaxTokensPerDevice = 8

// Trim drops the oldest tokens beyond MaxTokensPerDevice, so that a caller
// inventing client IDs cannot grow a record without bound.
func (t *TokenRecord) Trim() {
	for len(t.Tokens) > MaxTokensPerDevice {
		var oldest string
		for id, tok := range t.Tokens {
			if oldest == "" || tok.IssuedAt.Before(t.Tokens[oldest].IssuedAt) {
				oldest = id
			}
		}
		delete(t.Tokens, oldest)
	}
}

// MemoryTokens keeps token records in this process: for -dev, a single
// replica without Vault, and tests. It bounds the devices it holds (least
// recently used dropped first); versions keep counting for a dropped
// device's successor, as Vault's do.
type MemoryTokens struct {
	mu   sync.Mutex
	recs *lru.Cache[DeviceID, TokenRecord]
	next int
}

// NewMemoryTokens returns an empty in-memory token store holding at most
// size devices (default 100,000).
func NewMemoryTokens(size int) *MemoryTokens {
	if size <= 0 {
		size = 100_000
	}
	c, _ := lru.New[DeviceID, TokenRecord](size)
	return &MemoryTokens{recs: c}
}

// Get returns the record of id (Version 0 and no tokens when none).
func (m *MemoryTokens) Get(_ context.Context, id DeviceID) (TokenRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs.Get(id)
	if !ok {
		return TokenRecord{}, nil
	}
	return r.clone(), nil
}

// Put stores rec if the stored version is rec.Version and returns the new
// version, or an error wrapping ErrConflict.
func (m *MemoryTokens) Put(_ context.Context, id DeviceID, rec TokenRecord) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, _ := m.recs.Peek(id)
	if cur.Version != rec.Version {
		return 0, fmt.Errorf("device %s: stored v%d, written from v%d: %w", id, cur.Version, rec.Version, ErrConflict)
	}
	m.next++
	rec = rec.clone()
	rec.Version = m.next
	m.recs.Add(id, rec)
	return rec.Version, nil
}

func (t TokenRecord) clone() TokenRecord {
	c := t
	if t.Tokens != nil {
		c.Tokens = make(map[string]Token, len(t.Tokens))
		for k, v := range t.Tokens {
			c.Tokens[k] = v
		}
	}
	if t.Claim != nil {
		cl := *t.Claim
		c.Claim = &cl
	}
	return c
}

// DefaultTokenPathTemplate is where VaultTokens keeps a device's record in
// the Vault store's KV v2 mount.
const DefaultTokenPathTemplate = "preverify-tokens/{productKey}/{deviceName}"

// VaultTokens keeps token records in Vault's KV v2, one secret per device,
// written with check-and-set, so that every replica finds the token one of
// them fetched. It uses the Vault store's client, token, mount and timeout.
// signerd's policy (deploy/vault/policy.hcl) allows read, create and update
// on the template's path and nothing else there; nobody else's policy needs
// it. KV keeps the mount's max_versions (default 10) of each record: older
// tokens stay readable to signerd's policy only, until overwritten.
type VaultTokens struct {
	v    *Vault
	tmpl string
}

// NewVaultTokens returns the token store at tmpl in v's mount; tmpl
// defaults to DefaultTokenPathTemplate and must contain {productKey} and
// {deviceName}, and must not lie under the device secrets' path (then a
// token record could be read as a device secret, and the policy could not
// keep them apart).
func NewVaultTokens(v *Vault, tmpl string) (*VaultTokens, error) {
	if tmpl == "" {
		tmpl = DefaultTokenPathTemplate
	}
	if err := CheckTokenTemplate(tmpl, v.cfg.PathTemplate); err != nil {
		return nil, err
	}
	return &VaultTokens{v: v, tmpl: tmpl}, nil
}

// CheckTokenTemplate checks a token path template against the device
// secrets' template deviceTmpl (default DefaultPathTemplate).
func CheckTokenTemplate(tmpl, deviceTmpl string) error {
	if deviceTmpl == "" {
		deviceTmpl = DefaultPathTemplate
	}
	if err := checkTemplate(tmpl); err != nil {
		return err
	}
	if p := prefix(tmpl); p == "" || strings.HasPrefix(p, prefix(deviceTmpl)) || strings.HasPrefix(prefix(deviceTmpl), p) {
		return fmt.Errorf("vault token path template %q: must begin with a path of its own, apart from the device secrets' %q", tmpl, deviceTmpl)
	}
	return nil
}

// prefix is the part of a template before its first placeholder.
func prefix(t string) string {
	if i := strings.IndexByte(t, '{'); i >= 0 {
		return t[:i]
	}
	return t
}

func (s *VaultTokens) path(id DeviceID) string {
	return strings.NewReplacer("{productKey}", id.ProductKey, "{deviceName}", id.DeviceName).Replace(s.tmpl)
}

// Location names where the record of id is kept, for messages.
func (s *VaultTokens) Location(id DeviceID) string {
	return fmt.Sprintf("vault %s/data/%s", s.v.cfg.Mount, s.path(id))
}

// Get returns the record of id; Version 0 when there is none. A record
// whose latest version is deleted comes back empty with that version, so
// that the next Put overwrites it. Errors wrap ErrUnavailable,
// ErrPermission or ErrUnusable (a record signerd cannot parse), and never
// contain a token.
func (s *VaultTokens) Get(ctx context.Context, id DeviceID) (TokenRecord, error) {
	if err := checkDeviceID(id); err != nil {
		return TokenRecord{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.v.cfg.Timeout)
	defer cancel()
	sec, err := s.v.kv.Get(ctx, s.path(id))
	if errors.Is(err, vault.ErrSecretNotFound) {
		return TokenRecord{}, nil
	}
	if err != nil {
		cerr := classify(err)
		if errors.Is(cerr, ErrNotFound) {
			return TokenRecord{}, nil
		}
		return TokenRecord{}, fmt.Errorf("device %s: PreVerify token: %w", id, cerr)
	}
	var rec TokenRecord
	if sec == nil || sec.VersionMetadata == nil {
		return TokenRecord{}, fmt.Errorf("device %s: PreVerify token at %s: no version metadata: %w", id, s.Location(id), ErrUnusable)
	}
	rec.Version = sec.VersionMetadata.Version
	if sec.Data == nil {
		// Deleted latest version: its metadata still carries the version
		// the next check-and-set must name.
		return rec, nil
	}
	b, err := json.Marshal(sec.Data)
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		// json's errors name types and offsets, not values.
		return TokenRecord{}, fmt.Errorf("device %s: PreVerify token at %s: %w: %w", id, s.Location(id), err, ErrUnusable)
	}
	rec.Version = sec.VersionMetadata.Version
	return rec, nil
}

// Put writes rec with check-and-set on rec.Version and returns the new
// version. It returns an error wrapping ErrConflict when the record changed
// since it was read, ErrUnavailable or ErrPermission otherwise.
func (s *VaultTokens) Put(ctx context.Context, id DeviceID, rec TokenRecord) (int, error) {
	if err := checkDeviceID(id); err != nil {
		return 0, err
	}
	var data map[string]any
	b, err := json.Marshal(rec)
	if err == nil {
		err = json.Unmarshal(b, &data)
	}
	if err != nil {
		return 0, fmt.Errorf("device %s: encoding the PreVerify token record: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.v.cfg.Timeout)
	defer cancel()
	sec, err := s.v.kv.Put(ctx, s.path(id), data, vault.WithCheckAndSet(rec.Version))
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			return 0, fmt.Errorf("device %s: PreVerify token at %s: written from v%d: %w", id, s.Location(id), rec.Version, ErrConflict)
		}
		return 0, fmt.Errorf("device %s: storing the PreVerify token: %w", id, classify(err))
	}
	if sec == nil || sec.VersionMetadata == nil {
		return 0, fmt.Errorf("device %s: PreVerify token at %s: Vault answered no version: %w", id, s.Location(id), ErrUnusable)
	}
	return sec.VersionMetadata.Version, nil
}
