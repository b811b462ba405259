package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// Server implements signerv1.SignerServiceServer.
type Server struct {
	signerv1.UnimplementedSignerServiceServer

	keys      Keys
	products  *signing.Products
	now       func() time.Time
	log       *slog.Logger
	tokens    *tokenCache
	authz     auth.Authorizer
	registrar *registrar // RegisterDevice; nil when not enabled
	signers   map[string]platform.Signer
}

// Option configures a Server.
type Option func(*Server)

// WithProducts sets the per-product settings table.
func WithProducts(p *signing.Products) Option { return func(s *Server) { s.products = p } }

// WithClock sets the clock used for default timestamps and issued_at.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger sets the logger for server-side faults.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithAuthorizer sets the Authorizer asked about every device a call
// touches, before its secret is looked up. Required: New panics without
// one, so that no server is ever wired without authorization (tests that
// want none pass auth.AllowAll and say so).
func WithAuthorizer(a auth.Authorizer) Option { return func(s *Server) { s.authz = a } }

// New returns a Server that looks secrets up in store, unless WithKeys
// says where they live. WithAuthorizer is required.
func New(store secrets.Store, opts ...Option) *Server {
	s := &Server{
		products: &signing.Products{},
		now:      time.Now,
		log:      slog.Default(),
	}
	for _, o := range opts {
		o(s)
	}
	if s.authz == nil {
		panic("service.New: WithAuthorizer is required")
	}
	if s.keys == nil {
		s.keys = secrets.NewRouter(secrets.NewLocalMACer(store), nil, s.products.InTransit)
	}
	return s
}

// reportDevice reports the outcome of a call for its one device.
func reportDevice(ctx context.Context, productKey, deviceName string, err error) {
	audit.Report(ctx, audit.Outcome{Device: auth.Device{ProductKey: productKey, DeviceName: deviceName}, Err: err})
}

// authorizeDevice asks the Authorizer about the one device a unary call
// names; it runs first, before validation and lookup, so that a refused
// caller learns nothing about the device or its request.
func (s *Server) authorizeDevice(ctx context.Context, rpc, productKey, deviceName string) error {
	if err := s.authz.AuthorizeDevice(ctx, rpc, auth.Device{ProductKey: productKey, DeviceName: deviceName}); err != nil {
		return deny("permission denied", err)
	}
	return nil
}

// SignMqttConnect implements signerv1.SignerServiceServer.
func (s *Server) SignMqttConnect(ctx context.Context, req *signerv1.SignMqttConnectRequest) (_ *signerv1.SignMqttConnectResponse, err error) {
	defer func() { reportDevice(ctx, req.GetProductKey(), req.GetDeviceName(), err) }()
	if err := s.authorizeDevice(ctx, "SignMqttConnect", req.GetProductKey(), req.GetDeviceName()); err != nil {
		return nil, err
	}
	return s.signConnect(ctx, req)
}

// signConnect signs one authorized device's connect request.
func (s *Server) signConnect(ctx context.Context, req *signerv1.SignMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	now := s.now()
	sreq, transport, err := s.connectRequest(req, now)
	if err != nil {
		return nil, err
	}
	product := s.products.Lookup(sreq.ProductKey)
	endpoint, err := product.Endpoint(sreq.ProductKey, sreq.Transport)
	if err != nil {
		// The settings were validated at start-up; failing here is a bug.
		return nil, toStatus(ctx, s.log, err)
	}

	id := secrets.DeviceID{ProductKey: sreq.ProductKey, DeviceName: sreq.DeviceName}
	params, err := signing.SignConnect(sreq, s.mac(ctx, id))
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &signerv1.SignMqttConnectResponse{
		Host:             endpoint.Host,
		Port:             int32(endpoint.Port),
		ClientId:         params.ClientID,
		Username:         params.Username,
		Password:         params.Password,
		Transport:        transport,
		Uri:              endpoint.URI,
		KeepAliveSeconds: int32(product.KeepAliveSeconds),
		CleanSession:     *product.CleanSession,
		ProtocolVersion:  "3.1.1",
		IssuedAt:         timestamppb.New(now),
	}, nil
}

// connectRequest validates req, applies the defaults and returns the request
// for package signing, with the transport actually used.
func (s *Server) connectRequest(req *signerv1.SignMqttConnectRequest, now time.Time) (signing.ConnectRequest, signerv1.Transport, error) {
	var vs violations
	clientID, _ := vs.device("", req.GetProductKey(), req.GetDeviceName(), req.GetClientId())

	method, err := signMethod(req.GetSignMethod())
	vs.add("sign_method", err)
	transport := req.GetTransport()
	if transport == signerv1.Transport_TRANSPORT_UNSPECIFIED {
		transport = signerv1.Transport_TRANSPORT_TLS
	}
	st, err := signingTransport(transport)
	vs.add("transport", err)

	var ts string
	switch {
	case req.TimestampMs != nil && req.GetOmitTimestamp():
		vs = append(vs, violation{field: "timestamp_ms", reason: "cannot be set together with omit_timestamp"})
	case req.TimestampMs != nil:
		if req.GetTimestampMs() < 0 {
			vs = append(vs, violation{field: "timestamp_ms", reason: "must not be negative"})
		}
		ts = strconv.FormatInt(req.GetTimestampMs(), 10)
	case !req.GetOmitTimestamp():
		ts = strconv.FormatInt(now.UnixMilli(), 10)
	}
	if len(vs) > 0 {
		return signing.ConnectRequest{}, 0, invalidArgument(vs)
	}
	return signing.ConnectRequest{
		ProductKey: req.GetProductKey(),
		DeviceName: req.GetDeviceName(),
		ClientID:   clientID,
		Method:     method,
		Transport:  st,
		Timestamp:  ts,
	}, transport, nil
}

// reason is the part of a validation error a caller can act on; the field
// name is carried separately.
func reason(err error) string {
	var fe *device.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

func signMethod(m signerv1.SignMethod) (signing.Method, error) {
	switch m {
	case signerv1.SignMethod_SIGN_METHOD_UNSPECIFIED, signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256:
		return signing.MethodHMACSHA256, nil
	case signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1:
		return signing.MethodHMACSHA1, nil
	case signerv1.SignMethod_SIGN_METHOD_HMAC_MD5:
		return signing.MethodHMACMD5, nil
	}
	return 0, fmt.Errorf("unknown sign method %d", m)
}

func signingTransport(t signerv1.Transport) (signing.Transport, error) {
	switch t {
	case signerv1.Transport_TRANSPORT_TLS:
		return signing.TransportTLS, nil
	case signerv1.Transport_TRANSPORT_TCP:
		return signing.TransportTCP, nil
	case signerv1.Transport_TRANSPORT_WEBSOCKET_TLS:
		return signing.TransportWebSocketTLS, nil
	}
	return 0, fmt.Errorf("unknown transport %d", t)
}
