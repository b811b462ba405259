package onenet_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/onenet"
)

// vector is one case of testdata/vectors.json, written by the Python oracle
// tools/oracle/iotsign/gen.py.
type vector struct {
	Input struct {
		ProductID  string `json:"productId"`
		DeviceName string `json:"deviceName"`
		DeviceKey  string `json:"deviceKey"`
		SignMethod string `json:"signMethod"`
		IssuedAt   int64  `json:"issuedAt"`
		TTLSeconds int64  `json:"ttlSeconds"`
	} `json:"input"`
	Expect struct {
		ClientID           string `json:"clientId"`
		Username           string `json:"username"`
		Password           string `json:"password"`
		ExpiresAt          int64  `json:"expiresAt"`
		StringForSignature string `json:"stringForSignature"`
	} `json:"expect"`
}

const wantVectors = 56

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var vs []vector
	if err := dec.Decode(&vs); err != nil {
		tb.Fatalf("decoding testdata/vectors.json: %v", err)
	}
	if len(vs) != wantVectors {
		tb.Fatalf("testdata/vectors.json has %d cases, want %d", len(vs), wantVectors)
	}
	return vs
}

func TestSignConnectVectors(t *testing.T) {
	methods := map[string]int{}
	for i, v := range loadVectors(t) {
		methods[v.Input.SignMethod]++
		m, err := onenet.ParseMethod(v.Input.SignMethod)
		if err != nil {
			t.Fatal(err)
		}
		key, err := base64.StdEncoding.DecodeString(v.Input.DeviceKey)
		if err != nil {
			t.Fatal(err)
		}
		r := onenet.Request{
			ProductID:  v.Input.ProductID,
			DeviceName: v.Input.DeviceName,
			Method:     m,
			TTL:        time.Duration(v.Input.TTLSeconds) * time.Second,
			IssuedAt:   time.Unix(v.Input.IssuedAt, 0),
		}
		res := "products/" + r.ProductID + "/devices/" + r.DeviceName
		if got := onenet.StringForSignature(v.Expect.ExpiresAt, m, res); got != v.Expect.StringForSignature {
			t.Errorf("case %d: StringForSignature = %q, want %q", i, got, v.Expect.StringForSignature)
		}
		want := onenet.Login{
			ClientID:  v.Expect.ClientID,
			Username:  v.Expect.Username,
			Password:  v.Expect.Password,
			ExpiresAt: v.Expect.ExpiresAt,
		}
		got, err := onenet.SignConnect(r, onenet.KeyMAC(key))
		if err != nil || got != want {
			t.Errorf("case %d: SignConnect(%+v) =\n%+v, %v\nwant\n%+v", i, r, got, err, want)
		}
	}
	for _, m := range []string{"SHA256", "SHA1", "MD5"} {
		if methods[m] == 0 {
			t.Errorf("no vector for %s", m)
		}
	}
}
