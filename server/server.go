package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/limits"
	"github.com/signerd/signerd/metrics"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// DefaultMaxBodyBytes caps REST request bodies: a signing request is a few
// hundred bytes, so anything near this is not a legitimate caller.
const DefaultMaxBodyBytes = 64 << 10

// Config configures a Server.
type Config struct {
	// GRPCAddr and HTTPAddr are the listen addresses ("127.0.0.1:0" picks a
	// free port).
	GRPCAddr, HTTPAddr string
	// MetricsAddr is the Prometheus listener's address; "" or "off" serves
	// no metrics listener.
	MetricsAddr string
	// Metrics receives the servers' metrics; nil disables them.
	Metrics *metrics.Metrics
	// Service is the one SignerService implementation.
	Service signerv1.SignerServiceServer
	// Logger receives the server's structured logs.
	Logger *slog.Logger
	// MaxBodyBytes caps REST request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ShutdownTimeout bounds the graceful drain on shutdown; 0 means 15 s.
	ShutdownTimeout time.Duration
	// Ready reports whether the service can serve (for /readyz and the gRPC
	// health service); nil means always ready.
	Ready func(context.Context) error

	// TLS, if set, serves both listeners over TLS. Client certificates are
	// requested, not verified by the handshake: Authenticator verifies them
	// so that a bad certificate gets UNAUTHENTICATED rather than a broken
	// connection, and so that a CA bundle reload applies at once.
	TLS *tls.Config
	// Authenticator establishes every SignerService caller's identity.
	// Required: -dev uses one that admits anonymous callers.
	Authenticator *auth.Authenticator
	// Audit receives one record per SignerService call; nil disables.
	Audit *audit.Logger
	// RateLimit limits each device (and anonymous) caller, BackendRateLimit
	// each backend (nil: RateLimit applies), PreVerifyLimit each caller's
	// PreVerify calls on top; nil disables.
	RateLimit, BackendRateLimit, PreVerifyLimit *limits.PerCaller
	// InFlight caps concurrent SignerService calls; nil disables.
	InFlight *limits.InFlight
	// Reflection serves gRPC server reflection on the gRPC listener, which
	// hands any caller the API's full schema (grpcurl list/describe).
	Reflection bool
}

// Server is a running signerd: gRPC and HTTP listeners.
type Server struct {
	cfg     Config
	log     *slog.Logger
	grpc    *grpc.Server // external listener (TLS when configured)
	health  *health.Server
	http    *http.Server
	grpcLis net.Listener
	httpLis net.Listener
	// gwConn is the gateway's in-process channel to the service: the same
	// interceptor chain as the gRPC listener, without HTTP/2 or encoding.
	gwConn  grpc.ClientConnInterface
	metLis  net.Listener
	metHTTP *http.Server
}

// New builds the servers and binds the listeners, so that Addr methods are
// valid before Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, errors.New("server: Config.Service is nil")
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("server: Config.Authenticator is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger}

	s.health = health.NewServer()
	var creds []grpc.ServerOption
	if cfg.TLS != nil {
		creds = append(creds, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	unary, stream := s.interceptors()
	s.grpc = newGRPCServer(cfg.Service, unary, stream, creds...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if cfg.Reflection {
		reflection.Register(s.grpc)
	}
	s.gwConn = newGatewayChannel(cfg.Service, unary, stream)

	var err error
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen gRPC on %q: %w", cfg.GRPCAddr, err)
	}
	if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		s.grpcLis.Close()
		return nil, fmt.Errorf("listen HTTP on %q: %w", cfg.HTTPAddr, err)
	}

	if cfg.Metrics != nil && cfg.MetricsAddr != "" && cfg.MetricsAddr != "off" {
		if s.metLis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listen metrics on %q: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", cfg.Metrics.Handler())
		s.metHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}
	}
	if cfg.Metrics != nil {
		cfg.Metrics.InitializeServer(s.grpc)
	}

	handler, err := s.httpHandler()
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         cfg.TLS,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// MetricsAddr returns the bound metrics address, or "off".
func (s *Server) MetricsAddr() string {
	if s.metLis == nil {
		return "off"
	}
	return s.metLis.Addr().String()
}

// GRPCAddr returns the bound gRPC address.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr returns the bound HTTP address.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

// Serve serves until ctx is cancelled, then drains in-flight requests for up
// to the shutdown timeout and returns. It returns an error only when a
// listener fails.
func (s *Server) Serve(ctx context.Context) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(signerv1.SignerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreClosed(s.grpc.Serve(s.grpcLis)) })
	if s.metHTTP != nil {
		g.Go(func() error { return ignoreClosed(s.metHTTP.Serve(s.metLis)) })
	}
	g.Go(func() error {
		if s.cfg.TLS != nil {
			return ignoreClosed(s.http.ServeTLS(s.httpLis, "", ""))
		}
		return ignoreClosed(s.http.Serve(s.httpLis))
	})
	g.Go(func() error {
		<-gctx.Done()
		s.shutdown()
		return nil
	})
	if s.cfg.Ready != nil {
		g.Go(func() error { s.watchReadiness(gctx); return nil })
	}
	return g.Wait()
}

// watchReadiness mirrors Config.Ready into the gRPC health service, so gRPC
// load balancers and Kubernetes' grpc probes see what /readyz sees. The
// overall ("") status stays SERVING: the process is alive.
func (s *Server) watchReadiness(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	name := signerv1.SignerService_ServiceDesc.ServiceName
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.cfg.Ready(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		st := healthpb.HealthCheckResponse_SERVING
		if err != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		s.health.SetServingStatus(name, st)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) shutdown() {
	s.log.Info("shutting down: draining in-flight requests", "timeout", s.cfg.ShutdownTimeout)
	// Tell load balancers first, then stop taking new work.
	s.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if s.metHTTP != nil {
		// Last: metrics stay scrapeable while the drain runs.
		defer s.metHTTP.Close()
	}
	// Both external listeners stop accepting at once (GracefulStop and
	// Shutdown each close their listener first, then wait): draining one
	// before closing the other would let new clients in through the second
	// while the first drains, only to have their calls cut off.
	external := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(external) }()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("HTTP drain incomplete", "error", err)
		s.http.Close()
	}
	// REST calls run inside their HTTP handlers (the in-process channel
	// has no connection of its own), so the HTTP drain above drained them.
	select {
	case <-external:
	case <-ctx.Done():
		s.log.Warn("gRPC drain incomplete: closing remaining streams")
		s.grpc.Stop()
	}
}

func (s *Server) closeListeners() {
	s.grpcLis.Close()
	s.httpLis.Close()
	if s.metLis != nil {
		s.metLis.Close()
	}
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// interceptors is signerd's interceptor chain, in the order a call meets
// them:
//
//	request id → retry info → metrics → log → audit → authenticate → rate limit → shed
//	→ (gateway refusal) → recover → service
//
// The gRPC listener and the REST gateway's in-process channel run this one
// chain: there is one implementation of each check for both transports.
// Audit is outside authentication so that refused callers are recorded.
// Authorization is not an interceptor: the service asks its one
// auth.Authorizer about every device a call touches (the request's, each
// batch or stream item, each sub-device) before that device's secret is
// looked up, and its refusals carry the Authorizer's *auth.Denial for the
// audit record. Retry info is outermost but for the request id, so that
// every RESOURCE_EXHAUSTED and UNAVAILABLE, whichever link made it, leaves
// with a RetryInfo. The gateway refusal link answers, for a REST call, the
// refusal the gateway made instead of calling the service; a gRPC call
// never has one.
func (s *Server) interceptors() ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	cfg := s.cfg
	signer := selector.MatchFunc(isSignerRPC)
	lim := &limiter{general: cfg.RateLimit, backend: cfg.BackendRateLimit, preVerify: cfg.PreVerifyLimit, metrics: cfg.Metrics}
	inflight := cfg.InFlight
	if inflight == nil {
		inflight = limits.NewInFlight(0)
	}
	var measure grpc.UnaryServerInterceptor = passThrough
	measureStream := passThroughStream
	if cfg.Metrics != nil {
		measure = cfg.Metrics.UnaryServerInterceptor(auth.Transport)
		measureStream = cfg.Metrics.StreamServerInterceptor(auth.Transport)
	}
	unary := []grpc.UnaryServerInterceptor{
		requestID,
		retryInfo,
		measure,
		logCalls(cfg.Logger),
		selector.UnaryServerInterceptor(auditCalls(cfg.Audit, deviceOf(cfg.Service)), signer),
		selector.UnaryServerInterceptor(grpcauth.UnaryServerInterceptor(authenticate(cfg.Authenticator)), signer),
		selector.UnaryServerInterceptor(rateLimit(lim), signer),
		selector.UnaryServerInterceptor(shed(inflight, cfg.Metrics), signer),
		selector.UnaryServerInterceptor(gatewayRejection, signer),
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(s.recovered)),
	}
	stream := []grpc.StreamServerInterceptor{
		requestIDStream,
		retryInfoStream,
		measureStream,
		logCallsStream(cfg.Logger),
		selector.StreamServerInterceptor(auditStream(cfg.Audit), signer),
		selector.StreamServerInterceptor(grpcauth.StreamServerInterceptor(authenticate(cfg.Authenticator)), signer),
		selector.StreamServerInterceptor(rateLimitStream(lim), signer),
		selector.StreamServerInterceptor(shedStream(inflight, cfg.Metrics), signer),
		selector.StreamServerInterceptor(gatewayRejectionStream, signer),
		recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(s.recovered)),
	}
	return unary, stream
}

// maxRecvMsgSize caps one gRPC request message: a 100,000-device stream
// request is ~6 MB. (REST bodies have their own, smaller cap, MaxBodyBytes.)
const maxRecvMsgSize = 16 << 20

// newGRPCServer builds the gRPC listener's server with the chain.
func newGRPCServer(svc signerv1.SignerServiceServer, unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor, opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...), grpc.MaxRecvMsgSize(maxRecvMsgSize))
	g := grpc.NewServer(opts...)
	signerv1.RegisterSignerServiceServer(g, svc)
	return g
}

// callLevel logs successful calls at debug (every issuance already has its
// audit record), callers' mistakes at info and server-side failures at warn
// or error. UNIMPLEMENTED is a caller's mistake too: a method this server
// does not have, or one its documented configuration leaves out
// (RegisterDevice with -dev).
func callLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK:
		return logging.LevelDebug
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return logging.LevelWarn
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return logging.LevelError
	}
	return logging.LevelInfo
}

func passThrough(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(ctx, req)
}

func passThroughStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, ss)
}

func (s *Server) recovered(ctx context.Context, p any) error {
	s.log.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p))
	return status.Error(codes.Internal, "internal error")
}

// gatewayMarshaler speaks protojson with the API's camelCase names. Unknown
// fields are rejected rather than dropped, so a misspelt option is an error
// instead of a silent default.
func gatewayMarshaler() runtime.Marshaler {
	return &runtime.HTTPBodyMarshaler{Marshaler: &strictJSONPb{JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}}
}

// strictJSONPb is runtime.JSONPb whose decoder also rejects anything but
// white space after the request object (the gateway's own decoder reads the
// first JSON value and ignores the rest, so `{} garbage` would pass), and
// names the field of a string that is not valid UTF-8 (protojson only says
// where it is).
type strictJSONPb struct {
	runtime.JSONPb
}

func (m *strictJSONPb) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return err
		}
		if !utf8.Valid(raw) {
			return fmt.Errorf("invalid UTF-8 in field %q", invalidUTF8Field(raw))
		}
		if pm, ok := v.(proto.Message); ok {
			// What the gateway's decoder does with a message, without
			// scanning the body with encoding/json a second time.
			if err := m.UnmarshalOptions.Unmarshal(raw, pm); err != nil {
				return err
			}
		} else {
			inner := runtime.DecoderWrapper{Decoder: json.NewDecoder(bytes.NewReader(raw)), UnmarshalOptions: m.UnmarshalOptions}
			if err := inner.Decode(v); err != nil {
				return err
			}
		}
		_, err := d.Token()
		var syntax *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && !errors.As(err, &syntax):
			return err // a read error, such as a body over the size cap
		}
		return errors.New("unexpected data after the JSON object")
	})
}

// invalidUTF8Field returns the JSON path (requests[2].deviceName) of the
// first string in raw, a valid JSON value, whose bytes are not valid UTF-8;
// "body" if there is none. encoding/json replaces such bytes as it decodes,
// so each token's bytes are read from raw itself.
func invalidUTF8Field(raw []byte) string {
	type level struct {
		array     bool
		n         int
		key       string
		expectKey bool
	}
	var stack []*level
	path := func() string {
		var b strings.Builder
		for _, l := range stack {
			if l.array {
				fmt.Fprintf(&b, "[%d]", l.n)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(l.key)
		}
		p := strings.ToValidUTF8(b.String(), "\uFFFD")
		if p == "" || len(p) > 128 {
			return "body"
		}
		return p
	}
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.array {
			top.n++
		} else {
			top.expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return "body"
		}
		valid := utf8.Valid(raw[start:dec.InputOffset()])
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &level{expectKey: true})
			case '[':
				stack = append(stack, &level{array: true})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		}
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; !top.array && top.expectKey {
				top.key, top.expectKey = tok.(string), false
				if !valid {
					return path()
				}
				continue
			}
		}
		if !valid {
			return path()
		}
		valueDone()
	}
}

// deviceOf is the service's own naming of a request's device (see
// service.Server.DeviceOf), or nil for a service without one.
func deviceOf(svc signerv1.SignerServiceServer) func(rpc string, req any) (auth.Device, bool) {
	if d, ok := svc.(interface {
		DeviceOf(rpc string, req any) (auth.Device, bool)
	}); ok {
		return d.DeviceOf
	}
	return nil
}
