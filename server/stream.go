package server

import (
	"context"
	"path"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/metrics"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
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
			if c := callFrom(ss.Context()); c != nil {
				c.reason = "overloaded"
			}
			return status.Error(codes.ResourceExhausted, "server overloaded; retry later")
		}
		defer f.Release()
		return handler(srv, ss)
	}
}

// auditStream writes one record per streamed item, or one record for a
// stream refused or failed before any item.
func auditStream(l *audit.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if l == nil {
			return handler(srv, ss)
		}
		w := &auditingStream{ServerStream: ss, l: l, rpc: path.Base(info.FullMethod), start: time.Now()}
		err := handler(srv, w)
		w.mu.Lock()
		sent, req := w.sent, w.req
		w.mu.Unlock()
		if ds := auth.Denials(err); len(ds) > 0 {
			w.reason = ds[0].Reason
		}
		if sent == 0 && err != nil && req != nil && auditItems(ss.Context(), l, w.record(), req.GetRequests(), nil, err) {
			return err
		}
		if sent == 0 || err != nil {
			r := w.record()
			setOutcome(&r, err)
			l.Write(ss.Context(), r)
		}
		return err
	}
}

type auditingStream struct {
	grpc.ServerStream
	l     *audit.Logger
	rpc   string
	start time.Time

	mu   sync.Mutex
	req  *signerv1.StreamSignMqttConnectRequest
	sent int
	// reason is the Authorizer's, for a stream it refused as a whole.
	reason string
}

func (w *auditingStream) RecvMsg(m any) error {
	err := w.ServerStream.RecvMsg(m)
	if r, ok := m.(*signerv1.StreamSignMqttConnectRequest); ok && err == nil {
		w.mu.Lock()
		w.req = r
		w.mu.Unlock()
	}
	return err
}

func (w *auditingStream) SendMsg(m any) error {
	err := w.ServerStream.SendMsg(m)
	item, ok := m.(*signerv1.StreamSignMqttConnectResponse)
	if !ok || err != nil {
		return err
	}
	w.mu.Lock()
	w.sent++
	req := w.req
	w.mu.Unlock()
	r := w.record()
	if req != nil && int(item.GetIndex()) < len(req.GetRequests()) {
		it := req.GetRequests()[item.GetIndex()]
		r.ProductKey, r.DeviceName = it.GetProductKey(), it.GetDeviceName()
	}
	var itemErr error
	if e := item.GetError(); e != nil {
		itemErr = status.ErrorProto(e)
	}
	setOutcome(&r, itemErr)
	if status.Code(itemErr) == codes.PermissionDenied {
		r.Reason = "policy: " + r.Caller + " may not call " + r.RPC + " for this device"
	}
	w.l.Write(w.Context(), r)
	return nil
}

func (w *auditingStream) record() audit.Record {
	r := baseRecord(w.Context(), w.start, w.rpc)
	if w.reason != "" {
		r.Reason = w.reason
	}
	return r
}
