// Package audit writes one structured record for every credential issuance
// and every denial, to its own sink (stdout or a file), apart from the
// operational log so that it can be shipped and retained on its own terms.
//
// A record says who asked for which device, how, and what happened. It
// never holds a secret, password or token: the Record type has no field
// that could carry one.
package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Record is one audited call.
type Record struct {
	Time       time.Time
	RequestID  string
	Caller     string // auth.Identity.String(), or "unauthenticated"
	AuthMethod string // mtls, jwt, none
	Transport  string // grpc, rest
	Peer       string // network peer (REST: the client's address)
	RPC        string
	ProductKey string
	DeviceName string
	// Outcome: issued, denied (authentication, authorization, rate limit),
	// rejected (bad input) or failed (not found, upstream, internal).
	Outcome string
	Code    string // gRPC code name
	Reason  string // why, for denials and failures; never a secret
}

// Logger writes records as JSON lines.
type Logger struct {
	log *slog.Logger
}

// New returns a Logger writing to w.
func New(w io.Writer) *Logger {
	return &Logger{log: slog.New(slog.NewJSONHandler(w, nil))}
}

// Open opens the sink named by dest: "stdout", "stderr" or a file path
// (appended to, created 0600). The returned closer closes a file sink.
func Open(dest string) (*Logger, io.Closer, error) {
	switch dest {
	case "", "stdout":
		return New(os.Stdout), io.NopCloser(nil), nil
	case "stderr":
		return New(os.Stderr), io.NopCloser(nil), nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit log: %w", err)
	}
	return New(f), f, nil
}

// Write writes one record.
func (l *Logger) Write(ctx context.Context, r Record) {
	if l == nil {
		return
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.Time("event_time", r.Time),
		slog.String("request_id", r.RequestID),
		slog.String("caller", r.Caller),
		slog.String("auth_method", r.AuthMethod),
		slog.String("transport", r.Transport),
		slog.String("peer", r.Peer),
		slog.String("rpc", r.RPC),
		slog.String("product_key", r.ProductKey),
		slog.String("device_name", r.DeviceName),
		slog.String("outcome", r.Outcome),
		slog.String("code", r.Code),
		slog.String("reason", r.Reason),
	)
}
