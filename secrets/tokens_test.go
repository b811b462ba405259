package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/secrets"
)

// tokenStore is service.TokenStore (not imported: service imports secrets).
type tokenStore interface {
	Get(context.Context, secrets.DeviceID) (secrets.TokenRecord, error)
	Put(context.Context, secrets.DeviceID, secrets.TokenRecord) (int, error)
}

const tokenValue = "tok-3f9a1c-credential"

func sampleToken() secrets.Token {
	return secrets.Token{IotID: "iot-1", IotToken: tokenValue, Host: "mqtt.example", Port: 8883,
		IssuedAt: time.Unix(1_800_000_000, 0).UTC()}
}

// TestTokenStores: check-and-set, the same for both stores; the Vault one
// with signerd's shipped policy, so that the policy is what allows it.
func TestTokenStores(t *testing.T) {
	stores := map[string]func(t *testing.T) (tokenStore, secrets.DeviceID){
		"memory": func(t *testing.T) (tokenStore, secrets.DeviceID) {
			return secrets.NewMemoryTokens(0), secrets.DeviceID{ProductKey: "a1Tok", DeviceName: "mem"}
		},
		"vault": func(t *testing.T) (tokenStore, secrets.DeviceID) {
			id := secrets.DeviceID{ProductKey: "a1Tok", DeviceName: fmt.Sprintf("cas-%d", time.Now().UnixNano())}
			forgetKV(t, sharedVault(t), "preverify-tokens/a1Tok/"+id.DeviceName)
			s, err := secrets.NewVaultTokens(tokenVault(t, policyToken(t, "signerd")), "")
			if err != nil {
				t.Fatal(err)
			}
			return s, id
		},
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, id := newStore(t)
			rec, err := s.Get(ctx, id)
			if err != nil || rec.Version != 0 || len(rec.Tokens) != 0 {
				t.Fatalf("Get of a new device = %v, %v; want an empty record, version 0", rec, err)
			}
			rec.Claim = &secrets.TokenClaim{Owner: "r1", Until: time.Unix(1_800_000_010, 0).UTC()}
			v1, err := s.Put(ctx, id, rec)
			if err != nil || v1 < 1 {
				t.Fatalf("first Put = %d, %v", v1, err)
			}
			// A second writer that read the same (empty) record loses.
			if _, err := s.Put(ctx, id, secrets.TokenRecord{}); !errors.Is(err, secrets.ErrConflict) {
				t.Fatalf("Put from a stale version = %v, want ErrConflict", err)
			}
			rec = secrets.TokenRecord{Version: v1, Tokens: map[string]secrets.Token{"c1": sampleToken()}}
			v2, err := s.Put(ctx, id, rec)
			if err != nil || v2 <= v1 {
				t.Fatalf("Put from the current version = %d, %v", v2, err)
			}
			got, err := s.Get(ctx, id)
			if err != nil || got.Version != v2 || got.Claim != nil || got.Tokens["c1"] != sampleToken() {
				t.Fatalf("Get = %+v (token equal: %v), %v; want v%d with the token", got, got.Tokens["c1"] == sampleToken(), err, v2)
			}
			if _, err := s.Put(ctx, id, rec); !errors.Is(err, secrets.ErrConflict) || strings.Contains(err.Error(), tokenValue) {
				t.Errorf("Put from v%d after v%d = %v, want ErrConflict without the token", v1, v2, err)
			}
		})
	}
}

// TestVaultTokensRecords: what Vault may hold at a record's path.
func TestVaultTokensRecords(t *testing.T) {
	shared := sharedVault(t)
	ctx := context.Background()
	s, err := secrets.NewVaultTokens(tokenVault(t, policyToken(t, "signerd")), "")
	if err != nil {
		t.Fatal(err)
	}
	kv := shared.Client.KVv2("iot")
	dn := fmt.Sprintf("rec-%d", time.Now().UnixNano())
	id := secrets.DeviceID{ProductKey: "a1Tok", DeviceName: dn}
	path := "preverify-tokens/a1Tok/" + dn
	forgetKV(t, shared, path)

	// Unparseable: a clear error naming the location, not the value.
	if _, err := kv.Put(ctx, path, map[string]any{"tokens": map[string]any{"c1": map[string]any{"iotToken": 42, "x": tokenValue}}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, id)
	if !errors.Is(err, secrets.ErrUnusable) || !strings.Contains(err.Error(), "iot/data/"+path) || strings.Contains(err.Error(), tokenValue) {
		t.Errorf("Get of a malformed record = %v; want ErrUnusable naming iot/data/%s, without the value", err, path)
	}
	// Deleted latest version: empty, and the next Put names its version.
	if err := kv.Delete(ctx, path); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get(ctx, id)
	if err != nil || rec.Version != 1 || rec.Tokens != nil {
		t.Fatalf("Get of a deleted record = %v, %v; want empty at version 1", rec, err)
	}
	rec.Tokens = map[string]secrets.Token{"c1": sampleToken()}
	if v, err := s.Put(ctx, id, rec); err != nil || v != 2 {
		t.Errorf("Put over the deleted version = %d, %v; want 2", v, err)
	}

	// The policy keeps signerd's device secrets out of reach of the token
	// store's paths and the other way round: bad names never leave the
	// template.
	for _, bad := range []secrets.DeviceID{{ProductKey: "a1Tok", DeviceName: "../x"}, {ProductKey: "a1Tok/..", DeviceName: "x"}, {ProductKey: "", DeviceName: "x"}} {
		if _, err := s.Get(ctx, bad); err == nil {
			t.Errorf("Get(%q) accepted", bad)
		}
		if _, err := s.Put(ctx, bad, secrets.TokenRecord{}); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
	}
}

func TestNewVaultTokensTemplates(t *testing.T) {
	v := tokenVault(t, policyToken(t, "signerd"))
	tests := []struct {
		tmpl string
		ok   bool
	}{
		{"", true},
		{"preverify-tokens/{productKey}/{deviceName}", true},
		{"tok/{deviceName}/{productKey}", true},
		{"preverify-tokens/{productKey}", false},
		{"devices/{productKey}/{deviceName}/token", false}, // under the device secrets
		{"/abs/{productKey}/{deviceName}", false},
		{"../x/{productKey}/{deviceName}", false},
	}
	for _, tt := range tests {
		_, err := secrets.NewVaultTokens(v, tt.tmpl)
		if (err == nil) != tt.ok {
			t.Errorf("NewVaultTokens(%q) = %v, want ok=%v", tt.tmpl, err, tt.ok)
		}
	}
}

// TestTokenRedacted: no formatting of a token or a record shows the
// credential.
func TestTokenRedacted(t *testing.T) {
	tok := sampleToken()
	rec := secrets.TokenRecord{Tokens: map[string]secrets.Token{"c": tok}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "token", tok, "record", rec)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "token", tok, "record", rec)
	for _, s := range []string{
		fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s %q %x", tok, tok, tok, tok, tok, tok),
		fmt.Sprint(rec), fmt.Sprintf("%v %+v %#v %s", rec, rec, rec, rec), fmt.Sprint(&rec), logs.String(),
	} {
		if strings.Contains(s, tokenValue) {
			t.Errorf("token shown in %q", s)
		}
	}
}

func TestMemoryTokensBounded(t *testing.T) {
	m := secrets.NewMemoryTokens(2)
	ctx := context.Background()
	for i := range 3 {
		if _, err := m.Put(ctx, secrets.DeviceID{ProductKey: "p", DeviceName: fmt.Sprint(i)}, secrets.TokenRecord{}); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := m.Get(ctx, secrets.DeviceID{ProductKey: "p", DeviceName: "0"}); r.Version != 0 {
		t.Errorf("least recently used device still held at v%d", r.Version)
	}
	// Its successor's versions keep counting: a writer holding the
	// dropped record's version cannot overwrite a newer one by accident.
	if v, err := m.Put(ctx, secrets.DeviceID{ProductKey: "p", DeviceName: "0"}, secrets.TokenRecord{}); err != nil || v != 4 {
		t.Errorf("Put after eviction = %d, %v; want 4", v, err)
	}
}

func TestTokenRecordTrim(t *testing.T) {
	rec := secrets.TokenRecord{Tokens: map[string]secrets.Token{}}
	base := time.Unix(1_800_000_000, 0)
	for i := range secrets.MaxTokensPerDevice + 3 {
		rec.Tokens[fmt.Sprint(i)] = secrets.Token{IotToken: "t", IssuedAt: base.Add(time.Duration(i) * time.Minute)}
	}
	rec.Trim()
	if len(rec.Tokens) != secrets.MaxTokensPerDevice {
		t.Fatalf("%d tokens after Trim, want %d", len(rec.Tokens), secrets.MaxTokensPerDevice)
	}
	for i := range 3 {
		if _, ok := rec.Tokens[fmt.Sprint(i)]; ok {
			t.Errorf("oldest token %d kept", i)
		}
	}
}
