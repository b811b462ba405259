// Package aliyun is a small client for the Alibaba Cloud IoT Platform's
// device auth endpoint: the HTTPS pre-verification ("connection after HTTPS
// verification") that trades a signed form for an iotId/iotToken pair and
// the MQTT endpoint, and dynamic registration ("one secret per product")
// that trades a form signed with the ProductSecret for a new DeviceSecret
// ([Client.RegisterDevice]; see register.go for its codes).
//
// The forms themselves are built and signed elsewhere
// (signing.SignPreVerify, signing.SignRegister); this package only posts
// them and interprets the answers. It never sees a DeviceSecret or
// ProductSecret it would have to sign with; it receives the DeviceSecret a
// registration issues and hands it on in a [Registration], which redacts
// it when formatted, logged or encoded.
//
// Both operations share the behaviour below: the table of platform codes,
// retries (except that a registration is never repeated once it may have
// reached the platform), breakers (one per base URL, shared by both),
// timeouts and error kinds.
//
// # Behaviour
//
// [Client.PreVerify] posts the form to {base}/auth/devicename, where base is
// https://iot-auth.{regionId}.aliyuncs.com unless configured per region or
// per product. It verifies TLS, never follows redirects (which would resend
// the sign to another place), bounds every attempt with a timeout inside the
// caller's deadline and reads at most [Config.MaxBodyBytes] of an answer.
//
// Platform codes are interpreted by one table (codes.go, [Codes]): each
// documented code has its meaning, its kind and its class. Refusals that a
// retry cannot fix (400, 401, 460, 5001, 5005, 6100, 6200, 6204, 6250,
// 6289) and codes signerd does not know are never retried. Throttling
// (HTTP 429, codes 429 and 40000) is retried with backoff. Server errors
// (HTTP 5xx, codes 500 and 6760), connection errors, attempt timeouts and
// answers cut short are retried where the operation can be repeated: a
// pre-verification only issues another token. A registration is retried
// only when its attempt certainly never reached the platform (a DNS, dial
// or TLS handshake failure, before the transport handed it a connection,
// as net/http/httptrace tells) or was throttled; any other failure ends it
// with ErrOutcomeUnknown, because the platform may have issued a secret
// and may count the device as activated. Malformed answers (not JSON,
// over the size cap, missing fields) are not retried. A Retry-After on a
// 429 or 503 is honoured up to [Config.RetryAfterMax]; asking for longer,
// or for more than the caller's deadline leaves, ends the call at once
// with the answer's error (with [Error.RetryAfter] set) instead of
// sleeping. No retry starts when the backoff would outlast the caller's
// deadline.
//
// Each base URL has a circuit breaker (github.com/sony/gobreaker/v2). It
// counts failures of the endpoint, not of a device: connection errors,
// timeouts, HTTP 5xx and answers that are not the platform's JSON. Once
// enough consecutive attempts failed, it opens and calls fail at once with
// [ErrUnavailable] (and [ErrCircuitOpen]) instead of tying up goroutines
// on a dead platform; after a while it lets one call through to probe.
// Every platform code in a JSON answer, even 500, proves the endpoint
// alive and counts as a success (one device's refusals must not stop the
// others); throttling and calls cancelled by their caller count as
// neither.
//
// # Errors
//
// Every error PreVerify and RegisterDevice return is an [*Error];
// errors.Is tells its kind:
//
//	ErrDeviceNotFound     codes 5001, 6100
//	ErrProductNotFound    codes 5005, 6250
//	ErrSignatureMismatch  code 401
//	ErrRequestRefused     code 400 (as answered for a sign the platform rejects)
//	ErrBadParameter       code 460, or a form lacking a required field
//	ErrAuthTypeMismatch   code 6200
//	ErrDeviceDisabled     code 6204
//	ErrAlreadyActivated   code 6289
//	ErrThrottled          HTTP 429, codes 429 and 40000
//	ErrUnknownCode        any other code (Code and Message say which)
//	ErrUpstream           HTTP 5xx, codes 500 and 6760, an unexpected HTTP
//	                      status, a body that is not JSON, cut short, over
//	                      the cap or lacks a field of a success answer
//	ErrUnavailable        connection errors, timeouts, an open circuit breaker
//	                      (also ErrCircuitOpen), the caller's context ending
//	ErrOutcomeUnknown     a registration that may have been processed but
//	                      whose answer was lost (instead of ErrUpstream or
//	                      ErrUnavailable), or whose answer names another device
//	ErrInvalidEndpoint    no valid base URL for the region
//
// If the caller's context ended, errors.Is(err, context.Canceled) or
// errors.Is(err, context.DeadlineExceeded) also holds; a timeout of a
// single attempt while the caller still had time does not make it hold.
//
// # Secrets
//
// Neither errors nor log records contain the form's sign, the iotToken or
// an issued DeviceSecret. The platform's message ([Error.Message]) is
// relayed after removing control characters and any occurrence of the
// sign, token or secret, and may be shown to callers. [Result] redacts the
// token and [Registration] the secret when formatted or logged. Logs carry the base
// URL, attempt number, HTTP status, platform code, duration and outcome.
//
// # Metrics
//
// The client reports to a [Config.Observer]: each PreVerify's duration
// under its [Outcome] label, each registration whose outcome is unknown,
// and each endpoint's circuit breaker state as it changes. It imports no metrics library, and package metrics imports
// nothing of this one: cmd/signerd hands the one to the other.
package aliyun
