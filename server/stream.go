package server

import (
	"context"
	"path"
	"time"

	"google.golang.org/grpc"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/metrics"
)

// The stream interceptors apply the unary chain's rules to server-streaming
// RPCs (StreamSignMqttConnect), in the same order.

// ctxStream is a ServerStream with a replaced context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func requestIDStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	var c *call
	_, _ = requestID(ss.Context(), nil, nil, func(ctx context.Context, _ any) (any, error) {
		c = callFrom(ctx)
		return nil, nil
	})
	return handler(srv, &ctxStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callKey{}, c)})
}

func shedStream(f *limits.InFlight, m *metrics.Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !f.TryAcquire() {
			if m != nil {
				m.RateLimited(path.Base(info.FullMethod), "overloaded")
			}
			return overloaded()
		}
		defer f.Release()
		return handler(srv, ss)
	}
}

// auditStream is the streaming side of the one audit point (see
// writeAudit).
func auditStream(l *audit.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if l == nil {
			return handler(srv, ss)
		}
		start := time.Now()
		ctx, outcomes := audit.Track(ss.Context())
		err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		writeAudit(ctx, l, start, path.Base(info.FullMethod), auth.Device{}, outcomes(), err)
		return err
	}
}
