package service_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/vectors"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// wantVectors is the number of known-answer cases; a shorter file must not
// let the vector test pass by testing less.
const wantVectors = 60

// clock is the fixed time of every test server: 2024-03-01T12:00:00.123Z.
var clock = time.Date(2024, 3, 1, 12, 0, 0, 123_000_000, time.UTC)

const clockMs = "1709294400123"

func fixedClock() time.Time { return clock }

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

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// countingStore counts lookups, so tests can tell that bad input never
// reaches the secret store.
type countingStore struct {
	secrets.Store
	n atomic.Int64
}

func (s *countingStore) Lookup(ctx context.Context, id secrets.DeviceID) (secrets.Secret, error) {
	s.n.Add(1)
	return s.Store.Lookup(ctx, id)
}

// errStore answers every lookup with a fixed secret and error.
type errStore struct {
	secret []byte
	err    error
}

func (s errStore) Lookup(context.Context, secrets.DeviceID) (secrets.Secret, error) {
	return secrets.NewSecret(s.secret), s.err
}

func signMethodOf(t *testing.T, name string) signerv1.SignMethod {
	t.Helper()
	switch name {
	case "hmacsha256":
		return signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256
	case "hmacsha1":
		return signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1
	case "hmacmd5":
		return signerv1.SignMethod_SIGN_METHOD_HMAC_MD5
	}
	t.Fatalf("vector has unknown signMethod %q", name)
	return 0
}

func transportOf(t *testing.T, secureMode int) signerv1.Transport {
	t.Helper()
	switch secureMode {
	case 2:
		return signerv1.Transport_TRANSPORT_TLS
	case 3:
		return signerv1.Transport_TRANSPORT_TCP
	}
	t.Fatalf("vector has unknown secureMode %d", secureMode)
	return 0
}

// vectorRequest is the API request for one known-answer case.
func vectorRequest(t *testing.T, c vectors.Case) *signerv1.SignMqttConnectRequest {
	t.Helper()
	req := &signerv1.SignMqttConnectRequest{
		ProductKey: c.Input.ProductKey,
		DeviceName: c.Input.DeviceName,
		ClientId:   c.Input.ClientID,
		SignMethod: signMethodOf(t, c.Input.SignMethod),
		Transport:  transportOf(t, c.Input.SecureMode),
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

func loadVectors(t *testing.T) []vectors.Case {
	t.Helper()
	cs := vectors.MustLoad()
	if len(cs) != wantVectors {
		t.Fatalf("vectors: got %d cases, want %d", len(cs), wantVectors)
	}
	return cs
}

// vectorStore is a memory store holding every vector's device secret.
func vectorStore(cs []vectors.Case) *secrets.Memory {
	m := secrets.NewMemory()
	for _, c := range cs {
		m.Put(secrets.DeviceID{ProductKey: c.Input.ProductKey, DeviceName: c.Input.DeviceName}, []byte(c.Input.DeviceSecret))
	}
	return m
}

func TestSignMqttConnectVectors(t *testing.T) {
	cs := loadVectors(t)
	log, logs := newLogger()
	svc := service.New(vectorStore(cs), service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock), service.WithLogger(log))
	for i, c := range cs {
		t.Run(fmt.Sprintf("%02d_%s_mode%d", i, c.Input.SignMethod, c.Input.SecureMode), func(t *testing.T) {
			req := vectorRequest(t, c)
			got, err := svc.SignMqttConnect(context.Background(), req)
			if err != nil {
				t.Fatalf("SignMqttConnect(%v) error: %v", req, err)
			}
			if got.GetClientId() != c.Expect.ClientID {
				t.Errorf("client_id = %q, want %q", got.GetClientId(), c.Expect.ClientID)
			}
			if got.GetUsername() != c.Expect.Username {
				t.Errorf("username = %q, want %q", got.GetUsername(), c.Expect.Username)
			}
			if got.GetPassword() != c.Expect.Password {
				t.Errorf("password = %q, want %q", got.GetPassword(), c.Expect.Password)
			}
			if got.GetTransport() != req.GetTransport() {
				t.Errorf("transport = %v, want %v", got.GetTransport(), req.GetTransport())
			}
			// Every field of the answer, in every encoding a caller sees.
			for _, enc := range []string{prototext.Format(got), protojson.Format(got)} {
				if strings.Contains(enc, c.Input.DeviceSecret) {
					t.Errorf("answer contains the device secret: %s", enc)
				}
			}
		})
	}
	if out := logs.String(); out != "" {
		t.Errorf("successful signing logged %q, want nothing", out)
	}
}

// refPassword is the platform's password computed independently of package
// signing.
func refPassword(newHash func() hash.Hash, secret, clientID, deviceName, productKey, ts string) string {
	content := "clientId" + clientID + "deviceName" + deviceName + "productKey" + productKey
	if ts != "" {
		content += "timestamp" + ts
	}
	h := hmac.New(newHash, []byte(secret))
	h.Write([]byte(content))
	return hex.EncodeToString(h.Sum(nil))
}

func TestSignMqttConnectDefaults(t *testing.T) {
	const (
		pk     = "a1DefPK"
		dn     = "dev:01@site.x"
		secret = "0123456789abcdef0123456789abcdef"
		host   = pk + ".iot-as-mqtt.cn-shanghai.aliyuncs.com"
	)
	store := secrets.NewMemory()
	store.Put(secrets.DeviceID{ProductKey: pk, DeviceName: dn}, []byte(secret))
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock))

	// want is the full answer for the given request-dependent parts.
	want := func(clientID, securemode, method string, newHash func() hash.Hash, ts string, tr signerv1.Transport, uri string, port int32) *signerv1.SignMqttConnectResponse {
		cid := clientID + "|securemode=" + securemode + ",signmethod=" + method
		if ts != "" {
			cid += ",timestamp=" + ts
		}
		return &signerv1.SignMqttConnectResponse{
			Host:             host,
			Port:             port,
			ClientId:         cid + "|",
			Username:         dn + "&" + pk,
			Password:         refPassword(newHash, secret, clientID, dn, pk, ts),
			Transport:        tr,
			Uri:              uri,
			KeepAliveSeconds: 300,
			CleanSession:     true,
			ProtocolVersion:  "3.1.1",
			IssuedAt:         timestamppb.New(clock),
		}
	}
	const defaultCID = pk + "." + dn
	tls := signerv1.Transport_TRANSPORT_TLS

	tests := []struct {
		name string
		req  *signerv1.SignMqttConnectRequest
		want *signerv1.SignMqttConnectResponse
	}{
		{
			name: "everything defaulted",
			req:  &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn},
			want: want(defaultCID, "2", "hmacsha256", sha256.New, clockMs, tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "explicit TLS and sha256 equal the defaults",
			req: &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn,
				SignMethod: signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256, Transport: tls},
			want: want(defaultCID, "2", "hmacsha256", sha256.New, clockMs, tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "websocket over TLS",
			req: &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn,
				Transport: signerv1.Transport_TRANSPORT_WEBSOCKET_TLS},
			want: want(defaultCID, "2", "hmacsha256", sha256.New, clockMs,
				signerv1.Transport_TRANSPORT_WEBSOCKET_TLS, "wss://"+host+":443", 443),
		},
		{
			name: "plain TCP",
			req: &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn,
				Transport: signerv1.Transport_TRANSPORT_TCP},
			want: want(defaultCID, "3", "hmacsha256", sha256.New, clockMs,
				signerv1.Transport_TRANSPORT_TCP, "tcp://"+host+":1883", 1883),
		},
		{
			name: "sha1",
			req: &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn,
				SignMethod: signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1},
			want: want(defaultCID, "2", "hmacsha1", sha1.New, clockMs, tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "md5",
			req: &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn,
				SignMethod: signerv1.SignMethod_SIGN_METHOD_HMAC_MD5},
			want: want(defaultCID, "2", "hmacmd5", md5.New, clockMs, tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "own client id",
			req:  &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn, ClientId: "AA:BB:CC_01"},
			want: want("AA:BB:CC_01", "2", "hmacsha256", sha256.New, clockMs, tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "client id of 64 characters",
			req:  &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn, ClientId: strings.Repeat("c", 64)},
			want: want(strings.Repeat("c", 64), "2", "hmacsha256", sha256.New, clockMs, tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "explicit timestamp",
			req:  &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn, TimestampMs: proto.Int64(1524448722000)},
			want: want(defaultCID, "2", "hmacsha256", sha256.New, "1524448722000", tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "timestamp zero is a timestamp",
			req:  &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn, TimestampMs: proto.Int64(0)},
			want: want(defaultCID, "2", "hmacsha256", sha256.New, "0", tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "largest timestamp",
			req:  &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn, TimestampMs: proto.Int64(9223372036854775807)},
			want: want(defaultCID, "2", "hmacsha256", sha256.New, "9223372036854775807", tls, "mqtts://"+host+":1883", 1883),
		},
		{
			name: "omitted timestamp",
			req:  &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn, OmitTimestamp: true},
			want: want(defaultCID, "2", "hmacsha256", sha256.New, "", tls, "mqtts://"+host+":1883", 1883),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.SignMqttConnect(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("SignMqttConnect(%v) error: %v", tc.req, err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("SignMqttConnect(%v)\n got: %v\nwant: %v", tc.req, prototext.Format(got), prototext.Format(tc.want))
			}
		})
	}
}

func TestSignMqttConnectUsesClock(t *testing.T) {
	store := secrets.NewMemory()
	store.Put(secrets.DeviceID{ProductKey: "a1PK", DeviceName: "dev1"}, []byte("s3cr3t"))
	now := time.UnixMilli(1_000_000_000_001).UTC()
	calls := 0
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(func() time.Time { calls++; return now }))
	got, err := svc.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{ProductKey: "a1PK", DeviceName: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a1PK.dev1|securemode=2,signmethod=hmacsha256,timestamp=1000000000001|"; got.GetClientId() != want {
		t.Errorf("client_id = %q, want %q", got.GetClientId(), want)
	}
	if !got.GetIssuedAt().AsTime().Equal(now) {
		t.Errorf("issued_at = %v, want %v", got.GetIssuedAt().AsTime(), now)
	}
	if calls != 1 {
		t.Errorf("clock called %d times, want 1 (timestamp and issued_at must be the same instant)", calls)
	}
}

func TestSignMqttConnectProducts(t *testing.T) {
	const yamlProducts = `
defaults:
  region: cn-beijing
products:
  a1Inst:
    instanceId: iot-06z00ab1cd2ef3g
  a1Host:
    host: mqtt.example.com
    tcpPort: 1884
    tlsPort: 8883
    wssPort: 8443
  a1Keep:
    keepAliveSeconds: 60
    cleanSession: false
  a1Region:
    region: ap-southeast-1
`
	products, err := signing.ParseProducts([]byte(yamlProducts))
	if err != nil {
		t.Fatalf("ParseProducts: %v", err)
	}
	store := secrets.NewMemory()
	for _, pk := range []string{"a1Other", "a1Inst", "a1Host", "a1Keep", "a1Region"} {
		store.Put(secrets.DeviceID{ProductKey: pk, DeviceName: "dev1"}, []byte("s3cr3t"))
	}
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock), service.WithProducts(products))

	tcp, tls, wss := signerv1.Transport_TRANSPORT_TCP, signerv1.Transport_TRANSPORT_TLS, signerv1.Transport_TRANSPORT_WEBSOCKET_TLS
	tests := []struct {
		pk        string
		transport signerv1.Transport
		wantHost  string
		wantPort  int32
		wantURI   string
		wantKeep  int32
		wantClean bool
	}{
		{"a1Other", tls, "a1Other.iot-as-mqtt.cn-beijing.aliyuncs.com", 1883, "mqtts://a1Other.iot-as-mqtt.cn-beijing.aliyuncs.com:1883", 300, true},
		{"a1Other", wss, "a1Other.iot-as-mqtt.cn-beijing.aliyuncs.com", 443, "wss://a1Other.iot-as-mqtt.cn-beijing.aliyuncs.com:443", 300, true},
		{"a1Inst", tls, "iot-06z00ab1cd2ef3g.mqtt.iothub.aliyuncs.com", 1883, "mqtts://iot-06z00ab1cd2ef3g.mqtt.iothub.aliyuncs.com:1883", 300, true},
		{"a1Inst", tcp, "iot-06z00ab1cd2ef3g.mqtt.iothub.aliyuncs.com", 1883, "tcp://iot-06z00ab1cd2ef3g.mqtt.iothub.aliyuncs.com:1883", 300, true},
		{"a1Host", tls, "mqtt.example.com", 8883, "mqtts://mqtt.example.com:8883", 300, true},
		{"a1Host", tcp, "mqtt.example.com", 1884, "tcp://mqtt.example.com:1884", 300, true},
		{"a1Host", wss, "mqtt.example.com", 8443, "wss://mqtt.example.com:8443", 300, true},
		{"a1Keep", tls, "a1Keep.iot-as-mqtt.cn-beijing.aliyuncs.com", 1883, "mqtts://a1Keep.iot-as-mqtt.cn-beijing.aliyuncs.com:1883", 60, false},
		{"a1Region", tcp, "a1Region.iot-as-mqtt.ap-southeast-1.aliyuncs.com", 1883, "tcp://a1Region.iot-as-mqtt.ap-southeast-1.aliyuncs.com:1883", 300, true},
	}
	for _, tc := range tests {
		t.Run(tc.pk+"_"+tc.transport.String(), func(t *testing.T) {
			got, err := svc.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{
				ProductKey: tc.pk, DeviceName: "dev1", Transport: tc.transport,
			})
			if err != nil {
				t.Fatalf("SignMqttConnect error: %v", err)
			}
			if got.GetHost() != tc.wantHost || got.GetPort() != tc.wantPort || got.GetUri() != tc.wantURI {
				t.Errorf("endpoint = %q, %d, %q; want %q, %d, %q",
					got.GetHost(), got.GetPort(), got.GetUri(), tc.wantHost, tc.wantPort, tc.wantURI)
			}
			if got.GetKeepAliveSeconds() != tc.wantKeep {
				t.Errorf("keep_alive_seconds = %d, want %d", got.GetKeepAliveSeconds(), tc.wantKeep)
			}
			if got.GetCleanSession() != tc.wantClean {
				t.Errorf("clean_session = %v, want %v", got.GetCleanSession(), tc.wantClean)
			}
			if got.GetTransport() != tc.transport {
				t.Errorf("transport = %v, want %v", got.GetTransport(), tc.transport)
			}
		})
	}
}

// badRequestFields returns the fields named by err's google.rpc.BadRequest,
// failing the test unless err is INVALID_ARGUMENT with exactly one such
// detail.
func badRequestFields(t *testing.T, err error) []string {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("error = %v, want code InvalidArgument", err)
	}
	var fields []string
	var n int
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			t.Errorf("unexpected detail %T: %v", d, d)
			continue
		}
		n++
		for _, v := range br.GetFieldViolations() {
			if v.GetDescription() == "" {
				t.Errorf("violation of %q has no description", v.GetField())
			}
			fields = append(fields, v.GetField())
		}
	}
	if n != 1 {
		t.Errorf("error has %d BadRequest details, want 1", n)
	}
	if len(fields) > 0 && !strings.Contains(st.Message(), fields[0]) {
		t.Errorf("message %q does not name the field %q", st.Message(), fields[0])
	}
	return fields
}

func TestSignMqttConnectBadInput(t *testing.T) {
	const (
		pk = "a1GoodPK"
		dn = "good-device"
	)
	mem := secrets.NewMemory()
	mem.Put(secrets.DeviceID{ProductKey: pk, DeviceName: dn}, []byte("s3cr3t-value"))
	long := strings.Repeat("P", 32)
	mem.Put(secrets.DeviceID{ProductKey: long, DeviceName: strings.Repeat("d", 32)}, []byte("s3cr3t-value"))
	store := &countingStore{Store: mem}
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock))

	// req is a valid request changed by mod.
	req := func(mod func(r *signerv1.SignMqttConnectRequest)) *signerv1.SignMqttConnectRequest {
		r := &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn}
		mod(r)
		return r
	}
	tests := []struct {
		name string
		req  *signerv1.SignMqttConnectRequest
		want []string
	}{
		{"empty product key", req(func(r *signerv1.SignMqttConnectRequest) { r.ProductKey = "" }), []string{"product_key"}},
		{"product key of 33", req(func(r *signerv1.SignMqttConnectRequest) { r.ProductKey = strings.Repeat("a", 33) }), []string{"product_key"}},
		{"product key with a dash", req(func(r *signerv1.SignMqttConnectRequest) { r.ProductKey = "a1-PK" }), []string{"product_key"}},
		{"product key with a pipe", req(func(r *signerv1.SignMqttConnectRequest) { r.ProductKey = "a1|PK" }), []string{"product_key"}},
		{"product key not ASCII", req(func(r *signerv1.SignMqttConnectRequest) { r.ProductKey = "a1PKé" }), []string{"product_key"}},
		{"empty device name", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "" }), []string{"device_name"}},
		{"device name of 3", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "abc" }), []string{"device_name"}},
		{"device name of 33", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = strings.Repeat("d", 33) }), []string{"device_name"}},
		{"device name with a pipe", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "dev|ice" }), []string{"device_name"}},
		{"device name with an ampersand", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "dev&ice" }), []string{"device_name"}},
		{"device name with a space", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "dev ice" }), []string{"device_name"}},
		{"device name with a comma", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "dev,ice" }), []string{"device_name"}},
		{"device name with a slash", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "dev/ice" }), []string{"device_name"}},
		{"device name with a NUL", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "dev\x00ice" }), []string{"device_name"}},
		{"device name not ASCII", req(func(r *signerv1.SignMqttConnectRequest) { r.DeviceName = "dévice" }), []string{"device_name"}},
		{"client id of 65", req(func(r *signerv1.SignMqttConnectRequest) { r.ClientId = strings.Repeat("c", 65) }), []string{"client_id"}},
		{"client id with a pipe", req(func(r *signerv1.SignMqttConnectRequest) { r.ClientId = "cid|securemode=3" }), []string{"client_id"}},
		{"client id with a comma", req(func(r *signerv1.SignMqttConnectRequest) { r.ClientId = "cid,signmethod=hmacmd5" }), []string{"client_id"}},
		{"client id with an equals sign", req(func(r *signerv1.SignMqttConnectRequest) { r.ClientId = "cid=1" }), []string{"client_id"}},
		{"client id with a space", req(func(r *signerv1.SignMqttConnectRequest) { r.ClientId = "c id" }), []string{"client_id"}},
		{"unknown sign method", req(func(r *signerv1.SignMqttConnectRequest) { r.SignMethod = 99 }), []string{"sign_method"}},
		{"negative sign method", req(func(r *signerv1.SignMqttConnectRequest) { r.SignMethod = -1 }), []string{"sign_method"}},
		{"unknown transport", req(func(r *signerv1.SignMqttConnectRequest) { r.Transport = 99 }), []string{"transport"}},
		{"negative timestamp", req(func(r *signerv1.SignMqttConnectRequest) { r.TimestampMs = proto.Int64(-1) }), []string{"timestamp_ms"}},
		{"timestamp and omit_timestamp", req(func(r *signerv1.SignMqttConnectRequest) {
			r.TimestampMs = proto.Int64(1700000000000)
			r.OmitTimestamp = true
		}), []string{"timestamp_ms"}},
		{"every field bad", &signerv1.SignMqttConnectRequest{
			ProductKey: "a1-PK", DeviceName: "abc", ClientId: "a|b", SignMethod: 99, Transport: 99, TimestampMs: proto.Int64(-5),
		}, []string{"product_key", "device_name", "client_id", "sign_method", "transport", "timestamp_ms"}},
		{"two fields bad", req(func(r *signerv1.SignMqttConnectRequest) {
			r.DeviceName = "dev&ice"
			r.SignMethod = 7
		}), []string{"device_name", "sign_method"}},
		{"nothing set", &signerv1.SignMqttConnectRequest{}, []string{"product_key", "device_name"}},
		// {productKey}.{deviceName} can be 65 characters: the caller must
		// then choose a client id, and must be told so.
		{"default client id too long", &signerv1.SignMqttConnectRequest{
			ProductKey: long, DeviceName: strings.Repeat("d", 32),
		}, []string{"client_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := store.n.Load()
			got, err := svc.SignMqttConnect(context.Background(), tc.req)
			if err == nil {
				t.Fatalf("SignMqttConnect(%v) = %v, want an error", tc.req, got)
			}
			if got != nil {
				t.Errorf("SignMqttConnect returned an answer with its error: %v", got)
			}
			fields := badRequestFields(t, err)
			if strings.Join(fields, ",") != strings.Join(tc.want, ",") {
				t.Errorf("SignMqttConnect(%v) violations = %q, want %q", tc.req, fields, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q contains the device secret", err)
			}
			if n := store.n.Load() - before; n != 0 {
				t.Errorf("bad input made %d store lookups, want 0", n)
			}
		})
	}

	// The longest names that still fit the default client id are fine.
	t.Run("default client id of 64", func(t *testing.T) {
		dn31 := strings.Repeat("d", 31)
		mem.Put(secrets.DeviceID{ProductKey: long, DeviceName: dn31}, []byte("s3cr3t-value"))
		got, err := svc.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{ProductKey: long, DeviceName: dn31})
		if err != nil {
			t.Fatalf("SignMqttConnect error: %v", err)
		}
		if want := long + "." + dn31 + "|"; !strings.HasPrefix(got.GetClientId(), want) {
			t.Errorf("client_id = %q, want prefix %q", got.GetClientId(), want)
		}
	})
}

func TestSignMqttConnectUnknownDevice(t *testing.T) {
	cs := loadVectors(t)
	log, logs := newLogger()
	svc := service.New(vectorStore(cs), service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock), service.WithLogger(log))
	c := cs[0]
	tests := []struct {
		name string
		pk   string
		dn   string
	}{
		{"unknown device of a known product", c.Input.ProductKey, "no-such-device"},
		{"unknown product", "a1NoSuchPK", c.Input.DeviceName},
		{"product and device swapped across vectors", c.Input.ProductKey, cs[1].Input.DeviceName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := vectorRequest(t, c)
			req.ProductKey, req.DeviceName = tc.pk, tc.dn
			got, err := svc.SignMqttConnect(context.Background(), req)
			if status.Code(err) != codes.NotFound {
				t.Fatalf("SignMqttConnect(%v) = %v, %v; want code NotFound", req, got, err)
			}
			for _, v := range cs {
				if strings.Contains(err.Error(), v.Input.DeviceSecret) {
					t.Errorf("error %q contains a device secret", err)
				}
			}
		})
	}
	if strings.Contains(logs.String(), c.Input.DeviceSecret) {
		t.Errorf("logs contain a device secret: %s", logs)
	}
}

func TestSignMqttConnectStoreErrors(t *testing.T) {
	const secretText = "vault said: token hvs.s3cr3t-internal-detail"
	id := secrets.DeviceID{ProductKey: "a1PK", DeviceName: "dev1"}
	tests := []struct {
		name     string
		store    secrets.Store
		wantCode codes.Code
		// wantMsg, when set, is the exact message.
		wantMsg string
		// wantLogged is a substring the server's log must contain.
		wantLogged string
	}{
		{name: "not found", store: errStore{err: fmt.Errorf("lookup %s: %w", id, secrets.ErrNotFound)},
			wantCode: codes.NotFound},
		{name: "unusable", store: errStore{err: fmt.Errorf("lookup %s at iot/devices/a1PK/dev1: field deviceSecret missing: %w", id, secrets.ErrUnusable)},
			wantCode: codes.FailedPrecondition},
		{name: "unavailable", store: errStore{err: fmt.Errorf("lookup %s: %w: dial tcp 10.0.0.1:8200: connection refused", id, secrets.ErrUnavailable)},
			wantCode: codes.Unavailable, wantMsg: "secret store unavailable; retry later", wantLogged: "connection refused"},
		{name: "permission", store: errStore{err: fmt.Errorf("lookup %s: %w: 403 permission denied", id, secrets.ErrPermission)},
			wantCode: codes.Unavailable, wantMsg: "secret store unavailable; retry later", wantLogged: "403 permission denied"},
		// The store's own timeout while the caller still waits (found by
		// signerload soak: Vault slow after an unseal answered
		// DEADLINE_EXCEEDED in 1.5 s to callers with a 15 s deadline).
		{name: "store's own deadline", store: errStore{err: fmt.Errorf("lookup %s: %w: %w", id, secrets.ErrUnavailable, context.DeadlineExceeded)},
			wantCode: codes.Unavailable, wantMsg: "secret store unavailable; retry later"},
		{name: "bare deadline", store: errStore{err: context.DeadlineExceeded}, wantCode: codes.Unavailable},
		{name: "cancelled", store: errStore{err: fmt.Errorf("lookup %s: %w", id, context.Canceled)}, wantCode: codes.Canceled},
		{name: "unexpected error", store: errStore{err: errors.New(secretText)},
			wantCode: codes.Internal, wantMsg: "internal error", wantLogged: secretText},
		{name: "wrapped unexpected error", store: errStore{err: fmt.Errorf("lookup %s: %w", id, errors.New(secretText))},
			wantCode: codes.Internal, wantMsg: "internal error", wantLogged: secretText},
		// A store that breaks its contract is a server fault, not the
		// caller's.
		{name: "empty secret without error", store: errStore{},
			wantCode: codes.Internal, wantMsg: "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLogger()
			svc := service.New(tc.store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock), service.WithLogger(log))
			got, err := svc.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{ProductKey: id.ProductKey, DeviceName: id.DeviceName})
			st, ok := status.FromError(err)
			if !ok || st.Code() != tc.wantCode {
				t.Fatalf("SignMqttConnect = %v, %v; want code %v", got, err, tc.wantCode)
			}
			if tc.wantMsg != "" && st.Message() != tc.wantMsg {
				t.Errorf("message = %q, want %q", st.Message(), tc.wantMsg)
			}
			if strings.Contains(st.Message(), "s3cr3t") {
				t.Errorf("message %q contains the store's internal detail", st.Message())
			}
			if tc.wantLogged != "" && !strings.Contains(logs.String(), tc.wantLogged) {
				t.Errorf("log %q does not contain %q", logs, tc.wantLogged)
			}
		})
	}
}

func TestSignMqttConnectContext(t *testing.T) {
	store := secrets.NewMemory()
	store.Put(secrets.DeviceID{ProductKey: "a1PK", DeviceName: "dev1"}, []byte("s3cr3t"))
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock))

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()

	tests := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"cancelled", cancelled, codes.Canceled},
		{"deadline exceeded", expired, codes.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.SignMqttConnect(tc.ctx, &signerv1.SignMqttConnectRequest{ProductKey: "a1PK", DeviceName: "dev1"})
			if status.Code(err) != tc.want {
				t.Errorf("SignMqttConnect = %v, want code %v", err, tc.want)
			}
		})
	}
}

// blockStore answers when the caller's context ends, as secrets.Cache does
// when the caller gives up while Vault is slow.
type blockStore struct{}

func (blockStore) Lookup(ctx context.Context, id secrets.DeviceID) (secrets.Secret, error) {
	<-ctx.Done()
	return secrets.Secret{}, fmt.Errorf("lookup %s: %w: %w", id, secrets.ErrUnavailable, ctx.Err())
}

// TestStoreTimeoutVersusCallerDeadline: DEADLINE_EXCEEDED means the
// caller's deadline passed, for single and batch calls alike; a store's own
// timeout while the caller still waits is UNAVAILABLE (the table above).
func TestStoreTimeoutVersusCallerDeadline(t *testing.T) {
	id := secrets.DeviceID{ProductKey: "a1PK", DeviceName: "dev1"}
	for _, tc := range []struct {
		name  string
		store secrets.Store
		ctx   func() (context.Context, context.CancelFunc)
		want  codes.Code
	}{
		{"caller's deadline passes", blockStore{}, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, codes.DeadlineExceeded},
		{"store times out, caller waits", errStore{err: fmt.Errorf("lookup %s: %w: %w", id, secrets.ErrUnavailable, context.DeadlineExceeded)},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Minute)
			}, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := service.New(tc.store, service.WithAuthorizer(auth.AllowAll()), service.WithClock(fixedClock))
			ctx, cancel := tc.ctx()
			defer cancel()
			_, err := svc.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: id.ProductKey, DeviceName: id.DeviceName})
			if status.Code(err) != tc.want {
				t.Errorf("SignMqttConnect = %v, want %v", err, tc.want)
			}
			ctx, cancel = tc.ctx()
			defer cancel()
			resp, err := svc.BatchSignMqttConnect(ctx, &signerv1.BatchSignMqttConnectRequest{Requests: []*signerv1.SignMqttConnectRequest{
				{ProductKey: id.ProductKey, DeviceName: id.DeviceName}}})
			if err != nil {
				if status.Code(err) != tc.want {
					t.Errorf("BatchSignMqttConnect = %v, want %v", err, tc.want)
				}
				return
			}
			if got := codes.Code(resp.GetResults()[0].GetError().GetCode()); got != tc.want {
				t.Errorf("batch item: %v, want %v", got, tc.want)
			}
		})
	}
}
