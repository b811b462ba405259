package aliyun

import (
	"errors"
	"time"
)

// Observer receives what the client's callers cannot see from one answer:
// how long a call took over all its attempts, and how it ended. metrics
// implements it, so the client reports to Prometheus without this package
// or metrics knowing the other. Its methods must be fast and safe for
// concurrent use.
type Observer interface {
	// PreVerified is called once per [Client.PreVerify] call with its
	// outcome (see [Outcome]) and its duration, every attempt and backoff
	// included.
	PreVerified(outcome string, d time.Duration)
	// RegistrationOutcomeUnknown is called once per
	// [Client.RegisterDevice] call that ended with ErrOutcomeUnknown: a
	// device that may hold a secret signerd never learnt.
	RegistrationOutcomeUnknown()
	// BreakerState is called with "closed" when the client first calls
	// endpoint (a platform base URL, one per configured region or product
	// URL), and with the new state ("closed", "half-open" or "open")
	// each time the circuit breaker of endpoint changes state. It is not
	// called when breakers are disabled.
	BreakerState(endpoint, state string)
}

type nopObserver struct{}

func (nopObserver) PreVerified(string, time.Duration) {}
func (nopObserver) RegistrationOutcomeUnknown()       {}
func (nopObserver) BreakerState(string, string)       {}

// outcomes names each error kind for metrics labels. A kind missing here
// is reported as "error".
var outcomes = map[error]string{
	ErrDeviceNotFound:    "device_not_found",
	ErrSignatureMismatch: "signature_mismatch",
	ErrBadParameter:      "bad_parameter",
	ErrAuthTypeMismatch:  "auth_type_mismatch",
	ErrUnavailable:       "unavailable",
	ErrUpstream:          "upstream_error",
	ErrRequestRefused:    "request_refused",
	ErrProductNotFound:   "product_not_found",
	ErrDeviceDisabled:    "device_disabled",
	ErrThrottled:         "throttled",
	ErrUnknownCode:       "unknown_code",
}

// Outcome names how a call ended, as a metrics label: "ok" for nil, the
// kind's snake_case name for an [*Error] (such as "device_not_found"),
// "error" for anything else.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind == nil {
		return "error"
	}
	if o, ok := outcomes[pe.Kind]; ok {
		return o
	}
	return "error"
}
