package service

import (
	"context"
	"errors"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// WithSigners gives the server the platforms' login signers, one per RPC
// (platform.Signer.RPC). An RPC without one answers UNIMPLEMENTED, naming
// the platform settings this server was started without.
func WithSigners(signers ...platform.Signer) Option {
	return func(s *Server) {
		if s.signers == nil {
			s.signers = make(map[string]platform.Signer)
		}
		for _, sg := range signers {
			if _, dup := s.signers[sg.RPC()]; dup {
				panic("service.WithSigners: two signers for " + sg.RPC())
			}
			s.signers[sg.RPC()] = sg
		}
	}
}

// signLogin is every platform sign RPC but Alibaba's: the same steps in the
// same order as SignMqttConnect. The device is named and authorized first,
// before its request is validated or its key looked up, so that a refused
// caller learns nothing; the Signer validates and signs with MACs from the
// key's home; the outcome is reported once for the audit record.
func (s *Server) signLogin(ctx context.Context, rpc string, req proto.Message) (_ *signerv1.SignMqttConnectResponse, err error) {
	sg := s.signers[rpc]
	if sg == nil {
		return nil, status.Errorf(codes.Unimplemented, "%s: not enabled on this server (it was started without the platform's settings)", rpc)
	}
	id, err := sg.Device(req)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	defer func() { audit.Report(ctx, audit.Outcome{Device: id, Err: err}) }()
	if err := s.authz.AuthorizeDevice(ctx, rpc, id); err != nil {
		return nil, deny("permission denied", err)
	}
	now := s.now()
	login, err := sg.Sign(ctx, req, now, s.keys)
	if err != nil {
		if vs := fieldViolations(err); len(vs) > 0 {
			return nil, invalidArgument(vs)
		}
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &signerv1.SignMqttConnectResponse{
		Host:             login.Host,
		Port:             int32(login.Port),
		ClientId:         login.ClientID,
		Username:         login.Username,
		Password:         login.Password,
		Transport:        login.Transport,
		Uri:              login.URI,
		KeepAliveSeconds: int32(login.KeepAliveSeconds),
		CleanSession:     login.CleanSession,
		ProtocolVersion:  login.ProtocolVersion,
		IssuedAt:         timestamppb.New(now),
	}
	if !login.ExpiresAt.IsZero() {
		resp.ExpiresAt = timestamppb.New(login.ExpiresAt)
	}
	return resp, nil
}

// DeviceOf names the device a request of rpc is for, as the service would
// authorize it, without validating it: for the audit record of a call
// refused before it reached the service (unauthenticated, rate-limited,
// shed), which must still name the device it asked for. ok is false for
// a request that names no one device.
func (s *Server) DeviceOf(rpc string, req any) (device.ID, bool) {
	if sg := s.signers[rpc]; sg != nil {
		if m, ok := req.(proto.Message); ok {
			if id, err := sg.Device(m); err == nil {
				return id, true
			}
		}
		return device.ID{}, false
	}
	if dr, ok := req.(interface {
		GetProductKey() string
		GetDeviceName() string
	}); ok {
		return device.ID{ProductKey: dr.GetProductKey(), DeviceName: dr.GetDeviceName()}, true
	}
	return device.ID{}, false
}

// fieldViolations are err's *device.FieldError values (err may join
// several), with each field written as its proto field path ("deviceId"
// → "device_id") as every other INVALID_ARGUMENT names it. nil if err
// holds anything else, which is then not a caller's mistake.
func fieldViolations(err error) []violation {
	var vs []violation
	var walk func(error) bool
	walk = func(e error) bool {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				if !walk(x) {
					return false
				}
			}
			return true
		}
		var fe *device.FieldError
		if !errors.As(e, &fe) {
			return false
		}
		vs = append(vs, violation{field: protoFieldName(fe.Field), reason: fe.Reason})
		return true
	}
	if !walk(err) {
		return nil
	}
	return vs
}

// protoFieldName turns a JSON (lowerCamelCase) field name into the proto
// field's (snake_case).
func protoFieldName(json string) string {
	var b strings.Builder
	for i, r := range json {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SignAzureMqttConnect implements signerv1.SignerServiceServer.
func (s *Server) SignAzureMqttConnect(ctx context.Context, req *signerv1.SignAzureMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	return s.signLogin(ctx, "SignAzureMqttConnect", req)
}

// SignAzureDpsMqttConnect implements signerv1.SignerServiceServer.
func (s *Server) SignAzureDpsMqttConnect(ctx context.Context, req *signerv1.SignAzureDpsMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	return s.signLogin(ctx, "SignAzureDpsMqttConnect", req)
}

// SignTencentMqttConnect implements signerv1.SignerServiceServer.
func (s *Server) SignTencentMqttConnect(ctx context.Context, req *signerv1.SignTencentMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	return s.signLogin(ctx, "SignTencentMqttConnect", req)
}

// SignHuaweiMqttConnect implements signerv1.SignerServiceServer.
func (s *Server) SignHuaweiMqttConnect(ctx context.Context, req *signerv1.SignHuaweiMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	return s.signLogin(ctx, "SignHuaweiMqttConnect", req)
}

// SignOnenetMqttConnect implements signerv1.SignerServiceServer.
func (s *Server) SignOnenetMqttConnect(ctx context.Context, req *signerv1.SignOnenetMqttConnectRequest) (*signerv1.SignMqttConnectResponse, error) {
	return s.signLogin(ctx, "SignOnenetMqttConnect", req)
}
