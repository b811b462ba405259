package huawei_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signerd/signerd/signing/huawei"
)

// vector is one case of testdata/vectors.json, written by the Python oracle
// tools/oracle/iotsign/gen.py.
type vector struct {
	Input struct {
		DeviceID       string `json:"deviceId"`
		Secret         string `json:"secret"`
		IssuedAt       int64  `json:"issuedAt"`
		CheckTimestamp bool   `json:"checkTimestamp"`
	} `json:"input"`
	Expect struct {
		ClientID  string `json:"clientId"`
		Username  string `json:"username"`
		Password  string `json:"password"`
		Timestamp string `json:"timestamp"`
		ExpiresAt int64  `json:"expiresAt"`
	} `json:"expect"`
}

const wantVectors = 37

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
	checked := map[bool]int{}
	for i, v := range loadVectors(t) {
		checked[v.Input.CheckTimestamp]++
		issued := time.Unix(v.Input.IssuedAt, 0)
		if got := huawei.Timestamp(issued); got != v.Expect.Timestamp {
			t.Errorf("case %d: Timestamp(%v) = %q, want %q", i, issued, got, v.Expect.Timestamp)
		}
		r := huawei.Request{DeviceID: v.Input.DeviceID, CheckTimestamp: v.Input.CheckTimestamp, IssuedAt: issued}
		want := huawei.Login{
			ClientID:  v.Expect.ClientID,
			Username:  v.Expect.Username,
			Password:  v.Expect.Password,
			ExpiresAt: v.Expect.ExpiresAt,
		}
		got, err := huawei.SignConnect(r, huawei.SecretKeyMAC([]byte(v.Input.Secret)))
		if err != nil || got != want {
			t.Errorf("case %d: SignConnect(%+v) =\n%+v, %v\nwant\n%+v", i, r, got, err, want)
		}
	}
	if checked[true] == 0 || checked[false] == 0 {
		t.Errorf("vectors cover checkTimestamp %v, want both", checked)
	}
}
