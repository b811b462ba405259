package secrets_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/vectors"
	"github.com/signerd/signerd/secrets"
)

// algorithms maps the vectors' sign methods to secrets' algorithms.
var algorithms = map[string]secrets.Algorithm{
	"hmacsha256": secrets.HMACSHA256, "hmacsha1": secrets.HMACSHA1, "hmacmd5": secrets.HMACMD5,
}

// TestLocalMACerVectors checks the local MACer, alone and behind a Router,
// against every known-answer vector, byte for byte.
func TestLocalMACerVectors(t *testing.T) {
	mem := secrets.NewMemory()
	cs := vectors.MustLoad()
	for _, c := range cs {
		mem.Put(secrets.DeviceID{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName}, []byte(c.Input.DeviceSecret))
	}
	local := secrets.NewLocalMACer(mem)
	router := secrets.NewRouter(local, nil, nil)
	for _, c := range cs {
		id := secrets.DeviceID{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName}
		alg, ok := algorithms[c.Input.SignMethod]
		if !ok {
			t.Fatalf("vector method %q", c.Input.SignMethod)
		}
		for name, m := range map[string]secrets.MACer{"LocalMACer": local, "Router": router} {
			if err := m.Check(id.ProductKey, alg); err != nil {
				t.Errorf("%s.Check(%s, %v) = %v", name, id.ProductKey, alg, err)
			}
			content := []byte(c.Expect.SignContent)
			got, err := m.MAC(context.Background(), id, alg, content)
			if err != nil || hex.EncodeToString(got) != c.Expect.Password {
				t.Errorf("%s.MAC(%s, %v) = %x, %v; want %s", name, id, alg, got, err, c.Expect.Password)
			}
			if string(content) != c.Expect.SignContent {
				t.Errorf("%s.MAC modified the content", name)
			}
		}
	}
}

// TestLocalMACerErrors checks that store errors come back as the store
// gave them (their messages reach callers) and that no error carries the
// secret.
func TestLocalMACerErrors(t *testing.T) {
	const secret = "s3cr3t-v4lue-0123456789"
	mem := secrets.NewMemory()
	known := secrets.DeviceID{ProductKey: "a1PK", DeviceName: "dev-0001"}
	mem.Put(known, []byte(secret))
	unknown := secrets.DeviceID{ProductKey: "a1PK", DeviceName: "nobody-01"}
	_, storeErr := mem.Lookup(context.Background(), unknown)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		id      secrets.DeviceID
		alg     secrets.Algorithm
		wantIs  error
		wantMsg string
	}{
		{"unknown device", context.Background(), unknown, secrets.HMACSHA256, secrets.ErrNotFound, storeErr.Error()},
		{"store unavailable", cancelled, known, secrets.HMACSHA256, secrets.ErrUnavailable, ""},
		{"no algorithm", context.Background(), known, secrets.AlgorithmUnspecified, nil, "device a1PK/dev-0001: unknown HMAC algorithm Algorithm(0)"},
	}
	local := secrets.NewLocalMACer(mem)
	for _, tc := range tests {
		got, err := local.MAC(tc.ctx, tc.id, tc.alg, []byte("content"))
		if got != nil || err == nil {
			t.Errorf("%s: %x, %v; want an error", tc.name, got, err)
			continue
		}
		if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
			t.Errorf("%s: %v, want one wrapping %v", tc.name, err, tc.wantIs)
		}
		if tc.wantMsg != "" && err.Error() != tc.wantMsg {
			t.Errorf("%s: %q, want %q", tc.name, err, tc.wantMsg)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q carries the secret", tc.name, err)
		}
	}
}

// recorder is a MACer that records which product it was asked for.
type recorder struct {
	name  string
	asked *[]string
	check error
}

func (r recorder) Check(string, secrets.Algorithm) error { return r.check }

func (r recorder) MAC(_ context.Context, id secrets.DeviceID, _ secrets.Algorithm, _ []byte) ([]byte, error) {
	*r.asked = append(*r.asked, r.name+":"+id.ProductKey)
	return []byte(r.name), nil
}

// TestRouter checks which product goes where: products the setting puts
// in Transit to the Transit MACer, every other to the local one; a
// Transit product without Transit configured to neither.
func TestRouter(t *testing.T) {
	inTransit := func(pk string) bool { return strings.HasPrefix(pk, "a1Tr") }
	refused := errors.New("refused by the home")
	tests := []struct {
		name       string
		noTransit  bool
		transitErr error
		pk         string
		wantMAC    string // the MACer that answered, or "" for an error
		wantErr    string
		wantStored bool
	}{
		{"local product", false, nil, "a1Local", "local", "", true},
		{"Transit product", false, nil, "a1TrPK", "transit", "", false},
		{"Transit refuses the algorithm", false, refused, "a1TrPK", "", "refused by the home", false},
		{"local product, no Transit", true, nil, "a1Local", "local", "", true},
		{"Transit product, no Transit", true, nil, "a1TrPK", "", "product a1TrPK is in Transit mode, but this server has no Vault Transit configured", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			var transit secrets.MACer = recorder{"transit", &asked, tc.transitErr}
			if tc.noTransit {
				transit = nil
			}
			r := secrets.NewRouter(recorder{"local", &asked, nil}, transit, inTransit)
			checkErr := r.Check(tc.pk, secrets.HMACSHA1)
			var got []byte
			var macErr error
			if checkErr == nil {
				got, macErr = r.MAC(context.Background(), secrets.DeviceID{ProductKey: tc.pk, DeviceName: "dev-0001"}, secrets.HMACSHA1, []byte("c"))
			}
			if tc.wantErr != "" {
				if checkErr == nil || checkErr.Error() != tc.wantErr || len(asked) != 0 {
					t.Errorf("Check = %v (MACers asked: %v); want %q and no MAC", checkErr, asked, tc.wantErr)
				}
				if tc.noTransit {
					var nh *secrets.NoHomeError
					if _, err := r.MAC(context.Background(), secrets.DeviceID{ProductKey: tc.pk, DeviceName: "d"}, secrets.HMACSHA256, nil); !errors.As(err, &nh) || nh.ProductKey != tc.pk {
						t.Errorf("MAC = %v, want a *NoHomeError for %s", err, tc.pk)
					}
				}
			} else if checkErr != nil || macErr != nil || string(got) != tc.wantMAC || len(asked) != 1 || asked[0] != tc.wantMAC+":"+tc.pk {
				t.Errorf("Check, MAC = %v, %q, %v (asked %v); want the %s MACer", checkErr, got, macErr, asked, tc.wantMAC)
			}
			if err := r.InStore(tc.pk); (err == nil) != tc.wantStored {
				t.Errorf("InStore(%s) = %v, want stored=%v", tc.pk, err, tc.wantStored)
			} else if err != nil && err.Error() != "product "+tc.pk+" keeps its device secrets in Vault Transit" {
				t.Errorf("InStore(%s) = %q", tc.pk, err)
			}
		})
	}
	// Without a setting, every product is local.
	var asked []string
	r := secrets.NewRouter(recorder{"local", &asked, nil}, recorder{"transit", &asked, nil}, nil)
	if _, err := r.MAC(context.Background(), secrets.DeviceID{ProductKey: "a1TrPK", DeviceName: "d"}, secrets.HMACSHA256, nil); err != nil || len(asked) != 1 || asked[0] != "local:a1TrPK" {
		t.Errorf("nil setting: %v, asked %v; want local", err, asked)
	}
}

// TestTransitCheck checks Transit's algorithms without Vault: hmacsha256
// only, with the error the service turns into its answer.
func TestTransitCheck(t *testing.T) {
	tr, err := secrets.NewTransit(nil, secrets.TransitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []secrets.Algorithm{secrets.HMACSHA256, secrets.HMACSHA1, secrets.HMACMD5, secrets.AlgorithmUnspecified} {
		err := tr.Check("a1PK", alg)
		if alg == secrets.HMACSHA256 {
			if err != nil {
				t.Errorf("Check(%v) = %v", alg, err)
			}
			continue
		}
		var ae *secrets.AlgorithmError
		want := "product a1PK keeps its device secrets in Vault Transit, whose HMAC has SHA-2/SHA-3 only: use hmacsha256, not " + alg.String()
		if !errors.As(err, &ae) || ae.Algorithm != alg || ae.Use != secrets.HMACSHA256 || err.Error() != want {
			t.Errorf("Check(%v) = %v, want *AlgorithmError %q", alg, err, want)
		}
		// MAC refuses it the same way, before asking Vault (the client is nil).
		if _, err := tr.MAC(context.Background(), secrets.DeviceID{ProductKey: "a1PK", DeviceName: "dev-0001"}, alg, []byte("c")); !errors.As(err, &ae) {
			t.Errorf("MAC(%v) = %v, want *AlgorithmError", alg, err)
		}
	}
}

// TestRouterPlatforms: Transit mode is an Alibaba product's setting; a
// device of another platform whose product name is a Transit product's
// keeps its key local, and MACSecret (the key as the message, which
// Transit cannot compute) is served locally with the roles swapped.
func TestRouterPlatforms(t *testing.T) {
	mem := secrets.NewMemory()
	other := secrets.DeviceID{Platform: "someplat", ProductKey: "a1TrPK", DeviceName: "dev-0001"}
	mem.Put(other, []byte("the device's secret"))
	var asked []string
	r := secrets.NewRouter(secrets.NewLocalMACer(mem), recorder{"transit", &asked, nil}, func(pk string) bool { return pk == "a1TrPK" })
	got, err := r.MAC(context.Background(), other, secrets.HMACSHA256, []byte("content"))
	if err != nil || len(asked) != 0 {
		t.Fatalf("MAC of another platform's device = %v (Transit asked %v), want a local MAC", err, asked)
	}
	if want := hmacHex(t, "the device's secret", "content"); hex.EncodeToString(got) != want {
		t.Errorf("MAC = %x, want %s", got, want)
	}
	got, err = r.MACSecret(context.Background(), other, secrets.HMACSHA256, []byte("2018072417"))
	if err != nil {
		t.Fatalf("MACSecret: %v", err)
	}
	// HMAC keyed by the timestamp over the secret: Huawei IoTDA's rule.
	if want := hmacHex(t, "2018072417", "the device's secret"); hex.EncodeToString(got) != want {
		t.Errorf("MACSecret = %x, want %s", got, want)
	}
	if _, err := r.MACSecret(context.Background(), other, secrets.HMACSHA256, nil); err == nil {
		t.Error("MACSecret with an empty key succeeded")
	}
	// An Alibaba product in Transit cannot have the key used as a message.
	var ae *secrets.AlgorithmError
	if _, err := r.MACSecret(context.Background(), secrets.DeviceID{ProductKey: "a1TrPK", DeviceName: "dev-0001"}, secrets.HMACSHA256, []byte("k")); !errors.As(err, &ae) {
		t.Errorf("MACSecret of a Transit device = %v, want an *AlgorithmError", err)
	}
}

func hmacHex(t *testing.T, key, msg string) string {
	t.Helper()
	h := hmac.New(sha256.New, []byte(key))
	h.Write([]byte(msg))
	return hex.EncodeToString(h.Sum(nil))
}
