package service_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/service"
)

// recordingStream is a StreamSignMqttConnect server stream that keeps what
// was sent.
type recordingStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*signerv1.StreamSignMqttConnectResponse
}

func (s *recordingStream) Context() context.Context     { return s.ctx }
func (s *recordingStream) SetHeader(metadata.MD) error  { return nil }
func (s *recordingStream) SendHeader(metadata.MD) error { return nil }
func (s *recordingStream) SetTrailer(metadata.MD)       {}
func (s *recordingStream) Send(r *signerv1.StreamSignMqttConnectResponse) error {
	s.sent = append(s.sent, r)
	return nil
}

// wantOutcome is one device's reported outcome: its name, code and, for a
// refusal, the Authorizer's denial reason.
type wantOutcome struct {
	dn     string
	code   codes.Code
	reason string // the denial's, or the outcome's own
}

// TestOutcomesReported: the service reports, for every device a call
// decided about, its typed outcome in order, each refusal carrying the
// Authorizer's *auth.Denial, so that the audit is written from the
// service's decisions rather than rebuilt from the messages.
func TestOutcomesReported(t *testing.T) {
	denyDev := func(_ context.Context, rpc string, dev auth.Device) error {
		if dev.DeviceName == "sub-0001" || dev.DeviceName == gwDN+"x" {
			return &auth.Denial{RPC: rpc, Device: dev, Reason: "no " + dev.DeviceName}
		}
		return nil
	}
	denySub := func(_ context.Context, gw, sub auth.Device) error {
		if sub.DeviceName == "sub-0002" {
			return &auth.Denial{Device: sub, Gateway: gw, Reason: "not assigned " + sub.DeviceName}
		}
		return nil
	}
	svc := service.New(subStore(), service.WithAuthorizer(fakeAuthz{device: denyDev, sub: denySub}))
	items := func(dns ...string) []*signerv1.SignMqttConnectRequest {
		var out []*signerv1.SignMqttConnectRequest
		for _, dn := range dns {
			out = append(out, &signerv1.SignMqttConnectRequest{ProductKey: subP, DeviceName: dn})
		}
		return out
	}
	tests := []struct {
		name string
		call func(ctx context.Context) error
		want []wantOutcome
	}{
		{"single issued", func(ctx context.Context) error {
			_, err := svc.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: subP, DeviceName: "sub-0000"})
			return err
		}, []wantOutcome{{"sub-0000", codes.OK, ""}}},
		{"single denied", func(ctx context.Context) error {
			_, err := svc.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: subP, DeviceName: "sub-0001"})
			return err
		}, []wantOutcome{{"sub-0001", codes.PermissionDenied, "no sub-0001"}}},
		{"batch", func(ctx context.Context) error {
			_, err := svc.BatchSignMqttConnect(ctx, &signerv1.BatchSignMqttConnectRequest{Requests: items("sub-0000", "sub-0001", "nobody")})
			return err
		}, []wantOutcome{{"sub-0000", codes.OK, ""}, {"sub-0001", codes.PermissionDenied, "no sub-0001"}, {"nobody", codes.NotFound, ""}}},
		{"stream", func(ctx context.Context) error {
			return svc.StreamSignMqttConnect(&signerv1.StreamSignMqttConnectRequest{Requests: items("sub-0001", "sub-0003")}, &recordingStream{ctx: ctx})
		}, []wantOutcome{{"sub-0001", codes.PermissionDenied, "no sub-0001"}, {"sub-0003", codes.OK, ""}}},
		{"sub-devices issued", func(ctx context.Context) error {
			_, err := svc.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN,
				SubDevices: []*signerv1.SubDevice{{ProductKey: subP, DeviceName: "sub-0000"}, {ProductKey: subP, DeviceName: "sub-0003"}}})
			return err
		}, []wantOutcome{{"sub-0000", codes.OK, "sub-device of gateway " + gwPK + "/" + gwDN}, {"sub-0003", codes.OK, "sub-device of gateway " + gwPK + "/" + gwDN}}},
		{"sub-device denied", func(ctx context.Context) error {
			_, err := svc.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN,
				SubDevices: []*signerv1.SubDevice{{ProductKey: subP, DeviceName: "sub-0000"}, {ProductKey: subP, DeviceName: "sub-0002"}}})
			return err
		}, []wantOutcome{{gwDN, codes.PermissionDenied, "not assigned sub-0002"}, {"sub-0000", codes.PermissionDenied, "not assigned sub-0002"},
			{"sub-0002", codes.PermissionDenied, "not assigned sub-0002"}}},
		{"sub-devices, bad input", func(ctx context.Context) error {
			_, err := svc.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN})
			return err
		}, []wantOutcome{{gwDN, codes.InvalidArgument, ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, outcomes := audit.Track(context.Background())
			_ = tc.call(ctx)
			got := outcomes()
			if len(got) != len(tc.want) {
				t.Fatalf("%d outcomes %v, want %d", len(got), got, len(tc.want))
			}
			for i, o := range got {
				w := tc.want[i]
				reason := o.Reason
				if ds := auth.Denials(o.Err); len(ds) > 0 && reason == "" {
					reason = ds[0].Reason
					if !errors.Is(o.Err, auth.ErrDenied) {
						t.Errorf("outcome %d: a denial that is not ErrDenied", i)
					}
				}
				if o.Device.DeviceName != w.dn || status.Code(o.Err) != w.code || reason != w.reason {
					t.Errorf("outcome %d: %s %v %q, want %s %v %q", i, o.Device, status.Code(o.Err), reason, w.dn, w.code, w.reason)
				}
			}
		})
	}
	// Without Track, nothing is kept and nothing fails.
	if _, err := svc.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{ProductKey: subP, DeviceName: "sub-0000"}); err != nil {
		t.Fatal(err)
	}
}
