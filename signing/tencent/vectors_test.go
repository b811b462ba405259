package tencent_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/tencent"
)

// vector is one case of testdata/vectors.json, written by the Python oracle
// tools/oracle/iotsign/gen.py.
type vector struct {
	Input struct {
		ProductID  string `json:"productId"`
		DeviceName string `json:"deviceName"`
		DevicePsk  string `json:"devicePsk"`
		ConnID     string `json:"connId"`
		SignMethod string `json:"signMethod"`
		IssuedAt   int64  `json:"issuedAt"`
		TTLSeconds int64  `json:"ttlSeconds"`
	} `json:"input"`
	Expect struct {
		ClientID  string `json:"clientId"`
		Username  string `json:"username"`
		Password  string `json:"password"`
		ExpiresAt int64  `json:"expiresAt"`
	} `json:"expect"`
}

const wantVectors = 53

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

func (v vector) request(tb testing.TB) (tencent.Request, []byte) {
	tb.Helper()
	m, err := tencent.ParseMethod(v.Input.SignMethod)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(v.Input.DevicePsk)
	if err != nil {
		tb.Fatal(err)
	}
	return tencent.Request{
		ProductID:  v.Input.ProductID,
		DeviceName: v.Input.DeviceName,
		ConnID:     v.Input.ConnID,
		Method:     m,
		TTL:        time.Duration(v.Input.TTLSeconds) * time.Second,
		IssuedAt:   time.Unix(v.Input.IssuedAt, 0),
	}, key
}

func TestSignConnectVectors(t *testing.T) {
	methods := map[string]int{}
	for i, v := range loadVectors(t) {
		methods[v.Input.SignMethod]++
		req, key := v.request(t)
		want := tencent.Login{
			ClientID:  v.Expect.ClientID,
			Username:  v.Expect.Username,
			Password:  v.Expect.Password,
			ExpiresAt: v.Expect.ExpiresAt,
		}
		got, err := tencent.SignConnect(req, tencent.KeyMAC(key))
		if err != nil || got != want {
			t.Errorf("case %d: SignConnect(%+v) =\n%+v, %v\nwant\n%+v", i, req, got, err, want)
		}
	}
	if methods["HMAC_SHA256"] == 0 || methods["HMAC_SHA1"] == 0 {
		t.Errorf("vectors cover methods %v, want both", methods)
	}
}
