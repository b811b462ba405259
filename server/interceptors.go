package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/metrics"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// call is who made one call, shared through the context so that the
// outer log and audit interceptors name the caller that authentication,
// inside them, established. Why a call was refused is not kept here: each
// refusal is a typed error (*auth.Error, *refusal, *auth.Denial).
type call struct {
	requestID string
	identity  *auth.Identity
}

type callKey struct{}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// isSignerRPC selects the calls that need authentication, limits and audit:
// every SignerService method, not health checks or reflection.
var isSignerRPC = func(_ context.Context, cm interceptors.CallMeta) bool {
	return cm.Service == signerv1.SignerService_ServiceDesc.ServiceName
}

// requestID takes the caller's x-request-id (if sane) or makes one, puts it
// in the context, and returns it as a response header, so that a REST or
// gRPC caller, the log and the audit record all share it.
func requestID(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id := ""
	// ValueFromIncomingContext, not FromIncomingContext: the latter copies
	// all of the call's metadata, on every call.
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) == 1 && validRequestID(v[0]) {
		id = v[0]
	}
	if id == "" {
		id = newRequestID()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	return handler(context.WithValue(ctx, callKey{}, &call{requestID: id}), req)
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// logFields adds the request id and the caller to every log line of a call.
func logFields(ctx context.Context) logging.Fields {
	c := callFrom(ctx)
	if c == nil {
		return nil
	}
	f := logging.Fields{"request_id", c.requestID}
	if c.identity != nil {
		f = append(f, "caller", c.identity.String())
	}
	return f
}

// authenticate wraps the Authenticator for go-grpc-middleware's auth
// interceptor and records the caller for the log and audit; a refusal is
// the Authenticator's *auth.Error, which the audit reads.
func authenticate(a *auth.Authenticator) func(context.Context) (context.Context, error) {
	return func(ctx context.Context) (context.Context, error) {
		ctx, err := a.Authenticate(ctx)
		if err != nil {
			return ctx, err
		}
		if c := callFrom(ctx); c != nil {
			if id, ok := auth.FromContext(ctx); ok {
				c.identity = &id
			}
		}
		return ctx, nil
	}
}

// refusal is a call the server refused before the service for a reason of
// its own (rate limit, overload): the caller's answer, and the reason for
// the audit record.
type refusal struct {
	st     *status.Status
	reason string
}

func (r *refusal) Error() string              { return r.st.Err().Error() }
func (r *refusal) GRPCStatus() *status.Status { return r.st }

// limiter limits calls with a bucket per caller (and a separate, stricter
// one for PreVerify, which costs a platform round trip).
type limiter struct {
	general, backend, preVerify *limits.PerCaller
	metrics                     *metrics.Metrics
}

func (l *limiter) Limit(ctx context.Context) error {
	id, _ := auth.FromContext(ctx)
	key := id.String()
	if id.Kind == auth.KindAnonymous {
		// Anonymous callers (-dev) share a bucket per network peer.
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			key += "@" + p.Addr.String()
		}
	}
	// A backend signs for a fleet; a device for itself: different budgets.
	b := l.general
	if id.Kind == auth.KindBackend && l.backend != nil {
		b = l.backend
	}
	m, _ := grpc.Method(ctx)
	rpc := path.Base(m)
	if err := l.take(b, m, key, rpc); err != nil {
		return err
	}
	if rpc == "PreVerify" {
		// PreVerify costs a platform round trip: a budget of its own.
		return l.take(l.preVerify, m, key, rpc)
	}
	return nil
}

// rateLimit refuses, with the limiter's *refusal, a call over its caller's
// budget.
func rateLimit(l *limiter) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := l.Limit(ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func rateLimitStream(l *limiter) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := l.Limit(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func (l *limiter) take(b *limits.PerCaller, method, key, rpc string) error {
	if b == nil {
		return nil
	}
	ok, wait := b.Allow(key)
	if ok {
		return nil
	}
	secs := limits.RetryAfterSeconds(wait)
	if l.metrics != nil {
		l.metrics.RateLimited(rpc, "rate_limit")
	}
	// The message is the one go-grpc-middleware's ratelimit interceptor
	// gave, which callers have seen; the wait is the status's RetryInfo.
	st := status.Newf(codes.ResourceExhausted, "%s is rejected by grpc_ratelimit middleware, please retry later. rate limit for %s exceeded; retry after %ds", method, key, secs)
	if wait > 0 {
		if withRI, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
			st = withRI
		}
	}
	return &refusal{st: st, reason: "rate limit"}
}

// shed refuses calls beyond the in-flight cap at once.
func shed(f *limits.InFlight, m *metrics.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !f.TryAcquire() {
			if m != nil {
				m.RateLimited(path.Base(info.FullMethod), "overloaded")
			}
			return nil, overloaded()
		}
		defer f.Release()
		return handler(ctx, req)
	}
}

// overloaded is the refusal of a call beyond the in-flight cap.
func overloaded() error {
	return &refusal{st: status.New(codes.ResourceExhausted, "server overloaded; retry later"), reason: "overloaded"}
}

// auditCalls is the unary side of the one audit point (see audit).
//
// deviceOf names the device of a request the service never saw; nil
// names none.
func auditCalls(l *audit.Logger, deviceOf func(rpc string, req any) (auth.Device, bool)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if l == nil {
			return handler(ctx, req)
		}
		start := time.Now()
		ctx, outcomes := audit.Track(ctx)
		resp, err := handler(ctx, req)
		var dev auth.Device
		rpc := path.Base(info.FullMethod)
		if deviceOf != nil {
			dev, _ = deviceOf(rpc, req)
		}
		writeAudit(ctx, l, start, rpc, dev, outcomes(), err)
		return resp, err
	}
}

// writeAudit is the one audit point: one record per device the service
// decided about, from the outcomes it reported (each refusal's reason is
// the Authorizer's), in the order it reported them. A call the service
// never decided (refused before it: authentication, rate limit, overload,
// a REST request the gateway could not forward) or answered as a whole
// without naming a device (a batch of the wrong size) has one record, for
// dev, the device its request names, if any.
func writeAudit(ctx context.Context, l *audit.Logger, start time.Time, rpc string, dev auth.Device, outs []audit.Outcome, err error) {
	r := baseRecord(ctx, start, rpc)
	if r.Transport == "rest" {
		// The gateway appends the address it saw to whatever
		// X-Forwarded-For the client sent: only the last entry is not
		// the caller's own say-so.
		if v := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for"); len(v) > 0 {
			hops := strings.Split(v[len(v)-1], ",")
			r.Peer = strings.TrimSpace(hops[len(hops)-1])
		}
	}
	if len(outs) == 0 {
		outs = []audit.Outcome{{Device: dev, Err: err}}
	}
	for _, o := range outs {
		ir := r
		ir.Platform, ir.ProductKey, ir.DeviceName, ir.Module = o.Device.Platform, o.Device.ProductKey, o.Device.DeviceName, o.Device.Module
		if reason := reasonOf(o); reason != "" {
			ir.Reason = reason
		}
		setOutcome(&ir, o.Err)
		l.Write(ctx, ir)
	}
}

// reasonOf is an outcome's reason from the service's typed decision: its
// own, the Authorizer's denial of this device, or, for a device refused
// with others (the sub-devices of one gateway), the denials of them all.
// "" leaves the call's (or, for a failure, the answer's message).
func reasonOf(o audit.Outcome) string {
	if o.Reason != "" {
		return o.Reason
	}
	var rf *refusal
	if errors.As(o.Err, &rf) {
		return rf.reason
	}
	var ae *auth.Error
	if errors.As(o.Err, &ae) {
		return ae.Cause.Error()
	}
	ds := auth.Denials(o.Err)
	if len(ds) == 0 {
		return ""
	}
	var subs []*auth.Denial
	for _, d := range ds {
		if d.Gateway == (auth.Device{}) {
			continue
		}
		if d.Device == o.Device {
			return d.Reason
		}
		subs = append(subs, d)
	}
	if len(subs) == 0 {
		return ds[0].Reason
	}
	names := make([]string, len(subs))
	for i, d := range subs {
		names[i] = d.Device.String()
	}
	return "policy: " + subs[0].Caller + " may not sign sub-devices " + strings.Join(names, ", ") +
		" for gateway " + subs[0].Gateway.String()
}

// baseRecord is a record of the call in ctx, before its outcome.
func baseRecord(ctx context.Context, start time.Time, rpc string) audit.Record {
	r := audit.Record{Time: start, Transport: auth.Transport(ctx), RPC: rpc, Caller: "unauthenticated"}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		r.Peer = p.Addr.String()
	}
	if c := callFrom(ctx); c != nil {
		r.RequestID = c.requestID
		if c.identity != nil {
			r.Caller, r.AuthMethod = c.identity.String(), c.identity.Method
		}
	}
	return r
}

// setOutcome fills a record's code, outcome and (for failures) reason.
func setOutcome(r *audit.Record, err error) {
	code := status.Code(err)
	r.Code = code.String()
	switch code {
	case codes.OK:
		r.Outcome = "issued"
	case codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted:
		r.Outcome = "denied"
	case codes.InvalidArgument:
		r.Outcome = "rejected"
		if r.Reason == "" {
			r.Reason = status.Convert(err).Message()
		}
	default:
		r.Outcome = "failed"
		if r.Reason == "" {
			r.Reason = status.Convert(err).Message()
		}
	}
}
