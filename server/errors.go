package server

import (
	"context"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// protojson names the offending JSON field in its messages, e.g.
// `invalid value for enum field signMethod: "X"` or `unknown field "foo"`.
var protojsonField = regexp.MustCompile(`(?:field|unknown field) "?([A-Za-z_][A-Za-z0-9_]*)"?`)

// errorHandler is the gateway's default JSON error writer, except that a body
// the gateway could not decode (malformed JSON, an unknown enum name or field,
// an oversized body) also gets the google.rpc.BadRequest detail that the
// service gives for its own validation errors, so REST clients can find the
// bad field the same way in every case.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if ok && st.Code() == codes.InvalidArgument && len(st.Details()) == 0 {
		field := "body"
		msg := st.Message()
		if sub := protojsonField.FindStringSubmatch(msg); sub != nil {
			field = sub[1]
		}
		if strings.Contains(msg, "request body too large") {
			msg = "request body too large"
		}
		if withDetails, derr := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}},
		}); derr == nil {
			err = withDetails.Err()
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// routingErrorHandler is the gateway's default, except that a known path
// with the wrong method gets 405 Method Not Allowed: the default maps it to
// UNIMPLEMENTED and so to 501, which would make a client's mistake look like
// a server fault.
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		errorHandler(ctx, mux, m, w, r, &runtime.HTTPStatusError{
			HTTPStatus: http.StatusMethodNotAllowed,
			Err:        status.Error(codes.Unimplemented, http.StatusText(http.StatusMethodNotAllowed)),
		})
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}
