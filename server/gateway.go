package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fullstorydev/grpchan"
	"github.com/fullstorydev/grpchan/inprocgrpc"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// The REST side of a call. Every REST request gets its request id before the
// gateway sees it, so that an answer the gateway gives on its own (a body it
// cannot decode, a path it cannot route) carries it too. The gateway calls
// the service through an in-process channel (grpchan's inprocgrpc) that
// runs the gRPC listener's interceptor chain on the request message itself:
// no HTTP/2, no protobuf encoding, one implementation of every check. A
// request the gateway refuses before calling the service is still sent
// through that chain, carrying the refusal, so that it is authenticated,
// logged, counted and audited like any other bad request: there is one
// place where calls are recorded, not two.

// restCall is what the HTTP layer knows about one REST request. It reaches
// the in-process chain as a context value, which no caller can set.
type restCall struct {
	requestID string
	// remoteAddr is the HTTP client's address, the call's peer.
	remoteAddr string
	pathParams map[string]string
	// forwarded is set once the gateway hands the request to its gRPC
	// client: errors after that come from the gRPC chain, which has
	// recorded them already.
	forwarded bool
	// refusal, if set, is answered by the chain instead of calling the
	// service (see keepPathParams, checkUTF8, replay). It is set before
	// the call starts, and read by the chain's gatewayRejection link.
	refusal *status.Status
}

// newGatewayChannel is the gateway's channel to the service: the chain
// (unary, stream) applied to the service once (grpchan's interceptors), a
// unary call run by gatewayConn on the calling goroutine, a stream on
// grpchan's inprocgrpc channel entered through gatewayEntryStream; both
// behind the client interceptors that mark calls as forwarded and check
// their strings.
func newGatewayChannel(svc signerv1.SignerServiceServer, unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) grpc.ClientConnInterface {
	handlers := grpchan.HandlerMap{}
	reg := grpchan.WithUnaryInterceptors(
		grpchan.WithStreamInterceptors(handlers, slices.Concat([]grpc.StreamServerInterceptor{gatewayEntryStream}, stream)...),
		unary...)
	signerv1.RegisterSignerServiceServer(reg, svc)
	conn := &gatewayConn{streams: &inprocgrpc.Channel{}, unary: map[string]unaryMethod{}}
	handlers.ForEach(func(desc *grpc.ServiceDesc, srv any) {
		conn.streams.RegisterService(desc, srv)
		for _, m := range desc.Methods {
			conn.unary["/"+desc.ServiceName+"/"+m.MethodName] = unaryMethod{srv: srv, handler: m.Handler}
		}
	})
	return grpchan.InterceptClientConn(conn, gatewayUnary, gatewayStream)
}

// gatewayConn runs a unary REST call's chain and service on the goroutine
// that serves the HTTP request, whose stack has grown to the chain's depth
// already: a fresh goroutine per call (as inprocgrpc's Invoke starts) grew
// its stack on every call, 8-10 % of a REST call's CPU. Streams, which need
// a goroutine of their own, go to inprocgrpc.
type gatewayConn struct {
	streams *inprocgrpc.Channel
	unary   map[string]unaryMethod // by full method name
}

type unaryMethod struct {
	srv     any
	handler grpc.MethodHandler // the chain, then the service
}

func (c *gatewayConn) Invoke(ctx context.Context, method string, req, reply any, opts ...grpc.CallOption) error {
	m, ok := c.unary[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	in, ok1 := req.(proto.Message)
	out, ok2 := reply.(proto.Message)
	rc := restCallFrom(ctx)
	if !ok1 || !ok2 || rc == nil {
		// Every REST request gets its restCall in withRequestID, and the
		// gateway sends proto messages.
		return status.Error(codes.Internal, "internal error")
	}
	// The server side sees the REST request's deadline and cancellation,
	// and its metadata as incoming, but none of its context values
	// (outgoing metadata among them) except the REST call.
	sctx := context.Context(noValues{ctx})
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	st := &unaryTransport{method: method}
	sctx = grpc.NewContextWithServerTransportStream(fromGatewayCall(sctx, rc), st)
	resp, err := m.handler(m.srv, sctx, func(v any) error {
		proto.Merge(v.(proto.Message), in)
		return nil
	}, nil)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = st.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = st.trailer
		}
	}
	if err != nil {
		return err
	}
	r, ok := resp.(proto.Message)
	if !ok || r == nil {
		return status.Error(codes.Internal, "internal error")
	}
	proto.Reset(out)
	proto.Merge(out, r)
	return nil
}

func (c *gatewayConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.streams.NewStream(ctx, desc, method, opts...)
}

// noValues is a context's deadline and cancellation without its values.
type noValues struct{ context.Context }

func (noValues) Value(any) any { return nil }

// unaryTransport is a unary call's grpc.ServerTransportStream: what the
// chain sets as headers and trailers (grpc.SetHeader, grpc.SetTrailer),
// handed to the gateway's call options.
type unaryTransport struct {
	method          string
	header, trailer metadata.MD
}

func (t *unaryTransport) Method() string { return t.method }
func (t *unaryTransport) SetHeader(md metadata.MD) error {
	t.header = metadata.Join(t.header, md)
	return nil
}
func (t *unaryTransport) SendHeader(md metadata.MD) error { return t.SetHeader(md) }
func (t *unaryTransport) SetTrailer(md metadata.MD) error {
	t.trailer = metadata.Join(t.trailer, md)
	return nil
}

// gatewayEntryStream starts the chain of a stream on the in-process
// channel: the server side of the channel sees none of the client
// context's values, so the REST call is carried over, and the call's peer
// is the HTTP client (auth.Transport names it "rest").
func gatewayEntryStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := fromGateway(ss.Context())
	if err != nil {
		return err
	}
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = ctx
	return handler(srv, w)
}

func fromGateway(ctx context.Context) (context.Context, error) {
	rc := restCallFrom(inprocgrpc.ClientContext(ctx))
	if rc == nil {
		// Every REST request gets its restCall in withRequestID.
		return ctx, status.Error(codes.Internal, "internal error")
	}
	return fromGatewayCall(ctx, rc), nil
}

// fromGatewayCall is the server side's context of REST call rc.
func fromGatewayCall(ctx context.Context, rc *restCall) context.Context {
	ctx = context.WithValue(ctx, restCallKey{}, rc)
	return peer.NewContext(ctx, &peer.Peer{Addr: gatewayPeer(rc.remoteAddr)})
}

// gatewayPeer is the address of a REST caller, as the in-process chain sees
// it.
type gatewayPeer string

func (gatewayPeer) Network() string  { return auth.GatewayNetwork }
func (a gatewayPeer) String() string { return string(a) }

type restCallKey struct{}

func restCallFrom(ctx context.Context) *restCall {
	rc, _ := ctx.Value(restCallKey{}).(*restCall)
	return rc
}

// withRequestID gives every REST request its id: the caller's X-Request-Id
// when it is sane (validRequestID), a new one otherwise. The id is set on
// the request, which the gateway forwards as x-request-id (and the gRPC
// requestID interceptor adopts), and on the response at once, so that every
// answer has it, errors included.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if v := r.Header.Values("X-Request-Id"); len(v) == 1 && validRequestID(v[0]) {
			id = v[0]
		} else {
			id = newRequestID()
		}
		r.Header.Set("X-Request-Id", id)
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), restCallKey{}, &restCall{requestID: id, remoteAddr: r.RemoteAddr})))
	})
}

// keepPathParams is gateway middleware that remembers the decoded path
// parameters, so that a refusal replayed through the gRPC chain names the
// device the path named. It also refuses a query parameter that is not
// valid UTF-8: today's routes take none (their body is the whole request),
// but a parameter that cannot be a proto string is the caller's mistake on
// any route, and is answered as such.
func keepPathParams(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		if rc := restCallFrom(r.Context()); rc != nil {
			rc.pathParams = pathParams
			rc.refusal = queryRefusal(r.URL.RawQuery)
		}
		next(w, r, pathParams)
	}
}

// queryRefusal is the INVALID_ARGUMENT for the query parameters that are
// not valid UTF-8 once unescaped, or nil.
func queryRefusal(rawQuery string) *status.Status {
	if rawQuery == "" {
		return nil
	}
	q, _ := url.ParseQuery(rawQuery) // what it cannot parse, it drops
	var vs []*errdetails.BadRequest_FieldViolation
	for k, values := range q {
		ok := utf8.ValidString(k)
		for _, v := range values {
			ok = ok && utf8.ValidString(v)
		}
		if !ok {
			vs = append(vs, &errdetails.BadRequest_FieldViolation{
				Field: strings.ToValidUTF8(k, "\uFFFD"), Description: "query parameter must be valid UTF-8"})
		}
	}
	if len(vs) == 0 {
		return nil
	}
	slices.SortFunc(vs, func(a, b *errdetails.BadRequest_FieldViolation) int { return strings.Compare(a.Field, b.Field) })
	return badRequest("invalid query parameter "+vs[0].Field+": not valid UTF-8", vs...)
}

// gatewayUnary and gatewayStream are the gateway channel's client
// interceptors: they mark the call as forwarded, and turn a request the
// gateway built with invalid UTF-8 in a string field (from a path parameter
// such as %FF, which the gateway copies without checking) into a recorded
// INVALID_ARGUMENT naming that field. A proto string must be valid UTF-8:
// over a gRPC connection marshalling failed with a bare INTERNAL that no
// interceptor saw, and the in-process channel, which does not marshal,
// must not hand the service such a string either.
func gatewayUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(ctx, method, forward(ctx, req), reply, cc, opts...)
}

func gatewayStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if desc.ClientStreams {
		forward(ctx, nil)
		return streamer(ctx, desc, cc, method, opts...)
	}
	// A server-streaming request is one message, sent right after the
	// stream opens: open it only then, with the refusal set if the message
	// needs it (the chain reads the refusal as the stream opens).
	return &lazyStream{ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: opts}, nil
}

// lazyStream opens its stream at the first SendMsg.
type lazyStream struct {
	grpc.ClientStream // nil until SendMsg
	ctx               context.Context
	desc              *grpc.StreamDesc
	cc                *grpc.ClientConn
	method            string
	streamer          grpc.Streamer
	opts              []grpc.CallOption
}

func (s *lazyStream) SendMsg(m any) error {
	if s.ClientStream == nil {
		m = forward(s.ctx, m)
		cs, err := s.streamer(s.ctx, s.desc, s.cc, s.method, s.opts...)
		if err != nil {
			return err
		}
		s.ClientStream = cs
	}
	// A call the server has ended already (a refusal answers at once)
	// gives io.EOF here, and its status at RecvMsg. grpc-go's client hides
	// that io.EOF from a call that sends one message, as the generated
	// client (and so the gateway) expects; the in-process channel does
	// not, so it is hidden here.
	if err := s.ClientStream.SendMsg(m); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (s *lazyStream) Context() context.Context {
	if s.ClientStream == nil {
		return s.ctx
	}
	return s.ClientStream.Context()
}

// forward marks the REST call as forwarded and returns the request to
// send, checked by checkUTF8; a refusal made earlier (a query parameter, a
// replayed refusal) stays the one answered.
func forward(ctx context.Context, req any) any {
	st, req := checkUTF8(req)
	if rc := restCallFrom(ctx); rc != nil {
		rc.forwarded = true
		if rc.refusal == nil {
			rc.refusal = st
		}
	}
	return req
}

// checkUTF8 returns req unchanged when every string in it is valid UTF-8.
// Otherwise it returns the refusal naming the fields and a copy with the
// bad bytes replaced (so that it is audited as U+FFFD).
func checkUTF8(req any) (*status.Status, any) {
	m, ok := req.(proto.Message)
	if !ok {
		return nil, req
	}
	fields := invalidUTF8(m.ProtoReflect(), "", false)
	if len(fields) == 0 {
		return nil, req
	}
	m = proto.Clone(m)
	invalidUTF8(m.ProtoReflect(), "", true)
	vs := make([]*errdetails.BadRequest_FieldViolation, len(fields))
	for i, f := range fields {
		vs[i] = &errdetails.BadRequest_FieldViolation{Field: f, Description: "must be valid UTF-8"}
	}
	msg := "invalid " + fields[0] + ": not valid UTF-8"
	if len(fields) > 1 {
		msg += " (and more: see details)"
	}
	return badRequest(msg, vs...), m
}

// invalidUTF8 names, by proto field path (device_name,
// requests[2].client_id), every string in m that is not valid UTF-8, and
// with repair replaces its bad bytes by U+FFFD. Proto field names are the
// REST path parameters' names too.
func invalidUTF8(m protoreflect.Message, prefix string, repair bool) []string {
	var bad []string
	fix := func(s string) protoreflect.Value { return protoreflect.ValueOfString(strings.ToValidUTF8(s, "\uFFFD")) }
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				elem := fmt.Sprintf("%s[%d]", name, i)
				switch fd.Kind() {
				case protoreflect.StringKind:
					if s := l.Get(i).String(); !utf8.ValidString(s) {
						bad = append(bad, elem)
						if repair {
							l.Set(i, fix(s))
						}
					}
				case protoreflect.MessageKind, protoreflect.GroupKind:
					bad = append(bad, invalidUTF8(l.Get(i).Message(), elem+".", repair)...)
				}
			}
		case fd.IsMap():
			// No request has a map today; one with a bad string is named
			// as a whole and, to repair it, emptied.
			bad0 := len(bad)
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ks := k.String()
				ok := utf8.ValidString(ks)
				if fd.MapValue().Kind() == protoreflect.StringKind {
					ok = ok && utf8.ValidString(mv.String())
				}
				if !ok {
					bad = append(bad, name)
					return false
				}
				return true
			})
			if repair && len(bad) > bad0 {
				m.Clear(fd)
			}
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				bad = append(bad, name)
				if repair {
					m.Set(fd, fix(s))
				}
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			bad = append(bad, invalidUTF8(v.Message(), name+".", repair)...)
		}
		return true
	})
	return bad
}

func badRequest(msg string, vs ...*errdetails.BadRequest_FieldViolation) *status.Status {
	st := status.New(codes.InvalidArgument, msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: vs}); err == nil {
		return d
	}
	return st
}

// gatewayRejection is the chain's link that answers a refusal the gateway
// made instead of calling the service. It sits after authentication, the
// rate limit and the in-flight cap, so that a bad REST request is treated
// like any other bad request. Only a REST call (gatewayEntry) can carry one.
func gatewayRejection(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := rejectionFrom(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func gatewayRejectionStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := rejectionFrom(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

func rejectionFrom(ctx context.Context) error {
	if rc := restCallFrom(ctx); rc != nil && rc.refusal != nil {
		return rc.refusal.Err()
	}
	return nil
}

// replay sends a refusal the gateway made before calling the service
// through the in-process chain, so that it is recorded like any other
// call; it returns the server's answer (the refusal, unless the caller was
// refused earlier: unauthenticated or rate limited) and its metadata. The
// request carries the path's parameters, so that the audit record names the
// device. ok is false when the call cannot be replayed (the gateway refused
// it before it knew the method).
func (s *Server) replay(ctx context.Context, rc *restCall, st *status.Status) (md runtime.ServerMetadata, ok bool, err error) {
	method, ok := runtime.RPCMethod(ctx)
	if !ok {
		return md, false, nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", ".")))
	if err != nil {
		return md, false, nil
	}
	md2, isMethod := d.(protoreflect.MethodDescriptor)
	if !isMethod {
		return md, false, nil
	}
	req := newMessage(md2.Input()).ProtoReflect()
	for k, v := range rc.pathParams {
		if fd := req.Descriptor().Fields().ByName(protoreflect.Name(k)); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			req.Set(fd, protoreflect.ValueOfString(strings.ToValidUTF8(v, "\uFFFD")))
		}
	}
	// The chain answers the refusal in place of the service.
	rc.refusal = st
	opts := []grpc.CallOption{grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD)}
	if md2.IsStreamingServer() || md2.IsStreamingClient() {
		cs, err := s.gwConn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, opts...)
		if err == nil {
			err = cs.SendMsg(req.Interface())
		}
		if err == nil {
			err = cs.CloseSend()
		}
		if err == nil {
			err = cs.RecvMsg(newMessage(md2.Output()))
		}
		if err == nil {
			// A server that answers a refusal with a message: still a
			// refusal.
			err = st.Err()
		}
		return md, true, err
	}
	if err := s.gwConn.Invoke(ctx, method, req.Interface(), newMessage(md2.Output()), opts...); err != nil {
		return md, true, err
	}
	return md, true, st.Err()
}

// newMessage returns an empty message of type d, a dynamic one if d's Go
// type is not linked in.
func newMessage(d protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName()); err == nil {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(d)
}
