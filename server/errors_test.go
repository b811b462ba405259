package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/service"
)

// TestErrorHandlerPlatformCodes: the codes platform failures are answered
// with reach REST callers with the HTTP status README documents, and keep
// their google.rpc.ErrorInfo (reason, platform code).
func TestErrorHandlerPlatformCodes(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want int
	}{
		{codes.FailedPrecondition, http.StatusBadRequest},
		{codes.AlreadyExists, http.StatusConflict},
		{codes.Aborted, http.StatusConflict},
		{codes.NotFound, http.StatusNotFound},
		{codes.Unavailable, http.StatusServiceUnavailable},
		{codes.Unknown, http.StatusBadGateway}, // the platform's unknown code
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			st, err := status.New(tc.code, "m").WithDetails(&errdetails.ErrorInfo{
				Reason: reasonFor(tc.code), Domain: "signerd", Metadata: map[string]string{"platform_code": "6289"}})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			mux := runtime.NewServeMux()
			new(Server).errorHandler(context.Background(), mux, &runtime.JSONPb{}, rec, httptest.NewRequest(http.MethodPost, "/x", nil), st.Err())
			var body struct {
				Code    int `json:"code"`
				Details []struct {
					Type     string            `json:"@type"`
					Reason   string            `json:"reason"`
					Metadata map[string]string `json:"metadata"`
				} `json:"details"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != tc.want || body.Code != int(tc.code) || len(body.Details) != 1 ||
				body.Details[0].Reason != reasonFor(tc.code) || body.Details[0].Metadata["platform_code"] != "6289" {
				t.Errorf("HTTP %d %s; want %d with the ErrorInfo", rec.Code, rec.Body, tc.want)
			}
		})
	}
}

func reasonFor(c codes.Code) string {
	if c == codes.Unknown {
		return service.ReasonCodeUnknown
	}
	return "REASON"
}

// TestUnknownWithoutPlatformReasonIs500: only the platform's unknown code is
// an upstream fault; any other UNKNOWN stays a server fault.
func TestUnknownWithoutPlatformReasonIs500(t *testing.T) {
	rec := httptest.NewRecorder()
	new(Server).errorHandler(context.Background(), runtime.NewServeMux(), &runtime.JSONPb{}, rec,
		httptest.NewRequest(http.MethodPost, "/x", nil), status.Error(codes.Unknown, "m"))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("HTTP %d, want 500", rec.Code)
	}
}
