package aliyun

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kinds of errors. Every error [Client.PreVerify] and
// [Client.RegisterDevice] return is an [*Error] whose Kind is one of these;
// test with errors.Is. The platform codes behind each kind are in the one
// table of codes (codes.go, [Codes]).
var (
	// ErrDeviceNotFound: the platform does not know the device (codes
	// 5001, 6100).
	ErrDeviceNotFound = errors.New("device not found")
	// ErrProductNotFound: the platform does not know the product (codes
	// 5005, 6250).
	ErrProductNotFound = errors.New("product not found")
	// ErrSignatureMismatch: the platform rejected the sign (code 401); the
	// stored secret does not match the platform's.
	ErrSignatureMismatch = errors.New("signature mismatch")
	// ErrRequestRefused: the platform refused to process the request
	// (code 400), as it does for a sign it rejects.
	ErrRequestRefused = errors.New("request refused")
	// ErrBadParameter: the platform rejected a parameter of the form (code
	// 460), or the form lacks a required field and was not sent.
	ErrBadParameter = errors.New("bad parameter")
	// ErrAuthTypeMismatch: the device does not use this authentication
	// type (code 6200).
	ErrAuthTypeMismatch = errors.New("auth type mismatch")
	// ErrDeviceDisabled: the device is disabled on the platform (code
	// 6204).
	ErrDeviceDisabled = errors.New("device disabled")
	// ErrThrottled: the platform throttles requests (HTTP 429, codes 429
	// and 40000); retried with backoff, then returned.
	ErrThrottled = errors.New("throttled")
	// ErrUnknownCode: the platform answered with a code signerd does not
	// know; Code and Message hold what it said. Never retried.
	ErrUnknownCode = errors.New("unknown platform code")
	// ErrUpstream: the platform answered, but with an HTTP 5xx, code 500
	// or 6760, an unexpected HTTP status, or a body that is not JSON, is
	// cut short, exceeds the size cap or lacks a field.
	ErrUpstream = errors.New("upstream error")
	// ErrUnavailable: the platform could not be reached or did not answer
	// in time, or its circuit breaker is open.
	ErrUnavailable = errors.New("platform unavailable")
	// ErrOutcomeUnknown: a registration may have reached the platform,
	// which may have issued a DeviceSecret, but its answer was lost (a
	// timeout or broken connection after the request was sent, an HTTP
	// 5xx, code 500 or 6760, an answer that cannot be read). It is never
	// retried: the secret of the first attempt would be lost, and a
	// device the platform counts as activated cannot register again
	// until it is reset on the platform.
	ErrOutcomeUnknown = errors.New("registration outcome unknown")
	// ErrInvalidEndpoint: the region or configured base URL does not give a
	// valid auth endpoint. Nothing was sent.
	ErrInvalidEndpoint = errors.New("invalid auth endpoint")
)

// ErrCircuitOpen accompanies ErrUnavailable when the call was refused
// without contacting the platform because its circuit breaker is open (or
// half-open and already probing).
var ErrCircuitOpen = errors.New("circuit breaker open")

// Platform codes with a meaning of their own; see codeTable for what each
// means and how it is handled.
const (
	CodeSuccess           = 200
	CodeRequestRefused    = 400
	CodeSignatureMismatch = 401
	CodeTooManyRequests   = 429
	CodeBadParameter      = 460
	CodeInternal          = 500
	CodeDeviceNotFound    = 5001
	CodeProductNotFound   = 5005
	CodeDeviceNotExist    = 6100
	CodeAuthTypeMismatch  = 6200
	CodeDeviceDisabled    = 6204
	CodeProductNotExist   = 6250
	CodeAlreadyActivated  = 6289
	CodeSystemException   = 6760
	CodeRequestTooMany    = 40000
)

// Error is a failed call of the auth endpoint. It never contains the form's sign,
// the token or any secret.
type Error struct {
	// Kind is one of the Err* kinds of this package.
	Kind error
	// Code is the platform's code, or 0 if the answer had none.
	Code int
	// Message is the platform's message, cleaned of control characters and
	// of the sign and token, and shortened; "" if there was none. It is
	// safe to relay to callers.
	Message string
	// HTTPStatus is the HTTP status of the last answer, or 0 if there was
	// none.
	HTTPStatus int
	// RetryAfter is the delay an HTTP 429 or 503 answer asked for, or 0.
	RetryAfter time.Duration
	// Attempts is the number of requests sent (0 if none was).
	Attempts int

	// op names the operation ("pre-verify", "register") in Error; ""
	// means pre-verify.
	op string
	// detail describes a failure the platform's answer does not, such as
	// a transport error; it is for logs and never contains a secret.
	detail string
	// extra are further errors errors.Is sees: ErrCircuitOpen and the
	// caller's context error.
	extra []error
}

// Error returns a one-line description, such as
// "platform pre-verify: device not found (code 5001, HTTP 200): device not found".
// It contains the platform's message and, for failures without one,
// details such as a transport error, but no secret.
func (e *Error) Error() string {
	var b strings.Builder
	op := e.op
	if op == "" {
		op = "pre-verify"
	}
	b.WriteString("platform " + op + ": ")
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("error")
	}
	var parts []string
	if e.Code != 0 {
		parts = append(parts, "code "+strconv.Itoa(e.Code))
	}
	if e.HTTPStatus != 0 {
		parts = append(parts, "HTTP "+strconv.Itoa(e.HTTPStatus))
	}
	if e.RetryAfter > 0 {
		parts = append(parts, "retry after "+e.RetryAfter.String())
	}
	if e.Attempts > 1 {
		parts = append(parts, strconv.Itoa(e.Attempts)+" attempts")
	}
	if len(parts) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(parts, ", "))
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Message))
	}
	if e.detail != "" {
		b.WriteString(": ")
		b.WriteString(e.detail)
	}
	return b.String()
}

// Unwrap returns the kind and, where they apply, ErrCircuitOpen and the
// caller's context error (context.Canceled or context.DeadlineExceeded).
func (e *Error) Unwrap() []error {
	return append([]error{e.Kind}, e.extra...)
}

// maxMessageRunes bounds a relayed platform message.
const maxMessageRunes = 256

// redacted replaces a secret found in a message.
const redacted = "[redacted]"

// cleanMessage prepares a platform message for relaying: it removes
// invalid UTF-8 and non-printable characters, replaces every occurrence of
// each of secrets (ASCII case-insensitively; empty ones are ignored) with
// "[redacted]", and shortens the result to maxMessageRunes runes.
func cleanMessage(msg string, secrets ...string) string {
	var b strings.Builder
	for _, r := range msg {
		switch {
		case r == utf8.RuneError:
		case r == ' ' || (unicode.IsPrint(r) && !unicode.IsSpace(r)):
			b.WriteRune(r)
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		}
	}
	s := b.String()
	for _, secret := range secrets {
		if secret != "" {
			s = replaceFold(s, secret, redacted)
		}
	}
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxMessageRunes {
		n := 0
		for i := range s {
			if n == maxMessageRunes {
				s = s[:i] + "…"
				break
			}
			n++
		}
	}
	return s
}

// replaceFold replaces each occurrence of old in s, compared ASCII
// case-insensitively, with repl.
func replaceFold(s, old, repl string) string {
	lower, lowerOld := asciiLower(s), asciiLower(old)
	if !strings.Contains(lower, lowerOld) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, lowerOld)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}

// asciiLower lower-cases the ASCII letters of s, keeping its length.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
