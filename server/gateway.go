package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The REST side of a call. Every REST request gets its request id before the
// gateway sees it, so that an answer the gateway gives on its own (a body it
// cannot decode, a path it cannot route) carries it too. A request the
// gateway refuses before calling the service is still sent through the gRPC
// chain, carrying the refusal, so that it is authenticated, logged, counted
// and audited like any other bad request: there is one place where calls
// are recorded, not two.

// mdGatewayRejection carries, from the gateway to the in-process gRPC
// server, the google.rpc.Status the gateway answers a request it could not
// forward. The in-process server answers it without calling the service.
// The "x-signerd-" prefix keeps it out of reach of REST callers (the gateway
// drops such headers, see auth.IsInternalHeader), and only the in-process
// server honours it.
const mdGatewayRejection = "x-signerd-gateway-rejection-bin"

// restCall is what the HTTP layer knows about one REST request.
type restCall struct {
	requestID  string
	pathParams map[string]string
	// forwarded is set once the gateway hands the request to its gRPC
	// client: errors after that come from the gRPC chain, which has
	// recorded them already.
	forwarded bool
	// refusal, if set, is sent instead of the request (see keepPathParams).
	refusal *status.Status
}

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
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), restCallKey{}, &restCall{requestID: id})))
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

// gatewayUnary and gatewayStream are the gateway connection's client
// interceptors: they mark the call as forwarded, and turn a request the
// gateway built with invalid UTF-8 in a string field (from a path parameter
// such as %FF, which the gateway copies without checking) into a recorded
// INVALID_ARGUMENT naming that field, where gRPC's marshalling would have
// failed with a bare INTERNAL that no interceptor ever saw.
func gatewayUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, req = forward(ctx, req)
	return invoker(ctx, method, req, reply, cc, opts...)
}

func gatewayStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if desc.ClientStreams {
		ctx, _ = forward(ctx, nil)
		return streamer(ctx, desc, cc, method, opts...)
	}
	// A server-streaming request is one message, sent right after the
	// stream opens: open it only then, with the refusal's metadata if the
	// message needs it.
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
	if s.ClientStream != nil {
		return s.ClientStream.SendMsg(m)
	}
	ctx, m := forward(s.ctx, m)
	cs, err := s.streamer(ctx, s.desc, s.cc, s.method, s.opts...)
	if err != nil {
		return err
	}
	s.ClientStream = cs
	return cs.SendMsg(m)
}

func (s *lazyStream) Context() context.Context {
	if s.ClientStream == nil {
		return s.ctx
	}
	return s.ClientStream.Context()
}

// forward marks the REST call as forwarded and returns the context and
// request to send: with the call's refusal, if any, and checked by
// checkUTF8.
func forward(ctx context.Context, req any) (context.Context, any) {
	rc := restCallFrom(ctx)
	if rc != nil {
		rc.forwarded = true
	}
	ctx, req = checkUTF8(ctx, req)
	if rc != nil && rc.refusal != nil {
		ctx = withRejection(ctx, rc.refusal)
	}
	return ctx, req
}

// checkUTF8 returns req unchanged when every string in it is valid UTF-8.
// Otherwise it returns a copy with the bad bytes replaced (so that it can be
// marshalled, and audited as U+FFFD) and a context carrying the refusal.
func checkUTF8(ctx context.Context, req any) (context.Context, any) {
	m, ok := req.(proto.Message)
	if !ok {
		return ctx, req
	}
	fields := invalidUTF8(m.ProtoReflect(), "", false)
	if len(fields) == 0 {
		return withoutRejection(ctx), req
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
	return withRejection(ctx, badRequest(msg, vs...)), m
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

// withRejection sets the refusal the in-process server is to answer.
func withRejection(ctx context.Context, st *status.Status) context.Context {
	b, err := proto.Marshal(st.Proto())
	if err != nil {
		b, _ = proto.Marshal(status.New(st.Code(), "invalid request").Proto())
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(mdGatewayRejection, string(b))
	return metadata.NewOutgoingContext(ctx, md)
}

// withoutRejection makes sure no refusal rides along with a good request.
func withoutRejection(ctx context.Context) context.Context {
	md, ok := metadata.FromOutgoingContext(ctx)
	if !ok || len(md.Get(mdGatewayRejection)) == 0 {
		return ctx
	}
	md = md.Copy()
	md.Delete(mdGatewayRejection)
	return metadata.NewOutgoingContext(ctx, md)
}

// gatewayRejection is the in-process server's interceptor that answers a
// refusal the gateway sent instead of calling the service. It sits after
// authentication, the rate limit and the in-flight cap, so that a bad REST
// request is treated like any other bad request.
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
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(mdGatewayRejection)
	if len(v) == 0 {
		return nil
	}
	var sp spb.Status
	if len(v) != 1 || proto.Unmarshal([]byte(v[0]), &sp) != nil || sp.GetCode() == 0 {
		return status.Error(codes.InvalidArgument, "invalid request")
	}
	return status.ErrorProto(&sp)
}

// replay sends a refusal the gateway made before calling the service
// through the in-process gRPC server, so that it is recorded like any other
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
	// forward (the client interceptor) attaches the refusal.
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
