// Package audit writes one structured record for every credential issuance
// and every denial, to its own sink (stdout or a file), apart from the
// operational log so that it can be shipped and retained on its own terms.
//
// A record says who asked for which device, how, and what happened. It
// never holds a secret, password or token: the Record type has no field
// that could carry one.
//
// Records are written from the service's own decisions: the server tracks
// each call (Track), the service reports the typed Outcome of every device
// it decided about (Report), and the server's one audit point writes one
// record per outcome, or one for a call refused before the service.
package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/signerd/signerd/auth"
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
	// Platform is the device's platform ("" for Alibaba, written
	// "aliyun"); Module an Azure module, "" otherwise.
	Platform   string
	ProductKey string
	DeviceName string
	Module     string
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
	platform := r.Platform
	if platform == "" {
		platform = "aliyun"
	}
	attrs := []slog.Attr{
		slog.Time("event_time", r.Time),
		slog.String("request_id", r.RequestID),
		slog.String("caller", r.Caller),
		slog.String("auth_method", r.AuthMethod),
		slog.String("transport", r.Transport),
		slog.String("peer", r.Peer),
		slog.String("rpc", r.RPC),
		slog.String("platform", platform),
		slog.String("product_key", r.ProductKey),
		slog.String("device_name", r.DeviceName),
		slog.String("module", r.Module),
		slog.String("outcome", r.Outcome),
		slog.String("code", r.Code),
		slog.String("reason", r.Reason),
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// Outcome is the service's decision for one device a call touched, as the
// service made it: the audit record is written from it, not rebuilt from
// the messages of the call.
type Outcome struct {
	// Device is the device decided about; zero for the call as a whole
	// (a stream that failed after some of its items were answered).
	Device auth.Device
	// Err is the device's answer: nil when issued; a refusal carries the
	// Authorizer's *auth.Denial (auth.Denials).
	Err error
	// Reason, if set, is the decision's own reason (for instance, that a
	// sub-device was signed for a gateway).
	Reason string
}

type outcomesKey struct{}

type outcomes struct {
	mu   sync.Mutex
	list []Outcome
}

// Track returns ctx carrying the record of one call's outcomes, and a
// function returning the outcomes reported so far, in order.
func Track(ctx context.Context) (context.Context, func() []Outcome) {
	o := &outcomes{}
	return context.WithValue(ctx, outcomesKey{}, o), func() []Outcome {
		o.mu.Lock()
		defer o.mu.Unlock()
		return slices.Clone(o.list)
	}
}

// Report records the outcomes of the devices a call decided about, in the
// order they are to be audited. Without Track it does nothing.
func Report(ctx context.Context, outs ...Outcome) {
	o, _ := ctx.Value(outcomesKey{}).(*outcomes)
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, outs...)
}
