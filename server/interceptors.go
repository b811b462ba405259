package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/metrics"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// call is what the interceptors learn about one call, shared through the
// context so that the outer audit interceptor sees what the inner ones
// decided.
type call struct {
	requestID string
	identity  *auth.Identity
	reason    string
	// retryAfter is the rate limiter's wait for a refused call.
	retryAfter time.Duration
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
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) == 1 && validRequestID(v[0]) {
			id = v[0]
		}
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
// interceptor and records the outcome for audit.
func authenticate(a *auth.Authenticator) func(context.Context) (context.Context, error) {
	return func(ctx context.Context) (context.Context, error) {
		ctx, err := a.Authenticate(ctx)
		c := callFrom(ctx)
		if c == nil {
			return ctx, err
		}
		if err != nil {
			var ae *auth.Error
			if errors.As(err, &ae) {
				c.reason = ae.Cause.Error()
			}
			return ctx, err
		}
		if id, ok := auth.FromContext(ctx); ok {
			c.identity = &id
		}
		return ctx, nil
	}
}

// deviceRequest is every request that names one device.
type deviceRequest interface {
	GetProductKey() string
	GetDeviceName() string
}

// batchRequest is a request naming many devices.
type batchRequest interface {
	GetRequests() []*signerv1.SignMqttConnectRequest
}

// limiter implements go-grpc-middleware's ratelimit.Limiter with a bucket
// per caller (and a separate, stricter one for PreVerify, which costs a
// platform round trip).
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
	if err := l.take(ctx, b, key, rpc); err != nil {
		return err
	}
	if rpc == "PreVerify" {
		// PreVerify costs a platform round trip: a budget of its own.
		return l.take(ctx, l.preVerify, key, rpc)
	}
	return nil
}

func (l *limiter) take(ctx context.Context, b *limits.PerCaller, key, rpc string) error {
	if b == nil {
		return nil
	}
	ok, wait := b.Allow(key)
	if ok {
		return nil
	}
	secs := limits.RetryAfterSeconds(wait)
	if c := callFrom(ctx); c != nil {
		c.reason = "rate limit"
		c.retryAfter = wait // for withRetryInfo: the middleware's status drops details
	}
	if l.metrics != nil {
		l.metrics.RateLimited(rpc, "rate_limit")
	}
	return fmt.Errorf("rate limit for %s exceeded; retry after %ds", key, secs)
}

// shed refuses calls beyond the in-flight cap at once.
func shed(f *limits.InFlight, m *metrics.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !f.TryAcquire() {
			if m != nil {
				m.RateLimited(path.Base(info.FullMethod), "overloaded")
			}
			if c := callFrom(ctx); c != nil {
				c.reason = "overloaded"
			}
			return nil, status.Error(codes.ResourceExhausted, "server overloaded; retry later")
		}
		defer f.Release()
		return handler(ctx, req)
	}
}

// auditCalls writes one audit record per SignerService call, whatever the
// outcome, and one per device a call names beside its own: every issuance
// and every denial names its device (see auditItems).
func auditCalls(l *audit.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		if l == nil {
			return resp, err
		}
		r := baseRecord(ctx, start, path.Base(info.FullMethod))
		if md, ok := metadata.FromIncomingContext(ctx); ok && r.Transport == "rest" {
			// The gateway appends the address it saw to whatever
			// X-Forwarded-For the client sent: only the last entry is not
			// the caller's own say-so.
			if v := md.Get("x-forwarded-for"); len(v) > 0 {
				hops := strings.Split(v[len(v)-1], ",")
				r.Peer = strings.TrimSpace(hops[len(hops)-1])
			}
		}
		if dr, ok := req.(deviceRequest); ok {
			r.ProductKey, r.DeviceName = dr.GetProductKey(), dr.GetDeviceName()
		}
		// The service's refusals carry the Authorizer's denials, each with
		// its reason.
		denials := auth.Denials(err)
		if len(denials) > 0 && denials[0].Gateway == (auth.Device{}) {
			r.Reason = denials[0].Reason
		}

		switch req := req.(type) {
		case batchRequest:
			var results []*signerv1.BatchSignMqttConnectResult
			if out, ok := resp.(*signerv1.BatchSignMqttConnectResponse); ok && err == nil {
				results = out.GetResults()
			}
			if auditItems(ctx, l, r, req.GetRequests(), results, err) {
				return resp, err
			}
		case *signerv1.SignSubDeviceLoginRequest:
			auditSubDevices(ctx, l, r, denials, req, err)
			return resp, err
		}
		setOutcome(&r, err)
		l.Write(ctx, r)
		return resp, err
	}
}

// baseRecord is a record of the call in ctx, before its outcome.
func baseRecord(ctx context.Context, start time.Time, rpc string) audit.Record {
	r := audit.Record{Time: start, Transport: auth.Transport(ctx), RPC: rpc, Caller: "unauthenticated"}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		r.Peer = p.Addr.String()
	}
	if c := callFrom(ctx); c != nil {
		r.RequestID, r.Reason = c.requestID, c.reason
		if c.identity != nil {
			r.Caller, r.AuthMethod = c.identity.String(), c.identity.Method
		}
	}
	return r
}

// maxAuditedItems bounds the records one refused call can produce
// (StreamSignMqttConnect's own limit): a larger request is refused as a
// whole and recorded once.
const maxAuditedItems = 100_000

// auditItems writes one record per item of a batch or stream and reports
// whether it did. Items are recorded when the call was answered (each with
// its own outcome), and when an authenticated caller was refused the whole
// call by policy (each with the call's code and reason: a device calling a
// batch RPC is denied every device it named). A call refused before its
// caller was known, or for a reason that is not about its devices (rate
// limit, bad input), is recorded once by the caller.
func auditItems(ctx context.Context, l *audit.Logger, r audit.Record, items []*signerv1.SignMqttConnectRequest, results []*signerv1.BatchSignMqttConnectResult, err error) bool {
	answered := err == nil && len(results) == len(items)
	deniedWhole := status.Code(err) == codes.PermissionDenied && r.Caller != "unauthenticated"
	if !(answered || deniedWhole) || len(items) == 0 || len(items) > maxAuditedItems {
		return false
	}
	for i, item := range items {
		ir := r
		ir.ProductKey, ir.DeviceName = item.GetProductKey(), item.GetDeviceName()
		itemErr := err
		if answered {
			if e := results[i].GetError(); e != nil {
				itemErr = status.ErrorProto(e)
			} else {
				itemErr = nil
			}
		}
		setOutcome(&ir, itemErr)
		if answered && status.Code(itemErr) == codes.PermissionDenied {
			ir.Reason = "policy: " + ir.Caller + " may not call " + ir.RPC + " for this device"
		}
		l.Write(ctx, ir)
	}
	return true
}

// auditSubDevices records a SignSubDeviceLogin. An answered call has one
// record per sub-device signed for. A failed one has the gateway's record
// and, when an authenticated caller was denied, one per sub-device: each
// sub-device the policy refused with its own reason, every other one with
// the call's.
func auditSubDevices(ctx context.Context, l *audit.Logger, r audit.Record, denials []*auth.Denial, req *signerv1.SignSubDeviceLoginRequest, err error) {
	var denied []*auth.Denial
	for _, d := range denials {
		if d.Gateway != (auth.Device{}) {
			denied = append(denied, d)
		}
	}
	gw := r
	if len(denied) > 0 {
		names := make([]string, len(denied))
		for i, d := range denied {
			names[i] = d.Device.String()
		}
		gw.Reason = "policy: " + r.Caller + " may not sign sub-devices " + strings.Join(names, ", ") +
			" for gateway " + req.GetProductKey() + "/" + req.GetDeviceName()
	}
	if err != nil {
		setOutcome(&gw, err)
		l.Write(ctx, gw)
	}

	subs := req.GetSubDevices()
	if len(subs) > maxAuditedItems {
		return
	}
	deniedWhole := status.Code(err) == codes.PermissionDenied && r.Caller != "unauthenticated"
	if err != nil && !deniedWhole {
		return // recorded by the gateway's record: nothing was signed
	}
	for _, sub := range subs {
		ir := r
		ir.ProductKey, ir.DeviceName = sub.GetProductKey(), sub.GetDeviceName()
		if err == nil {
			ir.Reason = "sub-device of gateway " + req.GetProductKey() + "/" + req.GetDeviceName()
			setOutcome(&ir, nil)
			l.Write(ctx, ir)
			continue
		}
		ir.Reason = gw.Reason
		for _, d := range denied {
			if d.Device == (auth.Device{ProductKey: sub.GetProductKey(), DeviceName: sub.GetDeviceName()}) {
				ir.Reason = d.Reason
				break
			}
		}
		setOutcome(&ir, err)
		l.Write(ctx, ir)
	}
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
