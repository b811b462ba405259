// Package platform is a small client for the Alibaba Cloud IoT Platform's
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
// Both operations share the behaviour below: retries, breakers (one per
// base URL, shared by both), timeouts and error kinds.
//
// # Behaviour
//
// [Client.PreVerify] posts the form to {base}/auth/devicename, where base is
// https://iot-auth.{regionId}.aliyuncs.com unless configured per region or
// per product. It verifies TLS, never follows redirects (which would resend
// the sign to another place), bounds every attempt with a timeout inside the
// caller's deadline and reads at most [Config.MaxBodyBytes] of an answer.
//
// Attempts that failed in a way a retry can fix are retried with
// exponential backoff and jitter, within the caller's deadline: connection
// errors and attempt timeouts, HTTP 5xx, HTTP 429, platform code 500 and a
// response body cut short. A Retry-After on a 429 or 503 is honoured up to
// [Config.RetryAfterMax]; asking for longer, or for more than the caller's
// deadline leaves, ends the call at once with the answer's error (with
// [Error.RetryAfter] set) instead of sleeping. No retry starts when the
// backoff would outlast the caller's deadline. Answers that
// say the request itself is wrong (codes 401, 460, 5001, 6200, any other
// platform code) and malformed answers (not JSON, over the size cap,
// missing fields) are not retried. Retrying is safe because the call does
// not change anything on the platform except issuing a fresh token (or,
// for a registration, a fresh secret that supersedes the earlier ones).
//
// Each base URL has a circuit breaker (github.com/sony/gobreaker/v2). Once
// enough consecutive attempts failed (connection errors, timeouts, 5xx, 429,
// malformed answers), it opens and calls fail at once with [ErrUnavailable]
// (and [ErrCircuitOpen]) instead of tying up goroutines on a dead platform;
// after a while it lets one call through to probe. Definitive answers such
// as 401 or 5001 prove the platform alive and count as successes; calls
// cancelled by their caller count as neither.
//
// # Errors
//
// Every error PreVerify and RegisterDevice return is an [*Error];
// errors.Is tells its kind:
//
//	ErrDeviceNotFound     platform code 5001 (registration: also 6100)
//	ErrSignatureMismatch  platform code 401
//	ErrBadParameter       platform code 460, or a form lacking a required field
//	ErrAuthTypeMismatch   platform code 6200 (pre-verification only)
//	ErrAlreadyActivated   platform code 6288 (registration only)
//	ErrUpstream           HTTP 5xx, HTTP 429, code 500, any other code or HTTP
//	                      status, a body that is not JSON, cut short, over the
//	                      cap or lacks a field of a success answer (or, for a
//	                      registration, names another device)
//	ErrUnavailable        connection errors, timeouts, an open circuit breaker
//	                      (also ErrCircuitOpen), the caller's context ending
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
package platform
