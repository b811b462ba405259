package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
)

var record = audit.Record{
	Time:       time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC),
	RequestID:  "req-1",
	Caller:     "device:a1PK/dev:0001",
	AuthMethod: "mtls",
	Transport:  "rest",
	Peer:       "127.0.0.1:40000",
	RPC:        "SignMqttConnect",
	ProductKey: "a1PK",
	DeviceName: "dev:0001",
	Outcome:    "issued",
	Code:       "OK",
	Reason:     "",
}

// wantFields are the record's JSON fields; slog adds time, level and msg.
var wantFields = map[string]string{
	"event_time": "2024-03-01T12:00:00Z", "request_id": "req-1", "caller": "device:a1PK/dev:0001",
	"auth_method": "mtls", "transport": "rest", "peer": "127.0.0.1:40000", "rpc": "SignMqttConnect",
	"platform": "aliyun", "product_key": "a1PK", "module": "", "device_name": "dev:0001", "outcome": "issued", "code": "OK", "reason": "",
	"level": "INFO", "msg": "audit",
}

func TestRecordJSON(t *testing.T) {
	var buf bytes.Buffer
	audit.New(&buf).Write(context.Background(), record)
	audit.New(&buf).Write(context.Background(), audit.Record{Outcome: "denied", Reason: "policy"})

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want one per record:\n%s", len(lines), buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("record is not a JSON object: %v\n%s", err, lines[0])
	}
	if _, ok := m["time"].(string); !ok {
		t.Errorf("record has no time: %s", lines[0])
	}
	delete(m, "time")
	var got, want []string
	for k := range m {
		got = append(got, k)
	}
	for k := range wantFields {
		want = append(want, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record fields = %v, want %v", got, want)
	}
	for k, v := range wantFields {
		if m[k] != v {
			t.Errorf("field %s = %v, want %q", k, m[k], v)
		}
	}
	// Empty fields are written too, so every record has the same shape.
	var m2 map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m2); err != nil {
		t.Fatal(err)
	}
	if len(m2) != len(m)+1 || m2["outcome"] != "denied" || m2["caller"] != "" {
		t.Errorf("sparse record = %v, want every field present", m2)
	}
}

// TestRecordHasNoSecretField: every field of a Record is an identifier, a
// code or a time. A field that could carry a secret, password or token
// must not be added without this test being changed.
func TestRecordHasNoSecretField(t *testing.T) {
	allowed := map[string]reflect.Type{
		"Time": reflect.TypeFor[time.Time](), "RequestID": reflect.TypeFor[string](), "Caller": reflect.TypeFor[string](),
		"AuthMethod": reflect.TypeFor[string](), "Transport": reflect.TypeFor[string](), "Peer": reflect.TypeFor[string](),
		"RPC": reflect.TypeFor[string](), "ProductKey": reflect.TypeFor[string](), "DeviceName": reflect.TypeFor[string](),
		"Platform": reflect.TypeFor[string](), "Module": reflect.TypeFor[string](),
		"Outcome": reflect.TypeFor[string](), "Code": reflect.TypeFor[string](), "Reason": reflect.TypeFor[string](),
	}
	rt := reflect.TypeFor[audit.Record]()
	if rt.NumField() != len(allowed) {
		t.Errorf("Record has %d fields, want the %d reviewed ones", rt.NumField(), len(allowed))
	}
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		want, ok := allowed[f.Name]
		if !ok {
			t.Errorf("Record.%s is not a reviewed field", f.Name)
			continue
		}
		if f.Type != want {
			t.Errorf("Record.%s is %v, want %v", f.Name, f.Type, want)
		}
		for _, bad := range []string{"secret", "password", "token", "key", "credential", "body", "request", "header"} {
			if strings.Contains(strings.ToLower(f.Name), bad) && f.Name != "ProductKey" && f.Name != "RequestID" {
				t.Errorf("Record.%s looks able to carry a secret", f.Name)
			}
		}
	}
}

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for i := 0; i < 2; i++ { // the second Open appends
		l, closer, err := audit.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Write(context.Background(), record)
		if err := closer.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("audit file mode %v, want 0600", mode)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"msg":"audit"`); n != 2 {
		t.Errorf("audit file holds %d records, want 2 (appended):\n%s", n, data)
	}
	for _, dest := range []string{"", "stdout", "stderr"} {
		l, closer, err := audit.Open(dest)
		if err != nil || l == nil || closer == nil {
			t.Errorf("Open(%q) = %v, %v, %v", dest, l, closer, err)
		}
	}
	if _, _, err := audit.Open(filepath.Join(t.TempDir(), "missing-dir", "audit.log")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	var nilLogger *audit.Logger
	nilLogger.Write(context.Background(), record) // must not panic
}

// TestTrackReport: outcomes reported for a tracked call come back in the
// order reported, from concurrent reporters too; reporting for an
// untracked call is a no-op.
func TestTrackReport(t *testing.T) {
	audit.Report(context.Background(), audit.Outcome{Reason: "lost"}) // untracked: no panic, nothing kept
	ctx, outcomes := audit.Track(context.Background())
	if got := outcomes(); len(got) != 0 {
		t.Fatalf("fresh call has outcomes %v", got)
	}
	audit.Report(ctx, audit.Outcome{Device: auth.Device{ProductKey: "a1P", DeviceName: "d1"}},
		audit.Outcome{Device: auth.Device{ProductKey: "a1P", DeviceName: "d2"}, Err: errors.New("x")})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); audit.Report(ctx, audit.Outcome{Reason: "concurrent"}) }()
	}
	wg.Wait()
	got := outcomes()
	if len(got) != 10 || got[0].Device.DeviceName != "d1" || got[1].Device.DeviceName != "d2" || got[1].Err == nil {
		t.Errorf("outcomes %v, want d1, d2, then 8 more", got)
	}
	// The list handed out is a copy: later reports do not change it.
	audit.Report(ctx, audit.Outcome{})
	if len(got) != 10 || len(outcomes()) != 11 {
		t.Errorf("outcomes list shared with the recorder")
	}
}
