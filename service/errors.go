package service

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/secrets"
)

// violation is one bad request field, named by its proto field path.
type violation struct {
	field, reason string
}

// invalidArgument builds INVALID_ARGUMENT with a google.rpc.BadRequest that
// names every bad field, so both gRPC and REST callers can point at it.
func invalidArgument(vs []violation) error {
	msg := "invalid " + vs[0].field + ": " + vs[0].reason
	if len(vs) > 1 {
		msg += " (and more: see details)"
	}
	br := &errdetails.BadRequest{}
	for _, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.field, Description: v.reason,
		})
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(br)
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// platformMessage is the platform's own (cleaned, secret-free) message.
func platformMessage(err error) string {
	var pe *platform.Error
	if errors.As(err, &pe) && pe.Message != "" {
		return pe.Message
	}
	return "no details"
}

// toStatus maps an internal error to the gRPC status a caller sees. It is the
// one place where that mapping lives. Messages are safe to show to any
// authenticated caller: store errors never carry secret values, and anything
// unexpected is logged here and answered with a bare INTERNAL.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, platform.ErrDeviceNotFound):
		return status.Error(codes.NotFound, "the platform does not know this device")
	case errors.Is(err, platform.ErrSignatureMismatch):
		log.ErrorContext(ctx, "platform rejected the signature: the stored secret does not match the platform's", "error", err)
		return status.Error(codes.FailedPrecondition, "the stored secret does not match the platform")
	case errors.Is(err, platform.ErrAuthTypeMismatch):
		return status.Error(codes.FailedPrecondition, "the platform does not allow this device to authenticate this way: "+platformMessage(err))
	case errors.Is(err, platform.ErrAlreadyActivated):
		return status.Error(codes.FailedPrecondition, "the platform refuses to register a device that has already connected: "+
			"import its secret into Vault, or reset the device on the platform (ResetThing) and register it again")
	case errors.Is(err, secrets.ErrExists):
		// The store's message names the device and storage path, never the value.
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, platform.ErrBadParameter):
		return status.Error(codes.InvalidArgument, "the platform rejected a parameter: "+platformMessage(err))
	case errors.Is(err, platform.ErrUnavailable), errors.Is(err, platform.ErrUpstream):
		log.WarnContext(ctx, "platform unavailable", "error", err)
		return status.Error(codes.Unavailable, "the platform's auth endpoint is unavailable; retry later")
	case errors.Is(err, secrets.ErrNotFound):
		return status.Error(codes.NotFound, "device not found")
	case errors.Is(err, secrets.ErrUnusable):
		// The store's message names the device and storage path, never the value.
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, secrets.ErrUnavailable):
		log.WarnContext(ctx, "secret store unavailable", "error", err)
		return status.Error(codes.Unavailable, "secret store unavailable; retry later")
	case errors.Is(err, secrets.ErrPermission):
		log.ErrorContext(ctx, "secret store denied signerd's own credentials: check its Vault policy and auth", "error", err)
		return status.Error(codes.Unavailable, "secret store unavailable; retry later")
	default:
		log.ErrorContext(ctx, "internal error", "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}
