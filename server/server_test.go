package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/vectors"
	"github.com/signerd/signerd/metrics"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
)

const wantVectors = 60

var clock = time.Date(2024, 3, 1, 12, 0, 0, 123_000_000, time.UTC)

// logBuffer is an io.Writer safe for the concurrent writes of a logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a running server.Server with clients for both transports.
type testServer struct {
	srv    *server.Server
	base   string // http://host:port
	conn   *grpc.ClientConn
	client signerv1.SignerServiceClient
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error // receives Serve's result
	// shuttingDown is closed when the server logs that it drains.
	shuttingDown chan struct{}
}

// notifyHandler closes ch at the first record whose message starts with
// prefix.
type notifyHandler struct {
	slog.Handler
	prefix string
	ch     chan struct{}
	once   *sync.Once
}

func (h *notifyHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.once.Do(func() { close(h.ch) })
	}
	return h.Handler.Handle(ctx, r)
}

func (h *notifyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &notifyHandler{Handler: h.Handler.WithAttrs(as), prefix: h.prefix, ch: h.ch, once: h.once}
}

func (h *notifyHandler) WithGroup(name string) slog.Handler {
	return &notifyHandler{Handler: h.Handler.WithGroup(name), prefix: h.prefix, ch: h.ch, once: h.once}
}

// anonymous is -dev's authentication: every caller admitted.
func anonymous() *auth.Authenticator {
	return auth.NewAuthenticator(auth.Authenticator{AllowAnonymous: true})
}

// start runs a server for cfg on ephemeral loopback ports until the test
// ends, and checks then that Serve returned nil.
func start(t testing.TB, cfg server.Config) *testServer {
	t.Helper()
	logs := &logBuffer{}
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Authenticator == nil {
		cfg.Authenticator = anonymous()
	}
	shuttingDown := make(chan struct{})
	cfg.Logger = slog.New(&notifyHandler{
		Handler: slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		prefix:  "shutting down", ch: shuttingDown, once: &sync.Once{},
	})
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, base: "http://" + srv.HTTPAddr().String(), logs: logs, cancel: cancel,
		done: make(chan error, 1), shuttingDown: shuttingDown}
	go func() { ts.done <- srv.Serve(ctx) }()

	ts.conn, err = grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		t.Fatalf("grpc.NewClient: %v", err)
	}
	ts.client = signerv1.NewSignerServiceClient(ts.conn)
	t.Cleanup(func() {
		ts.conn.Close()
		ts.stop(t)
	})
	return ts
}

// stop cancels the server's context and checks that Serve returns nil. It
// may be called more than once.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ts.cancel()
	if err, ok := <-ts.done; ok {
		close(ts.done)
		if err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	}
}

func newVectorServer(t *testing.T) (*testServer, []vectors.Case) {
	t.Helper()
	cs := vectors.MustLoad()
	if len(cs) != wantVectors {
		t.Fatalf("vectors: got %d cases, want %d", len(cs), wantVectors)
	}
	store := secrets.NewMemory()
	for _, c := range cs {
		store.Put(secrets.DeviceID{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName}, []byte(c.Input.DeviceSecret))
	}
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(func() time.Time { return clock }))
	return start(t, server.Config{Service: svc}), cs
}

var signMethods = map[string]signerv1.SignMethod{
	"hmacsha256": signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256,
	"hmacsha1":   signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1,
	"hmacmd5":    signerv1.SignMethod_SIGN_METHOD_HMAC_MD5,
}

var secureModes = map[int]signerv1.Transport{
	2: signerv1.Transport_TRANSPORT_TLS,
	3: signerv1.Transport_TRANSPORT_TCP,
}

// vectorRequest is the gRPC request for one known-answer case.
func vectorRequest(t *testing.T, c vectors.Case) *signerv1.SignMqttConnectRequest {
	t.Helper()
	m, ok := signMethods[c.Input.SignMethod]
	if !ok {
		t.Fatalf("vector has unknown signMethod %q", c.Input.SignMethod)
	}
	tr, ok := secureModes[c.Input.SecureMode]
	if !ok {
		t.Fatalf("vector has unknown secureMode %d", c.Input.SecureMode)
	}
	req := &signerv1.SignMqttConnectRequest{
		ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName,
		ClientId: c.Input.ClientID, SignMethod: m, Transport: tr,
	}
	if c.Input.Timestamp == "" {
		req.OmitTimestamp = true
	} else {
		ts, err := strconv.ParseInt(c.Input.Timestamp, 10, 64)
		if err != nil {
			t.Fatalf("vector timestamp %q: %v", c.Input.Timestamp, err)
		}
		req.TimestampMs = proto.Int64(ts)
	}
	return req
}

// vectorBody is the REST body for one known-answer case, written by hand
// with the API's camelCase JSON names. numericTimestamp chooses between the
// two encodings protojson accepts for an int64.
func vectorBody(t *testing.T, c vectors.Case, numericTimestamp bool) string {
	t.Helper()
	body := map[string]any{
		"clientId":   c.Input.ClientID,
		"signMethod": signMethods[c.Input.SignMethod].String(),
		"transport":  secureModes[c.Input.SecureMode].String(),
	}
	switch {
	case c.Input.Timestamp == "":
		body["omitTimestamp"] = true
	case numericTimestamp:
		body["timestampMs"] = json.RawMessage(c.Input.Timestamp)
	default:
		body["timestampMs"] = c.Input.Timestamp
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func signPath(pk, dn string) string {
	return "/v1/products/" + url.PathEscape(pk) + "/devices/" + url.PathEscape(dn) + ":signMqttConnect"
}

// post sends body to path and returns the status code and response body.
func (ts *testServer) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	return ts.do(t, http.MethodPost, path, body)
}

func (ts *testServer) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, b
}

// restResponseKeys are the JSON names of every SignMqttConnectResponse
// field; the gateway emits all of them.
var restResponseKeys = []string{
	"host", "port", "clientId", "username", "password", "transport", "uri",
	"keepAliveSeconds", "cleanSession", "protocolVersion", "issuedAt", "expiresAt",
}

func TestVectors(t *testing.T) {
	ts, cs := newVectorServer(t)
	for i, c := range cs {
		t.Run(fmt.Sprintf("%02d_%s_mode%d", i, c.Input.SignMethod, c.Input.SecureMode), func(t *testing.T) {
			req := vectorRequest(t, c)
			g, err := ts.client.SignMqttConnect(context.Background(), req)
			if err != nil {
				t.Fatalf("gRPC SignMqttConnect(%v): %v", req, err)
			}
			if g.GetClientId() != c.Expect.ClientID || g.GetUsername() != c.Expect.Username || g.GetPassword() != c.Expect.Password {
				t.Errorf("gRPC answer = %q, %q, %q; want %q, %q, %q",
					g.GetClientId(), g.GetUsername(), g.GetPassword(), c.Expect.ClientID, c.Expect.Username, c.Expect.Password)
			}

			body := vectorBody(t, c, i%2 == 1)
			code, resp := ts.post(t, signPath(c.Input.ProductKey, c.Input.DeviceName), body)
			if code != http.StatusOK {
				t.Fatalf("REST %s: status %d, body %s", body, code, resp)
			}
			var m map[string]any
			if err := json.Unmarshal(resp, &m); err != nil {
				t.Fatalf("REST answer %s: %v", resp, err)
			}
			for _, k := range restResponseKeys {
				if _, ok := m[k]; !ok {
					t.Errorf("REST answer %s lacks %q", resp, k)
				}
			}
			if len(m) != len(restResponseKeys) {
				t.Errorf("REST answer has keys %v, want exactly %v", keys(m), restResponseKeys)
			}
			// An Alibaba login does not expire: the field is there (the
			// gateway writes every field) and null.
			if v, ok := m["expiresAt"]; !ok || v != nil {
				t.Errorf("REST answer expiresAt = %v, want null", v)
			}
			if m["clientId"] != c.Expect.ClientID || m["username"] != c.Expect.Username || m["password"] != c.Expect.Password {
				t.Errorf("REST answer = %q, %q, %q; want %q, %q, %q",
					m["clientId"], m["username"], m["password"], c.Expect.ClientID, c.Expect.Username, c.Expect.Password)
			}
			if m["transport"] != req.GetTransport().String() {
				t.Errorf("REST transport = %v, want %q", m["transport"], req.GetTransport().String())
			}
			// One implementation behind both transports: equal answers.
			var r signerv1.SignMqttConnectResponse
			if err := protojson.Unmarshal(resp, &r); err != nil {
				t.Fatalf("REST answer %s: %v", resp, err)
			}
			if !proto.Equal(&r, g) {
				t.Errorf("REST answer %v differs from gRPC answer %v", prototext.Format(&r), prototext.Format(g))
			}
			for _, s := range []string{string(resp), prototext.Format(g)} {
				if strings.Contains(s, c.Input.DeviceSecret) {
					t.Errorf("answer contains the device secret: %s", s)
				}
			}
		})
	}
	logs := ts.logs.String()
	for _, c := range cs {
		for _, s := range []string{c.Input.DeviceSecret, c.Expect.Password} {
			if strings.Contains(logs, s) {
				t.Errorf("server log contains secret or password %q", s)
			}
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// restError is the gateway's JSON error body.
type restError struct {
	status *spb.Status
	fields []string
}

func parseRESTError(t *testing.T, body []byte) restError {
	t.Helper()
	var st spb.Status
	if err := protojson.Unmarshal(body, &st); err != nil {
		t.Fatalf("error body %s is not a google.rpc.Status: %v", body, err)
	}
	re := restError{status: &st}
	for _, d := range st.GetDetails() {
		m, err := d.UnmarshalNew()
		if err != nil {
			t.Fatalf("error detail %v: %v", d, err)
		}
		br, ok := m.(*errdetails.BadRequest)
		if !ok {
			t.Errorf("unexpected error detail %T", m)
			continue
		}
		for _, v := range br.GetFieldViolations() {
			re.fields = append(re.fields, v.GetField())
		}
	}
	return re
}

func TestRESTBadInput(t *testing.T) {
	ts, cs := newVectorServer(t)
	c := cs[0]
	good := signPath(c.Input.ProductKey, c.Input.DeviceName)
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		wantHTTP int
		wantCode codes.Code
		// wantFields are the fields the BadRequest detail names; nil for
		// errors without one.
		wantFields []string
	}{
		{name: "truncated JSON", path: good, body: `{"clientId":`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "missing colon", path: good, body: `{"clientId" "x"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "not an object", path: good, body: `[1,2]`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "data after the object", path: good, body: `{"omitTimestamp":true} trailing garbage {`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "two objects", path: good, body: `{}{"clientId":"x"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "not JSON", path: good, body: `clientId=abc`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "unknown sign method name", path: good, body: `{"signMethod":"SIGN_METHOD_NOPE"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"signMethod"}},
		{name: "unknown transport name", path: good, body: `{"transport":"TRANSPORT_QUIC"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"transport"}},
		{name: "unknown field", path: good, body: `{"clientId":"abc","deviceSecret":"abc"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"deviceSecret"}},
		{name: "misspelt field", path: good, body: `{"timestamp":"1"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"timestamp"}},
		{name: "timestamp not a number", path: good, body: `{"timestampMs":"soon"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"timestampMs"}},
		{name: "omitTimestamp not a bool", path: good, body: `{"omitTimestamp":"yes"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"omitTimestamp"}},
		{name: "body over 64 KiB", path: good, body: `{"clientId":"` + strings.Repeat("a", 64<<10) + `"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "whitespace over 64 KiB", path: good, body: strings.Repeat(" ", 64<<10+1) + `{}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "white space over 64 KiB after the object", path: good, body: `{}` + strings.Repeat("\n", 64<<10), wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"body"}},
		{name: "device name of 3 in the path", path: signPath(c.Input.ProductKey, "abc"), body: `{}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"device_name"}},
		{name: "device name with a pipe in the path", path: signPath(c.Input.ProductKey, "dev|ice"), body: `{}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"device_name"}},
		{name: "device name with a space in the path", path: signPath(c.Input.ProductKey, "dev ice"), body: `{}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"device_name"}},
		{name: "device name with an ampersand in the path", path: signPath(c.Input.ProductKey, "dev&ice"), body: `{}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"device_name"}},
		{name: "product key with a dash in the path", path: signPath("a1-PK", c.Input.DeviceName), body: `{}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"product_key"}},
		{name: "client id with a pipe", path: good, body: `{"clientId":"abc|securemode=3"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"client_id"}},
		{name: "client id of 65", path: good, body: `{"clientId":"` + strings.Repeat("c", 65) + `"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"client_id"}},
		{name: "unknown sign method number", path: good, body: `{"signMethod":99}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"sign_method"}},
		{name: "unknown transport number", path: good, body: `{"transport":99}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"transport"}},
		{name: "negative timestamp", path: good, body: `{"timestampMs":"-1"}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"timestamp_ms"}},
		{name: "timestamp and omitTimestamp", path: good, body: `{"timestampMs":1,"omitTimestamp":true}`, wantHTTP: 400, wantCode: codes.InvalidArgument, wantFields: []string{"timestamp_ms"}},
		{name: "several bad fields", path: signPath("a1-PK", "abc"), body: `{"clientId":"a,b","signMethod":7}`, wantHTTP: 400, wantCode: codes.InvalidArgument,
			wantFields: []string{"product_key", "device_name", "client_id", "sign_method"}},
		{name: "unknown device", path: signPath(c.Input.ProductKey, "no-such-device"), body: `{}`, wantHTTP: 404, wantCode: codes.NotFound},
		{name: "unknown product", path: signPath("a1NoSuchPK", c.Input.DeviceName), body: `{}`, wantHTTP: 404, wantCode: codes.NotFound},
		{name: "no device name", path: "/v1/products/" + c.Input.ProductKey + "/devices/:signMqttConnect", body: `{}`, wantHTTP: 404, wantCode: codes.NotFound},
		{name: "unknown verb", path: "/v1/products/" + c.Input.ProductKey + "/devices/" + c.Input.DeviceName + ":signHttps", body: `{}`, wantHTTP: 404, wantCode: codes.NotFound},
		{name: "GET on the POST route", method: http.MethodGet, path: good, wantHTTP: 405, wantCode: codes.Unimplemented},
		{name: "PUT on the POST route", method: http.MethodPut, path: good, body: `{}`, wantHTTP: 405, wantCode: codes.Unimplemented},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			code, body := ts.do(t, method, tc.path, tc.body)
			if code != tc.wantHTTP {
				t.Errorf("%s %s: HTTP status %d, want %d; body %s", method, tc.path, code, tc.wantHTTP, body)
			}
			re := parseRESTError(t, body)
			if codes.Code(re.status.GetCode()) != tc.wantCode {
				t.Errorf("error code = %v, want %v; body %s", codes.Code(re.status.GetCode()), tc.wantCode, body)
			}
			if re.status.GetMessage() == "" {
				t.Errorf("error has no message: %s", body)
			}
			if strings.Join(re.fields, ",") != strings.Join(tc.wantFields, ",") {
				t.Errorf("field violations = %q, want %q; body %s", re.fields, tc.wantFields, body)
			}
			if tc.wantFields != nil {
				// The gateway's JSON: camelCase names and a typed Any.
				for _, s := range []string{`"@type":"type.googleapis.com/google.rpc.BadRequest"`, `"fieldViolations"`} {
					if !bytes.Contains(body, []byte(s)) {
						t.Errorf("error body %s does not contain %s", body, s)
					}
				}
			}
			if len(body) > 4<<10 {
				t.Errorf("error body is %d bytes: it must not echo the request", len(body))
			}
		})
	}

	// The server keeps serving after all of the above.
	code, body := ts.post(t, good, vectorBody(t, c, false))
	if code != http.StatusOK {
		t.Fatalf("good request after bad ones: status %d, body %s", code, body)
	}
	var r signerv1.SignMqttConnectResponse
	if err := protojson.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.GetPassword() != c.Expect.Password {
		t.Errorf("good request after bad ones: password %q, want %q", r.GetPassword(), c.Expect.Password)
	}
	if _, err := ts.client.SignMqttConnect(context.Background(), vectorRequest(t, c)); err != nil {
		t.Errorf("gRPC after bad REST input: %v", err)
	}
}

func TestRESTEmptyBodyUsesDefaults(t *testing.T) {
	ts, cs := newVectorServer(t)
	c := cs[0]
	for _, body := range []string{"", "{}", " \n{}\n\t "} {
		code, resp := ts.post(t, signPath(c.Input.ProductKey, c.Input.DeviceName), body)
		if code != http.StatusOK {
			t.Fatalf("POST %q: status %d, body %s", body, code, resp)
		}
		var r signerv1.SignMqttConnectResponse
		if err := protojson.Unmarshal(resp, &r); err != nil {
			t.Fatal(err)
		}
		want := c.Input.ProductKey + "." + c.Input.DeviceName + "|securemode=2,signmethod=hmacsha256,timestamp=1709294400123|"
		if r.GetClientId() != want || r.GetTransport() != signerv1.Transport_TRANSPORT_TLS {
			t.Errorf("POST %q: clientId %q, transport %v; want %q, TRANSPORT_TLS", body, r.GetClientId(), r.GetTransport(), want)
		}
	}
}

func TestGRPCBadInput(t *testing.T) {
	ts, cs := newVectorServer(t)
	c := cs[0]
	tests := []struct {
		name       string
		req        *signerv1.SignMqttConnectRequest
		wantCode   codes.Code
		wantFields []string
	}{
		{"bad device name", &signerv1.SignMqttConnectRequest{ProductKey: c.Input.ProductKey, DeviceName: "a|b&c"}, codes.InvalidArgument, []string{"device_name"}},
		{"unknown enums", &signerv1.SignMqttConnectRequest{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName, SignMethod: 99, Transport: 99},
			codes.InvalidArgument, []string{"sign_method", "transport"}},
		{"unknown device", &signerv1.SignMqttConnectRequest{ProductKey: c.Input.ProductKey, DeviceName: "no-such-device"}, codes.NotFound, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ts.client.SignMqttConnect(context.Background(), tc.req)
			st := status.Convert(err)
			if st.Code() != tc.wantCode {
				t.Fatalf("SignMqttConnect(%v) = %v, want code %v", tc.req, err, tc.wantCode)
			}
			var fields []string
			for _, d := range st.Details() {
				br, ok := d.(*errdetails.BadRequest)
				if !ok {
					t.Fatalf("unexpected detail %T", d)
				}
				for _, v := range br.GetFieldViolations() {
					fields = append(fields, v.GetField())
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.wantFields, ",") {
				t.Errorf("field violations = %q, want %q", fields, tc.wantFields)
			}
		})
	}
}

// panicky panics in every call.
type panicky struct {
	signerv1.UnimplementedSignerServiceServer
}

func (panicky) SignMqttConnect(context.Context, *signerv1.SignMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	panic("kaboom: s3cr3t detail")
}

func TestPanicBecomesInternal(t *testing.T) {
	ts := start(t, server.Config{Service: panicky{}})
	req := &signerv1.SignMqttConnectRequest{ProductKey: "a1PK", DeviceName: "dev1"}
	// Twice: the process survives the first panic.
	for i := range 2 {
		_, err := ts.client.SignMqttConnect(context.Background(), req)
		st := status.Convert(err)
		if st.Code() != codes.Internal {
			t.Fatalf("call %d: error %v, want code Internal", i, err)
		}
		if strings.Contains(st.Message(), "s3cr3t") || strings.Contains(st.Message(), "kaboom") {
			t.Errorf("call %d: message %q reveals the panic", i, st.Message())
		}
	}
	// REST: INTERNAL is HTTP 500 by the gateway's mapping.
	code, body := ts.post(t, signPath("a1PK", "dev1"), `{}`)
	if code != http.StatusInternalServerError {
		t.Errorf("REST: status %d, want 500; body %s", code, body)
	}
	if re := parseRESTError(t, body); codes.Code(re.status.GetCode()) != codes.Internal {
		t.Errorf("REST: code %v, want Internal", codes.Code(re.status.GetCode()))
	}
	if bytes.Contains(body, []byte("kaboom")) {
		t.Errorf("REST body %s reveals the panic", body)
	}
	// The server still answers health checks, and logged the panic.
	resp, err := healthpb.NewHealthClient(ts.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after panics = %v, %v; want SERVING", resp, err)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "kaboom") {
		t.Errorf("panic not logged; log: %s", logs)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	notReady := fmt.Errorf("vault sealed")
	tests := []struct {
		name     string
		ready    func(context.Context) error
		path     string
		wantCode int
		// wantBody are substrings of the body; hideBody must not appear.
		wantBody []string
		hideBody string
	}{
		{name: "healthz", path: "/healthz", wantCode: 200, wantBody: []string{`"ok"`}},
		{name: "healthz while not ready", ready: func(context.Context) error { return notReady }, path: "/healthz", wantCode: 200, wantBody: []string{`"ok"`}},
		{name: "readyz without a check", path: "/readyz", wantCode: 200, wantBody: []string{`"ready"`}},
		{name: "readyz ready", ready: func(context.Context) error { return nil }, path: "/readyz", wantCode: 200, wantBody: []string{`"ready"`}},
		{name: "readyz not ready", ready: func(context.Context) error { return notReady }, path: "/readyz", wantCode: 503, wantBody: []string{`"not ready"`}, hideBody: "vault sealed"},
		{name: "openapi", path: "/openapi.json", wantCode: 200, wantBody: []string{`"swagger"`, ":signMqttConnect"}},
		{name: "unknown path", path: "/nope", wantCode: 404},
	}
	svc := service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll()))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, server.Config{Service: svc, Ready: tc.ready})
			resp, err := http.Get(ts.base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantCode {
				t.Errorf("GET %s: status %d, want %d; body %s", tc.path, resp.StatusCode, tc.wantCode, body)
			}
			for _, w := range tc.wantBody {
				if !bytes.Contains(body, []byte(w)) {
					t.Errorf("GET %s: body %s does not contain %s", tc.path, body, w)
				}
			}
			if tc.hideBody != "" && bytes.Contains(body, []byte(tc.hideBody)) {
				t.Errorf("GET %s: body %s tells an unauthenticated caller %q", tc.path, body, tc.hideBody)
			}
			if tc.wantCode == 200 && !json.Valid(body) {
				t.Errorf("GET %s: body is not JSON: %s", tc.path, body)
			}
		})
	}
}

// TestOpenAPI checks that /openapi.json documents the REST route. The path
// template names the parameters in camelCase, like every other field in the
// document (protoc-gen-openapiv2's json_names_for_fields default): the route
// is the annotation's POST /v1/products/{product_key}/devices/{device_name}:signMqttConnect.
func TestOpenAPI(t *testing.T) {
	store := secrets.NewMemory()
	store.Put(secrets.DeviceID{ProductKey: "a1PK", DeviceName: "dev1"}, []byte("s3cr3t"))
	ts := start(t, server.Config{Service: service.New(store, service.WithAuthorizer(auth.AllowAll()))})
	resp, err := http.Get(ts.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Swagger string `json:"swagger"`
		Paths   map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q, want 2.0", doc.Swagger)
	}
	const path = "/v1/products/{productKey}/devices/{deviceName}:signMqttConnect"
	ops, ok := doc.Paths[path]
	if !ok {
		t.Fatalf("/openapi.json paths %v lack %s", doc.Paths, path)
	}
	post, ok := ops["post"]
	if !ok || len(ops) != 1 {
		t.Fatalf("%s has operations %v, want post only", path, ops)
	}
	if post.OperationID != "SignerService_SignMqttConnect" {
		t.Errorf("operationId = %q", post.OperationID)
	}
	// Every template parameter is declared as a path parameter, and no
	// other: a mismatch makes the document invalid.
	var inPath []string
	for _, p := range post.Parameters {
		if p.In == "path" {
			inPath = append(inPath, p.Name)
		}
	}
	if got := strings.Join(inPath, ","); got != "productKey,deviceName" {
		t.Errorf("path parameters = %q, want productKey,deviceName", got)
	}
	// The documented route is the served one.
	code, body := ts.post(t, strings.NewReplacer("{productKey}", "a1PK", "{deviceName}", "dev1").Replace(path), `{}`)
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"dev1&a1PK"`)) {
		t.Errorf("POST to the documented route: status %d, body %s; want 200 with username dev1&a1PK", code, body)
	}
}

func TestGRPCHealth(t *testing.T) {
	ts := start(t, server.Config{Service: service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll()))})
	hc := healthpb.NewHealthClient(ts.conn)
	for _, svc := range []string{"", "signer.v1.SignerService"} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("Check(%q): %v", svc, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, want SERVING", svc, resp.GetStatus())
		}
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check(unknown service) = %v, want NotFound", err)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}); err == nil {
		t.Error("New without a Service succeeded")
	}
	// A port in use is reported, naming the address.
	ts := start(t, server.Config{Service: service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll()))})
	taken := ts.srv.HTTPAddr().String()
	_, err := server.New(server.Config{Service: service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll())), GRPCAddr: "127.0.0.1:0", HTTPAddr: taken,
		Authenticator: anonymous()})
	if err == nil || !strings.Contains(err.Error(), taken) {
		t.Errorf("New on a taken HTTP address = %v, want an error naming %s", err, taken)
	}
}

// blocking holds every call until release is closed.
type blocking struct {
	signerv1.UnimplementedSignerServiceServer
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) SignMqttConnect(ctx context.Context, req *signerv1.SignMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	b.entered <- struct{}{}
	<-b.release
	return &signerv1.SignMqttConnectResponse{Username: req.GetDeviceName() + "&" + req.GetProductKey()}, nil
}

func TestGracefulShutdown(t *testing.T) {
	b := &blocking{entered: make(chan struct{}, 2), release: make(chan struct{})}
	ts := start(t, server.Config{Service: b})

	// One call on each transport is in flight when shutdown starts.
	grpcDone := make(chan error, 1)
	go func() {
		resp, err := ts.client.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{ProductKey: "a1PK", DeviceName: "grpc"})
		if err == nil && resp.GetUsername() != "grpc&a1PK" {
			err = fmt.Errorf("username %q", resp.GetUsername())
		}
		grpcDone <- err
	}()
	restDone := make(chan error, 1)
	go func() {
		resp, err := http.Post(ts.base+signPath("a1PK", "rest"), "application/json", strings.NewReader("{}"))
		if err != nil {
			restDone <- err
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("rest&a1PK")) {
			err = fmt.Errorf("status %d, body %s", resp.StatusCode, body)
		}
		restDone <- err
	}()
	<-b.entered
	<-b.entered

	// Release the calls only once the server drains.
	ts.cancel()
	<-ts.shuttingDown
	close(b.release)
	if err := <-grpcDone; err != nil {
		t.Errorf("in-flight gRPC call: %v", err)
	}
	if err := <-restDone; err != nil {
		t.Errorf("in-flight REST call: %v", err)
	}
	ts.stop(t)

	// Both listeners are closed.
	if _, err := http.Get(ts.base + "/healthz"); err == nil {
		t.Error("HTTP still answers after shutdown")
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "shutting down") {
		t.Errorf("shutdown not logged; log: %s", logs)
	}
}

// Every call is timed under the transport it came by: the metrics name it
// by the same rule as the audit record and the authenticator.
func TestMetricsNameTheTransport(t *testing.T) {
	m := metrics.New()
	ts := start(t, server.Config{Service: service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll())), Metrics: m, MetricsAddr: "off"})
	ctx := context.Background()
	_, _ = ts.client.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1Prod", DeviceName: "dev"})
	_, _ = ts.post(t, signPath("a1Prod", "dev"), `{}`)
	_, _ = ts.post(t, signPath("a1Prod", "dev"), `{}`)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "signerd_grpc_server_handling_seconds" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				// InitializeServer's zero series have no transport.
				if n := mt.GetHistogram().GetSampleCount(); l.GetName() == "transport" && n > 0 {
					got[l.GetValue()] += n
				}
			}
		}
	}
	if want := map[string]uint64{"grpc": 1, "rest": 2}; !maps.Equal(got, want) {
		t.Errorf("calls timed by transport: %v, want %v", got, want)
	}
}
