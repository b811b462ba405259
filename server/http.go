package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// httpHandler routes /v1/ to the gateway, and serves the OpenAPI document and
// the health endpoints.
func (s *Server) httpHandler() (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, gatewayMarshaler()),
		runtime.WithErrorHandler(s.errorHandler),
		runtime.WithRoutingErrorHandler(s.routingErrorHandler),
		runtime.WithMiddlewares(keepPathParams),
		runtime.WithMetadata(s.cfg.Authenticator.GatewayMetadata),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
	)
	if err := signerv1.RegisterSignerServiceHandlerClient(context.Background(), gw, signerv1.NewSignerServiceClient(s.gwConn)); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", limitBody(gw, s.cfg.MaxBodyBytes))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(signerv1.OpenAPI)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	return withRequestID(mux), nil
}

// readyz reports whether this instance should get traffic: the secret store
// must be reachable. Liveness (/healthz) deliberately does not depend on it,
// so that a Vault outage does not make Kubernetes restart every replica.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		// The reason goes to the log only: /readyz is unauthenticated and
		// the error may name Vault's address or paths.
		s.log.Warn("not ready", "error", err)
		w.Header().Set("Retry-After", strconv.Itoa(limits.RetryAfterSeconds(DefaultRetryAfterUnavailable)))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// limitBody caps the request body. The gateway answers the read error with
// INVALID_ARGUMENT (HTTP 400) and errorHandler names the body as the bad
// field, so an oversized body never reaches the service.
func limitBody(h http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// incomingHeader forwards the gateway's default headers and X-Request-Id,
// and drops any header that could pose as signerd's internal metadata.
func incomingHeader(key string) (string, bool) {
	if auth.IsInternalHeader(key) {
		return "", false
	}
	if strings.EqualFold(key, "X-Request-Id") {
		return "x-request-id", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader forwards no gRPC response header: X-Request-Id is set by
// withRequestID before the gateway runs (the gRPC server adopts that id),
// and Retry-After by errorHandler from the status's RetryInfo, so that
// neither can appear twice.
func outgoingHeader(string) (string, bool) {
	return "", false
}
