package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	platform "github.com/signerd/signerd/platform/aliyun"
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

// errorDomain is the domain of the google.rpc.ErrorInfo reasons signerd
// gives.
const errorDomain = "signerd"

// Reasons (google.rpc.ErrorInfo) of the answers to platform failures, one
// per kind of platform error, so that callers can tell them apart without
// parsing messages.
const (
	ReasonDeviceNotFound        = "PLATFORM_DEVICE_NOT_FOUND"
	ReasonProductNotFound       = "PLATFORM_PRODUCT_NOT_FOUND"
	ReasonSignatureMismatch     = "PLATFORM_SIGNATURE_MISMATCH"
	ReasonRequestRefused        = "PLATFORM_REQUEST_REFUSED"
	ReasonAuthTypeMismatch      = "PLATFORM_AUTH_TYPE_MISMATCH"
	ReasonDeviceDisabled        = "PLATFORM_DEVICE_DISABLED"
	ReasonAlreadyActivated      = "DEVICE_ALREADY_ACTIVATED"
	ReasonBadParameter          = "PLATFORM_BAD_PARAMETER"
	ReasonCodeUnknown           = "PLATFORM_CODE_UNKNOWN"
	ReasonThrottled             = "PLATFORM_THROTTLED"
	ReasonUnavailable           = "PLATFORM_UNAVAILABLE"
	ReasonOutcomeUnknown        = "REGISTRATION_OUTCOME_UNKNOWN"
	ReasonInvalidEndpoint       = "PLATFORM_ENDPOINT_INVALID"
	platformMetadataCode        = "platform_code"
	platformMetadataMessage     = "platform_message"
	platformMetadataHTTPStatus  = "http_status"
	platformMetadataRetryAfterS = "retry_after_seconds"
)

// platformMessage is the platform's own (cleaned, secret-free) message.
func platformMessage(err error) string {
	var pe *platform.Error
	if errors.As(err, &pe) && pe.Message != "" {
		return pe.Message
	}
	return "no details"
}

// platformSaid describes what the platform answered, e.g.
// ` (code 400: "request error")`, or "" if it answered nothing.
func platformSaid(pe *platform.Error) string {
	switch {
	case pe.Code != 0 && pe.Message != "":
		return fmt.Sprintf(" (code %d: %q)", pe.Code, pe.Message)
	case pe.Code != 0:
		return fmt.Sprintf(" (code %d)", pe.Code)
	case pe.HTTPStatus != 0:
		return fmt.Sprintf(" (HTTP %d)", pe.HTTPStatus)
	}
	return ""
}

// platformStatus is the status c with message msg and a
// google.rpc.ErrorInfo holding reason and what the platform said (its
// code and message, which never hold a secret).
func platformStatus(c codes.Code, reason, msg string, pe *platform.Error) error {
	md := map[string]string{}
	if pe.Code != 0 {
		md[platformMetadataCode] = strconv.Itoa(pe.Code)
	}
	if pe.Message != "" {
		md[platformMetadataMessage] = pe.Message
	}
	if pe.HTTPStatus != 0 {
		md[platformMetadataHTTPStatus] = strconv.Itoa(pe.HTTPStatus)
	}
	if pe.RetryAfter > 0 {
		md[platformMetadataRetryAfterS] = strconv.Itoa(int(pe.RetryAfter.Round(time.Second) / time.Second))
	}
	st, err := status.New(c, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: md})
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

// platformToStatus maps a failed call of the platform's auth endpoint. The
// platform's codes are sorted into kinds by one table (platform.Codes);
// this maps each kind to what the caller sees. A refusal that a retry
// cannot fix is never UNAVAILABLE.
func platformToStatus(ctx context.Context, log *slog.Logger, pe *platform.Error) error {
	said := platformSaid(pe)
	switch {
	case errors.Is(pe, platform.ErrDeviceNotFound):
		return platformStatus(codes.NotFound, ReasonDeviceNotFound, "the platform does not know this device"+said, pe)
	case errors.Is(pe, platform.ErrProductNotFound):
		return platformStatus(codes.NotFound, ReasonProductNotFound, "the platform does not know this product"+said+": check the ProductKey", pe)
	case errors.Is(pe, platform.ErrSignatureMismatch):
		log.ErrorContext(ctx, "platform rejected the signature: the stored secret does not match the platform's", "error", pe)
		return platformStatus(codes.FailedPrecondition, ReasonSignatureMismatch, "the stored secret does not match the platform"+said, pe)
	case errors.Is(pe, platform.ErrRequestRefused):
		log.ErrorContext(ctx, "platform refused the request (code 400, as for a sign it rejects): check the stored secret", "error", pe)
		return platformStatus(codes.FailedPrecondition, ReasonRequestRefused,
			"the platform refused the request"+said+"; it answers so for a sign it rejects: check that the stored secret matches the platform's", pe)
	case errors.Is(pe, platform.ErrAuthTypeMismatch):
		return platformStatus(codes.FailedPrecondition, ReasonAuthTypeMismatch, "the platform does not allow this device to authenticate this way: "+platformMessage(pe), pe)
	case errors.Is(pe, platform.ErrDeviceDisabled):
		return platformStatus(codes.FailedPrecondition, ReasonDeviceDisabled, "the device is disabled on the platform"+said+": enable it there", pe)
	case errors.Is(pe, platform.ErrAlreadyActivated):
		return platformStatus(codes.FailedPrecondition, ReasonAlreadyActivated, "the platform refuses to register a device that has already connected"+said+": "+
			"import its secret into Vault, or reset the device on the platform (ResetThing) and register it again", pe)
	case errors.Is(pe, platform.ErrBadParameter):
		return platformStatus(codes.InvalidArgument, ReasonBadParameter, "the platform rejected a parameter: "+platformMessage(pe), pe)
	case errors.Is(pe, platform.ErrUnknownCode):
		log.ErrorContext(ctx, "platform answered a code signerd does not know; not retried", "platform_code", pe.Code, "platform_message", pe.Message, "error", pe)
		return platformStatus(codes.Unknown, ReasonCodeUnknown, fmt.Sprintf("the platform answered code %d, which signerd does not know: %q", pe.Code, pe.Message), pe)
	case errors.Is(pe, platform.ErrOutcomeUnknown):
		log.ErrorContext(ctx, "the platform may have registered the device, but its answer was lost", "error", pe)
		return platformStatus(codes.Aborted, ReasonOutcomeUnknown, ReasonOutcomeUnknown+": the platform may have registered the device, but its answer was lost"+said+
			"; the device may need a reset on the platform (ResetThing) before it can register again", pe)
	case errors.Is(pe, platform.ErrThrottled):
		log.WarnContext(ctx, "platform throttles requests", "error", pe)
		return platformStatus(codes.Unavailable, ReasonThrottled, "the platform's auth endpoint is throttling requests"+said+"; retry later", pe)
	case errors.Is(pe, platform.ErrUnavailable), errors.Is(pe, platform.ErrUpstream):
		log.WarnContext(ctx, "platform unavailable", "error", pe)
		return platformStatus(codes.Unavailable, ReasonUnavailable, "the platform's auth endpoint is unavailable"+said+"; retry later", pe)
	}
	log.ErrorContext(ctx, "platform call failed", "error", pe)
	return platformStatus(codes.Internal, ReasonInvalidEndpoint, "internal error", pe)
}

// toStatus maps an internal error to the gRPC status a caller sees. It is the
// one place where that mapping lives. Messages are safe to show to any
// authenticated caller: store errors never carry secret values, and anything
// unexpected is logged here and answered with a bare INTERNAL.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	var pe *platform.Error
	if errors.As(err, &pe) {
		return platformToStatus(ctx, log, pe)
	}
	var algErr *secrets.AlgorithmError
	var noHome *secrets.NoHomeError
	switch {
	case errors.As(err, &algErr):
		return status.Error(codes.FailedPrecondition, algorithmMessage(algErr))
	case errors.As(err, &noHome):
		return status.Error(codes.FailedPrecondition, noHome.Error())
	case errors.Is(err, secrets.ErrExists):
		// The store's message names the device and storage path, never the value.
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, secrets.ErrNotFound):
		return status.Error(codes.NotFound, "device not found")
	case errors.Is(err, secrets.ErrUnusable):
		// The store's message names the device and storage path, never the value.
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, secrets.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// A deadline that is not the caller's is a dependency's own timeout
		// (-vault-timeout): the store is unavailable, as the README
		// promises, and the caller may retry; DEADLINE_EXCEEDED would
		// blame a deadline the caller never set.
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

// denied is the answer to a call the Authorizer refused:
// PERMISSION_DENIED, carrying the Authorizer's *auth.Denial values for the
// audit record (auth.Denials), which the caller never sees.
type denied struct {
	st      *status.Status
	denials []error
}

func (e *denied) Error() string              { return e.st.Err().Error() }
func (e *denied) GRPCStatus() *status.Status { return e.st }
func (e *denied) Unwrap() []error            { return e.denials }

// deny answers a refusal: msg for the caller, the denials for the audit.
func deny(msg string, denials ...error) error {
	return &denied{st: status.New(codes.PermissionDenied, msg), denials: denials}
}
