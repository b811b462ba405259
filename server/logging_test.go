package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
)

// The "finished call" line: written only at the level callLevel gives the
// call's code, and then with every field the go-grpc-middleware logging
// interceptor wrote (same names), the request id and the caller.
func TestLogCalls(t *testing.T) {
	tests := []struct {
		name     string
		logLevel slog.Level
		err      error
		stream   bool
		want     string // level of the line, "" for none
	}{
		{"success at info: nothing", slog.LevelInfo, nil, false, ""},
		{"success at debug", slog.LevelDebug, nil, false, "DEBUG"},
		{"caller's mistake at info", slog.LevelInfo, status.Error(codes.NotFound, "no such device"), false, "INFO"},
		{"caller's mistake at warn: nothing", slog.LevelWarn, status.Error(codes.InvalidArgument, "bad"), false, ""},
		{"overload at warn", slog.LevelWarn, status.Error(codes.ResourceExhausted, "slow down"), false, "WARN"},
		{"server failure", slog.LevelError, errors.New("boom"), false, "ERROR"},
		{"stream failure", slog.LevelInfo, status.Error(codes.Unavailable, "vault down"), true, "WARN"},
		{"stream success at debug", slog.LevelDebug, nil, true, "DEBUG"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.logLevel}))
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4242}})
			ctx, cancel := context.WithDeadline(ctx, time.Now().Add(time.Minute))
			defer cancel()
			id := auth.Identity{Kind: auth.KindBackend, Name: "prov", Method: "mtls"}
			ctx = context.WithValue(ctx, callKey{}, &call{requestID: "req-1", identity: &id})
			const method = "/signer.v1.SignerService/SignMqttConnect"
			var err error
			if tc.stream {
				err = logCallsStream(l)(nil, &ctxStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method, IsServerStream: true},
					func(any, grpc.ServerStream) error { return tc.err })
			} else {
				_, err = logCalls(l)(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return "ok", tc.err })
			}
			if err != tc.err {
				t.Errorf("interceptor returned %v, want the handler's %v", err, tc.err)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if tc.want == "" {
				if buf.Len() > 0 {
					t.Errorf("logged %q, want nothing", buf.String())
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("logged %d lines, want 1: %q", len(lines), buf.String())
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
				t.Fatal(err)
			}
			typ := "unary"
			if tc.stream {
				typ = "server_stream"
			}
			want := map[string]any{
				"level": tc.want, "msg": "finished call", "request_id": "req-1", "caller": id.String(),
				"protocol": "grpc", "grpc.component": "server", "grpc.service": "signer.v1.SignerService",
				"grpc.method": "SignMqttConnect", "grpc.method_type": typ, "peer.address": "192.0.2.7:4242",
				"grpc.code": status.Code(tc.err).String(),
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
			for _, k := range []string{"grpc.start_time", "grpc.request.deadline"} {
				if _, err := time.Parse(time.RFC3339, m[k].(string)); err != nil {
					t.Errorf("%s = %v: %v", k, m[k], err)
				}
			}
			if _, ok := m["grpc.time_ms"].(string); !ok {
				t.Errorf("grpc.time_ms = %v, want the library's string", m["grpc.time_ms"])
			}
			if _, has := m["grpc.error"]; has != (tc.err != nil) {
				t.Errorf("grpc.error = %v, want it for failures only", m["grpc.error"])
			}
		})
	}
}

func BenchmarkLogCallsDisabled(b *testing.B) {
	l := slog.New(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := context.WithValue(context.Background(), callKey{}, &call{requestID: "req-1"})
	info := &grpc.UnaryServerInfo{FullMethod: "/signer.v1.SignerService/SignMqttConnect"}
	h := func(context.Context, any) (any, error) { return "ok", nil }
	in := logCalls(l)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = in(ctx, nil, info, h)
	}
}
