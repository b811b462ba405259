package server

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/service"
)

// Default retry delays for answers that do not say how long to wait: an
// overloaded or rate-limited server frees up quickly; an unreachable Vault
// or platform takes longer to come back, and many clients retrying every
// second would only add to the load.
const (
	DefaultRetryAfterExhausted   = time.Second
	DefaultRetryAfterUnavailable = 5 * time.Second
)

// protojson names the offending JSON field in its messages, e.g.
// `invalid value for enum field signMethod: "X"` or `unknown field "foo"`.
var protojsonField = regexp.MustCompile(`(?:field|unknown field) "?([A-Za-z_][A-Za-z0-9_]*)"?`)

// utf8Field finds the field strictJSONPb names for invalid UTF-8.
var utf8Field = regexp.MustCompile(`invalid UTF-8 in field ("(?:[^"\\]|\\.)*")`)

// errorHandler writes every REST error. It is grpc-gateway's default JSON
// error writer, plus:
//
//   - A request the gateway refused before calling the service (a body it
//     could not decode, an oversized body) gets the google.rpc.BadRequest
//     detail the service gives for its own validation errors, so REST
//     clients find the bad field the same way in every case; and the refusal
//     goes through the gRPC chain (see replay), so that it is logged and
//     audited under the request's id like any bad request.
//   - 429 and 503 carry Retry-After, from the status's google.rpc.RetryInfo
//     or the defaults above.
func (s *Server) errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var httpErr *runtime.HTTPStatusError
	if errors.As(err, &httpErr) {
		// Routing errors only: they are logged by routingErrorHandler.
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
		return
	}
	st := status.Convert(err)
	if rc := restCallFrom(ctx); rc != nil && !rc.forwarded {
		st = gatewayRefusal(st)
		md, replayed, rerr := s.replay(ctx, rc, st)
		if replayed {
			st = status.Convert(rerr)
			ctx = runtime.NewServerMetadataContext(ctx, md)
		} else {
			// Refused before the gateway knew the method (a malformed
			// grpc-timeout, say): there is no call to audit.
			s.log.InfoContext(ctx, "REST request refused", "request_id", rc.requestID,
				"code", st.Code().String(), "error", st.Message())
		}
	}
	if d, ok := retryAfter(st); ok {
		w.Header().Set("Retry-After", strconv.Itoa(limits.RetryAfterSeconds(d)))
	}
	if !utf8.ValidString(st.Message()) {
		// protojson cannot marshal it: the gateway would answer 500.
		p := st.Proto()
		p.Message = strings.ToValidUTF8(p.Message, "\uFFFD")
		st = status.FromProto(p)
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, restError(st))
}

// restError is st as the gateway should answer it. The one change to the
// gateway's code-to-HTTP mapping: a platform answer signerd does not know
// (UNKNOWN with reason PLATFORM_CODE_UNKNOWN) is 502 Bad Gateway, not 500,
// because the fault is upstream, not in signerd.
func restError(st *status.Status) error {
	if st.Code() == codes.Unknown {
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == service.ReasonCodeUnknown {
				return &runtime.HTTPStatusError{HTTPStatus: http.StatusBadGateway, Err: st.Err()}
			}
		}
	}
	return st.Err()
}

// gatewayRefusal is the status for an error the gateway made itself (all of
// them INVALID_ARGUMENT: it refuses only what it cannot decode). Those name
// no field; the field is read from the message: the JSON field protojson or
// strictJSONPb names, the Grpc-Timeout header, or else the body as a whole.
func gatewayRefusal(st *status.Status) *status.Status {
	if st.Code() != codes.InvalidArgument || len(st.Details()) > 0 {
		return st
	}
	field := "body"
	msg := st.Message()
	switch sub := utf8Field.FindStringSubmatch(msg); {
	case sub != nil:
		if f, err := strconv.Unquote(sub[1]); err == nil && f != "" {
			field = f
		}
		msg = "invalid " + field + ": not valid UTF-8"
	case strings.Contains(msg, "request body too large"):
		msg = "request body too large"
	case strings.HasPrefix(msg, "invalid grpc-timeout"):
		field = "Grpc-Timeout"
	default:
		if sub := protojsonField.FindStringSubmatch(msg); sub != nil {
			field = sub[1]
		}
	}
	return badRequest(msg, &errdetails.BadRequest_FieldViolation{Field: field, Description: msg})
}

// routingErrorHandler is the gateway's default, except that a known path
// with the wrong method gets 405 Method Not Allowed: the default maps it to
// UNIMPLEMENTED and so to 501, which would make a client's mistake look like
// a server fault. Routing errors name no RPC, so there is nothing to audit;
// they are logged with the request id the answer carries.
func (s *Server) routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if rc := restCallFrom(r.Context()); rc != nil {
		path := r.URL.EscapedPath()
		if len(path) > 256 {
			path = path[:256] + "…"
		}
		s.log.InfoContext(ctx, "REST request not routed", "request_id", rc.requestID,
			"method", r.Method, "path", path, "http_status", httpStatus)
	}
	if httpStatus == http.StatusMethodNotAllowed {
		s.errorHandler(ctx, mux, m, w, r, &runtime.HTTPStatusError{
			HTTPStatus: http.StatusMethodNotAllowed,
			Err:        status.Error(codes.Unimplemented, http.StatusText(http.StatusMethodNotAllowed)),
		})
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

// retryAfter is how long a caller should wait before retrying st: its
// RetryInfo, or the default for its code; ok is false for codes a retry
// after a pause does not fix.
func retryAfter(st *status.Status) (d time.Duration, ok bool) {
	switch st.Code() {
	case codes.ResourceExhausted:
		d = DefaultRetryAfterExhausted
	case codes.Unavailable:
		d = DefaultRetryAfterUnavailable
	default:
		return 0, false
	}
	for _, det := range st.Details() {
		if ri, isRI := det.(*errdetails.RetryInfo); isRI && ri.GetRetryDelay().IsValid() {
			if rd := ri.GetRetryDelay().AsDuration(); rd > 0 {
				return rd, true
			}
		}
	}
	return d, true
}

// withRetryInfo is where every RESOURCE_EXHAUSTED and UNAVAILABLE answer
// gets its google.rpc.RetryInfo (and gRPC callers a retry-after header):
// the delay the status already names (the rate limiter's, for its
// refusals), else the default for the code.
func withRetryInfo(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st, isStatus := status.FromError(err)
	if !isStatus {
		return err
	}
	d, ok := retryAfter(st)
	if !ok {
		return err
	}
	has := false
	for _, det := range st.Details() {
		if _, isRI := det.(*errdetails.RetryInfo); isRI {
			has = true
		}
	}
	if !has {
		if withRI, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); derr == nil {
			st = withRI
		}
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.Itoa(limits.RetryAfterSeconds(d))))
	return st.Err()
}

// retryInfo applies withRetryInfo to every unary call's error.
func retryInfo(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, withRetryInfo(ctx, err)
}

// retryInfoStream applies withRetryInfo to every stream's error.
func retryInfoStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return withRetryInfo(ss.Context(), handler(srv, ss))
}
