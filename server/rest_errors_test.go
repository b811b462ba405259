package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
)

// restRoute is one REST route of SignerService, read from the proto's
// google.api.http annotations, so that a route added to the proto is
// covered by these tests without a change here.
type restRoute struct {
	rpc      string
	method   string
	template string   // /v1/products/{product_key}/devices/{device_name}:signMqttConnect
	vars     []string // product_key, device_name
	input    protoreflect.MessageDescriptor
}

var templateVar = regexp.MustCompile(`\{([a-z_]+)\}`)

func restRoutes(t testing.TB) []restRoute {
	t.Helper()
	sd := signerv1.File_signer_v1_signer_proto.Services().ByName("SignerService")
	var out []restRoute
	for i := 0; i < sd.Methods().Len(); i++ {
		m := sd.Methods().Get(i)
		rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil {
			t.Fatalf("%s has no google.api.http rule", m.Name())
		}
		r := restRoute{rpc: string(m.Name()), input: m.Input()}
		switch p := rule.GetPattern().(type) {
		case *annotations.HttpRule_Post:
			r.method, r.template = http.MethodPost, p.Post
		case *annotations.HttpRule_Get:
			r.method, r.template = http.MethodGet, p.Get
		case *annotations.HttpRule_Put:
			r.method, r.template = http.MethodPut, p.Put
		case *annotations.HttpRule_Delete:
			r.method, r.template = http.MethodDelete, p.Delete
		case *annotations.HttpRule_Patch:
			r.method, r.template = http.MethodPatch, p.Patch
		default:
			t.Fatalf("%s: unsupported pattern %T", m.Name(), p)
		}
		for _, v := range templateVar.FindAllStringSubmatch(r.template, -1) {
			r.vars = append(r.vars, v[1])
		}
		out = append(out, r)
	}
	if len(out) < 6 {
		t.Fatalf("found %d routes in the proto, want at least 6", len(out))
	}
	return out
}

// path fills the route's variables: raw[var] as is (already escaped), the
// others from good.
func (r restRoute) path(good map[string]string, raw map[string]string) string {
	return templateVar.ReplaceAllStringFunc(r.template, func(v string) string {
		name := v[1 : len(v)-1]
		if s, ok := raw[name]; ok {
			return s
		}
		return url.PathEscape(good[name])
	})
}

// badStringBody is a JSON body for the route with bad (raw bytes) in one
// string field, found from the request type, and that field's JSON path;
// "" for a request whose strings are all path parameters.
func (r restRoute) badStringBody(bad string) (body, field string) {
	fields := r.input.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.StringKind && !fd.IsList() && !slices.Contains(r.vars, string(fd.Name())) {
			return `{"` + fd.JSONName() + `":"` + bad + `"}`, fd.JSONName()
		}
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Kind() != protoreflect.MessageKind || !fd.IsList() {
			continue
		}
		inner := fd.Message().Fields()
		for j := 0; j < inner.Len(); j++ {
			if in := inner.Get(j); in.Kind() == protoreflect.StringKind && !in.IsList() {
				return `{"` + fd.JSONName() + `":[{},{"` + in.JSONName() + `":"` + bad + `"}]}`, fd.JSONName() + "[1]." + in.JSONName()
			}
		}
	}
	return "", ""
}

// restAnswer is one REST answer, parsed.
type restAnswer struct {
	httpStatus int
	header     http.Header
	raw        []byte
	code       codes.Code
	message    string
	fields     []string // the BadRequest's field violations
}

func doREST(t testing.TB, base, method, path, body string, header http.Header) restAnswer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := restAnswer{httpStatus: resp.StatusCode, header: resp.Header, raw: raw}
	if resp.StatusCode == http.StatusOK {
		return a
	}
	type jsonStatus struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Type            string `json:"@type"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	}
	// A streaming route answers an error as a stream message.
	var st struct {
		jsonStatus
		Error *jsonStatus `json:"error"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Errorf("%s %q: HTTP %d with a body that is not a JSON status: %q", method, path, resp.StatusCode, raw)
	}
	if st.Error != nil {
		st.jsonStatus = *st.Error
	}
	a.code, a.message = codes.Code(st.Code), st.Message
	for _, d := range st.Details {
		if d.Type == "type.googleapis.com/google.rpc.BadRequest" {
			for _, fv := range d.FieldViolations {
				a.fields = append(a.fields, fv.Field)
			}
		}
	}
	return a
}

// recordedServer is a -dev server (anonymous callers, a memory store with
// one device) whose log and audit output the test reads.
type recordedServer struct {
	*testServer
	audit *logBuffer
	good  map[string]string
}

func startRecorded(t testing.TB, cfg server.Config) *recordedServer {
	t.Helper()
	a := &logBuffer{}
	cfg.Audit = audit.New(a)
	if cfg.Service == nil {
		store := secrets.NewMemory()
		store.Put(secrets.DeviceID{ProductKey: "a1TestPK01", DeviceName: "dev-a-0001"}, []byte("0123456789abcdef0123456789abcdef"))
		cfg.Service = service.New(store, service.WithAuthorizer(auth.AllowAll()))
	}
	return &recordedServer{testServer: start(t, cfg), audit: a,
		good: map[string]string{"product_key": "a1TestPK01", "device_name": "dev-a-0001",
			"hub": "test-hub", "device_id": "dev-a-0001", "id_scope": "0ne00000A0A", "registration_id": "dev-a-0001", "product_id": "TESTPRD001"}}
}

// records returns the JSON lines of buf whose request_id is id.
func records(t testing.TB, buf *logBuffer, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["request_id"] == id {
			out = append(out, m)
		}
	}
	return out
}

// checkRecorded checks that the request with id left a log line and an
// audit record of the rpc with the code, and that the answer carried id.
func (s *recordedServer) checkRecorded(t testing.TB, what string, a restAnswer, id, rpc string, code codes.Code) []map[string]any {
	t.Helper()
	if got := a.header.Values("X-Request-Id"); len(got) != 1 || got[0] != id {
		t.Errorf("%s: X-Request-Id %q, want [%q]", what, got, id)
	}
	if len(records(t, s.logs, id)) == 0 {
		t.Errorf("%s: no log line with request id %s", what, id)
	}
	recs := records(t, s.audit, id)
	if len(recs) == 0 {
		t.Errorf("%s: no audit record with request id %s", what, id)
	}
	for _, r := range recs {
		if r["rpc"] != rpc || r["code"] != code.String() || r["reason"] == "" || r["reason"] == nil {
			t.Errorf("%s: audit record %v, want rpc %s, code %v and a reason", what, r, rpc, code)
		}
	}
	return recs
}

// TestRESTInvalidUTF8 sends strings that are not valid UTF-8 in every path
// parameter, a body string field and a query parameter of every route:
// each is a 400 INVALID_ARGUMENT naming the field, answered with the
// request id, logged and audited. (gRPC's marshalling of such a path
// parameter used to fail inside the gateway: a bare 500, recorded nowhere.)
func TestRESTInvalidUTF8(t *testing.T) {
	s := startRecorded(t, server.Config{})
	bad := map[string]string{ // escaped for a URL, and raw for a body
		"0xFF": "%FF", "overlong slash": "%C0%AF", "surrogate": "%ED%A0%80",
		"beyond U+10FFFF": "%F4%90%80%80", "truncated": "%E2%82",
	}
	n := 0
	check := func(t *testing.T, what string, r restRoute, path, body, wantField string) {
		t.Helper()
		n++
		id := fmt.Sprintf("utf8-%04d", n)
		a := doREST(t, s.base, r.method, path, body, http.Header{"X-Request-Id": {id}})
		if a.httpStatus != http.StatusBadRequest || a.code != codes.InvalidArgument {
			t.Errorf("%s %s: HTTP %d %v, want 400 INVALID_ARGUMENT; body %s", what, path, a.httpStatus, a.code, a.raw)
		}
		if !slices.Contains(a.fields, wantField) {
			t.Errorf("%s %s: field violations %q, want %q; body %s", what, path, a.fields, wantField, a.raw)
		}
		recs := s.checkRecorded(t, what, a, id, r.rpc, codes.InvalidArgument)
		for _, rec := range recs {
			if rec["outcome"] != "rejected" {
				t.Errorf("%s: audit outcome %v, want rejected", what, rec["outcome"])
			}
		}
	}
	for _, r := range restRoutes(t) {
		t.Run(r.rpc, func(t *testing.T) {
			for name, esc := range bad {
				raw, _ := url.PathUnescape(esc)
				for _, v := range r.vars {
					// Appended to a good value, as in dev-a-0001%FF.
					check(t, "path "+v+" "+name, r, r.path(s.good, map[string]string{v: url.PathEscape(s.good[v]) + esc}), "{}", v)
				}
				if body, field := r.badStringBody("x" + raw + "y"); body != "" {
					check(t, "body "+name, r, r.path(s.good, nil), body, field)
				}
				check(t, "query "+name, r, r.path(s.good, nil)+"?q"+esc+"=1&x="+esc, "{}", "x")
			}
		})
	}
	if n < 6*len(bad) {
		t.Fatalf("only %d requests", n)
	}
	// Nothing was ever a server fault.
	if strings.Contains(s.logs.String(), `"level":"ERROR"`) {
		t.Errorf("error logged for bad input:\n%s", s.logs.String())
	}
}

// TestRESTRefusalsRecorded: a request the gateway refuses on its own (a
// body it cannot decode or that is too large, an unknown field) answers with
// the request id, and is logged and audited under it, naming the device of
// its path; with no X-Request-Id from the caller, the generated one is the
// same in the answer, the log and the audit record. Every other REST answer
// carries an id too.
func TestRESTRefusalsRecorded(t *testing.T) {
	s := startRecorded(t, server.Config{})
	r := restRoutes(t)[0]
	if r.rpc != "SignMqttConnect" {
		t.Fatalf("first route is %s", r.rpc)
	}
	path := r.path(s.good, nil)
	tests := []struct {
		name, body, field string
	}{
		{"bad JSON", `{"clientId":`, "body"},
		{"unknown field", `{"deviceSecret":"x"}`, "deviceSecret"},
		{"too large", `{"clientId":"` + strings.Repeat("a", 64<<10) + `"}`, "body"},
		{"trailing data", `{} {}`, "body"},
		{"bad enum", `{"signMethod":"SIGN_METHOD_NOPE"}`, "signMethod"},
	}
	for i, tc := range tests {
		for _, sendID := range []bool{true, false} {
			h := http.Header{}
			id := fmt.Sprintf("refused-%02d", i)
			if sendID {
				h.Set("X-Request-Id", id)
			}
			a := doREST(t, s.base, http.MethodPost, path, tc.body, h)
			if !sendID {
				id = a.header.Get("X-Request-Id")
				if id == "" {
					t.Fatalf("%s: no X-Request-Id in the answer", tc.name)
				}
			}
			if a.httpStatus != http.StatusBadRequest || !slices.Equal(a.fields, []string{tc.field}) {
				t.Errorf("%s: HTTP %d, fields %q; want 400 naming %s; body %s", tc.name, a.httpStatus, a.fields, tc.field, a.raw)
			}
			for _, rec := range s.checkRecorded(t, tc.name, a, id, "SignMqttConnect", codes.InvalidArgument) {
				if rec["product_key"] != s.good["product_key"] || rec["device_name"] != s.good["device_name"] || rec["transport"] != "rest" {
					t.Errorf("%s: audit record %v does not name the path's device over rest", tc.name, rec)
				}
			}
		}
	}

	// Answers that are no RPC still carry a request id; a routing error
	// is logged under it.
	for _, p := range []struct{ method, path string }{
		{http.MethodPost, "/v1/nowhere"},
		{http.MethodGet, path},
		{http.MethodGet, "/healthz"},
		{http.MethodGet, "/readyz"},
		{http.MethodGet, "/openapi.json"},
	} {
		a := doREST(t, s.base, p.method, p.path, "", http.Header{"X-Request-Id": {"plain-1"}})
		if got := a.header.Values("X-Request-Id"); len(got) != 1 || got[0] != "plain-1" {
			t.Errorf("%s %s: X-Request-Id %q", p.method, p.path, got)
		}
	}
	if len(records(t, s.logs, "plain-1")) < 2 {
		t.Errorf("routing errors not logged with their request id")
	}

	// A header the gateway cannot read, before it knows the RPC: named,
	// and logged under the request id (there is no call to audit).
	a := doREST(t, s.base, http.MethodPost, path, "{}", http.Header{"X-Request-Id": {"timeout-1"}, "Grpc-Timeout": {"soon"}})
	if a.httpStatus != http.StatusBadRequest || !slices.Equal(a.fields, []string{"Grpc-Timeout"}) || a.header.Get("X-Request-Id") != "timeout-1" {
		t.Errorf("bad Grpc-Timeout: HTTP %d, fields %q, X-Request-Id %q: %s", a.httpStatus, a.fields, a.header.Get("X-Request-Id"), a.raw)
	}
	if len(records(t, s.logs, "timeout-1")) == 0 {
		t.Error("bad Grpc-Timeout: no log line with its request id")
	}

	// A request id that is not sane is replaced, everywhere alike.
	a = doREST(t, s.base, http.MethodPost, path, `{"x":1}`, http.Header{"X-Request-Id": {"bad id\twith tab"}})
	id := a.header.Get("X-Request-Id")
	if id == "" || strings.Contains(id, " ") {
		t.Fatalf("X-Request-Id %q for an insane caller id", id)
	}
	s.checkRecorded(t, "replaced id", a, id, "SignMqttConnect", codes.InvalidArgument)
}

// FuzzRESTPathSegment puts arbitrary bytes in each path parameter of every
// route. The property: never a server fault (no 5xx; 501 only for an RPC
// this server does not enable), every error is a JSON status with the
// request id, every 400 names a field, and a value that is not UTF-8 is
// a 400 naming that parameter (unless it holds a "/": then no route
// matches, a 404).
func FuzzRESTPathSegment(f *testing.F) {
	for _, s := range []string{"dev-a-0001\xff", "\xc0\xaf", "\xed\xa0\x80", "dev-a-0001", "a/b", "..", "%", "a:b", "\xff:x", "é", "a\x00b", " ", "dev-a-0001\xe2\x82"} {
		f.Add(s)
	}
	s := startRecorded(f, server.Config{})
	routes := restRoutes(f)
	f.Fuzz(func(t *testing.T, seg string) {
		for _, r := range routes {
			for _, v := range r.vars {
				path := r.path(s.good, map[string]string{v: url.PathEscape(seg)})
				a := doREST(t, s.base, r.method, path, "{}", nil)
				what := fmt.Sprintf("%s %s=%q", r.rpc, v, seg)
				if a.header.Get("X-Request-Id") == "" {
					t.Errorf("%s: HTTP %d without X-Request-Id", what, a.httpStatus)
				}
				switch {
				case a.httpStatus == http.StatusOK:
				case a.httpStatus == http.StatusNotImplemented && utf8.ValidString(seg) && strings.Contains(a.message, "not enabled"):
				case a.httpStatus >= 500:
					t.Errorf("%s: HTTP %d: %s", what, a.httpStatus, a.raw)
				case a.httpStatus == http.StatusBadRequest && len(a.fields) == 0:
					t.Errorf("%s: 400 naming no field: %s", what, a.raw)
				case a.code == codes.OK:
					t.Errorf("%s: HTTP %d without a JSON status: %s", what, a.httpStatus, a.raw)
				}
				// A "/" (even escaped: the gateway unescapes before routing)
				// makes it another path, which no route matches.
				routable := !strings.Contains(seg, "/")
				if !utf8.ValidString(seg) && routable && (a.httpStatus != http.StatusBadRequest || !slices.Contains(a.fields, v)) {
					t.Errorf("%s: HTTP %d fields %q, want 400 naming %s: %s", what, a.httpStatus, a.fields, v, a.raw)
				}
				if bytes.Contains(a.raw, []byte(`"code":13`)) {
					t.Errorf("%s: INTERNAL: %s", what, a.raw)
				}
			}
		}
	})
}

// TestUnimplementedIsNotAnError: RegisterDevice on a server without
// registration (-dev) is the documented 501, a refusal the caller can act
// on, logged at INFO (not ERROR, which pages operators) and audited.
func TestUnimplementedIsNotAnError(t *testing.T) {
	s := startRecorded(t, server.Config{})
	var r restRoute
	for _, rt := range restRoutes(t) {
		if rt.rpc == "RegisterDevice" {
			r = rt
		}
	}
	a := doREST(t, s.base, r.method, r.path(s.good, nil), "{}", http.Header{"X-Request-Id": {"register-1"}})
	if a.httpStatus != http.StatusNotImplemented || a.code != codes.Unimplemented {
		t.Fatalf("RegisterDevice: HTTP %d %v, want 501 UNIMPLEMENTED: %s", a.httpStatus, a.code, a.raw)
	}
	logs := records(t, s.logs, "register-1")
	if len(logs) == 0 {
		t.Fatal("no log line for the call")
	}
	for _, l := range logs {
		if l["level"] != "INFO" {
			t.Errorf("log line at %v, want INFO: %v", l["level"], l)
		}
	}
	s.checkRecorded(t, "RegisterDevice", a, "register-1", "RegisterDevice", codes.Unimplemented)
}
