package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
)

// blockingService holds SignMqttConnect until release is closed.
type blockingService struct {
	*service.Server
	entered, release chan struct{}
}

func (b *blockingService) SignMqttConnect(ctx context.Context, req *signerv1.SignMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Server.SignMqttConnect(ctx, req)
}

// TestAuditReasonsOfRefusalsBeforeTheService: a call the server refuses
// before the service (authentication, rate limit, overload) is audited
// once, under the device its request names, with the refusal's own
// reason, which the refusal carries as a typed error.
func TestAuditReasonsOfRefusalsBeforeTheService(t *testing.T) {
	req := &signerv1.SignMqttConnectRequest{ProductKey: "a1TestPK01", DeviceName: "dev-a-0001"}
	tests := []struct {
		name string
		cfg  func() server.Config
		// refuse makes the refused call (and whatever must come before).
		refuse     func(t *testing.T, ts *testServer) error
		wantReason string
		wantMsg    string // a prefix of the answer's message
	}{
		{"unauthenticated", func() server.Config {
			return server.Config{Service: service.New(goodStore(), service.WithAuthorizer(auth.AllowAll())),
				Authenticator: auth.NewAuthenticator(auth.Authenticator{})}
		}, func(t *testing.T, ts *testServer) error {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic eDp5")
			_, err := ts.client.SignMqttConnect(ctx, req)
			return err
		}, "authorization header is not a bearer token", "authentication required"},
		{"rate limit", func() server.Config {
			return server.Config{Service: service.New(goodStore(), service.WithAuthorizer(auth.AllowAll())),
				RateLimit: limits.NewPerCaller(1.0/3600, 1, 100)}
		}, func(t *testing.T, ts *testServer) error {
			if _, err := ts.client.SignMqttConnect(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			_, err := ts.client.SignMqttConnect(context.Background(), req)
			return err
		}, "rate limit", "/signer.v1.SignerService/SignMqttConnect is rejected by grpc_ratelimit middleware, please retry later. rate limit for anonymous"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &logBuffer{}
			cfg := tc.cfg()
			cfg.Audit = audit.New(sink)
			ts := start(t, cfg)
			err := tc.refuse(t, ts)
			checkRefusalAudit(t, sink, err, tc.wantReason, tc.wantMsg)
		})
	}

	t.Run("overloaded", func(t *testing.T) {
		sink := &logBuffer{}
		svc := &blockingService{Server: service.New(goodStore(), service.WithAuthorizer(auth.AllowAll())),
			entered: make(chan struct{}), release: make(chan struct{})}
		ts := start(t, server.Config{Service: svc, InFlight: limits.NewInFlight(1), Audit: audit.New(sink)})
		done := make(chan error, 1)
		go func() { _, err := ts.client.SignMqttConnect(context.Background(), req); done <- err }()
		<-svc.entered // the one slot is taken
		_, err := ts.client.SignMqttConnect(context.Background(), req)
		close(svc.release)
		if err := <-done; err != nil {
			t.Fatalf("the call holding the slot: %v", err)
		}
		// Only the refused call's record is checked: the other is issued.
		checkRefusalAudit(t, sink, err, "overloaded", "server overloaded; retry later")
	})
}

func checkRefusalAudit(t *testing.T, sink *logBuffer, err error, wantReason, wantMsg string) {
	t.Helper()
	st := status.Convert(err)
	if !strings.HasPrefix(st.Message(), wantMsg) {
		t.Errorf("answer %v %q, want a message starting %q", st.Code(), st.Message(), wantMsg)
	}
	var refused []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(sink.String()), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if m["outcome"] != "issued" {
			refused = append(refused, m)
		}
	}
	if len(refused) != 1 {
		t.Fatalf("%d audit records of the refused call, want 1: %v", len(refused), refused)
	}
	r := refused[0]
	if r["reason"] != wantReason || r["outcome"] != "denied" || r["code"] != st.Code().String() ||
		r["product_key"] != "a1TestPK01" || r["device_name"] != "dev-a-0001" {
		t.Errorf("audit record %v, want denied %v for a1TestPK01/dev-a-0001 with reason %q", r, st.Code(), wantReason)
	}
}
