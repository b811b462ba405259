package aliyun

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// outcome is the result of one attempt of a call whose result is a T.
type outcome[T any] struct {
	res    T
	status int // HTTP status of a success
	err    *Error
	// retry reports whether another attempt may succeed and is safe for
	// an operation that can be repeated.
	retry bool
	// ambiguous reports that the platform may have acted on the request
	// although the attempt failed: it was (or may have been) sent and no
	// definitive answer came back. An operation that must not be
	// repeated (a registration) then ends with ErrOutcomeUnknown.
	ambiguous bool
	// verdict is what the attempt tells the circuit breaker: nil (the
	// platform answered coherently), errBreakerFailure or
	// errBreakerExcluded.
	verdict error
}

// attempt sends body to base+e.path once and interprets the answer. sign
// is removed from any relayed message.
func attempt[T any](ctx context.Context, c *Client, e endpoint[T], base, body, sign string) outcome[T] {
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, base+e.path, strings.NewReader(body))
	if err != nil {
		// Only a base URL that does not parse gets here; New checked them.
		return outcome[T]{err: &Error{Kind: ErrInvalidEndpoint, detail: "building the request failed"}, verdict: errBreakerExcluded}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	var wt wireTrace
	req = req.WithContext(httptrace.WithClientTrace(actx, wt.clientTrace()))

	resp, err := c.http.Do(req)
	if err != nil {
		return transportFailure[T](c, ctx, actx, err, wt.unsent(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		if ctx.Err() != nil || actx.Err() != nil {
			out := transportFailure[T](c, ctx, actx, err, false)
			out.err.HTTPStatus = resp.StatusCode
			return out
		}
		// The connection broke while the answer was being read: as
		// transient as a connection reset, but the platform has had the
		// request.
		return outcome[T]{
			err:       &Error{Kind: ErrUpstream, HTTPStatus: resp.StatusCode, detail: "the answer was cut short: " + err.Error()},
			retry:     true,
			ambiguous: true,
			verdict:   errBreakerFailure,
		}
	}
	if int64(len(data)) > c.maxBody {
		return outcome[T]{
			err:       &Error{Kind: ErrUpstream, HTTPStatus: resp.StatusCode, detail: "the answer exceeds " + strconv.FormatInt(c.maxBody, 10) + " bytes"},
			ambiguous: true,
			verdict:   errBreakerFailure,
		}
	}
	return e.interpret(resp.StatusCode, resp.Header, data, sign)
}

// wireTrace follows one request through the HTTP transport to tell
// whether a failed request certainly never reached the platform.
type wireTrace struct {
	gotConn, tlsFailed atomic.Bool
}

func (w *wireTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { w.gotConn.Store(true) },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err != nil {
				w.tlsFailed.Store(true)
			}
		},
	}
}

// unsent reports whether err, the error of sending the request, certainly
// came before any byte of it was written: no connection was handed to the
// request, and the failure was a DNS lookup, a dial (connection refused,
// unreachable, timed out) or a TLS handshake. The transport writes a
// request only on a connection it has handed over (GotConn), so these
// failures cannot have reached the platform's request handling. Anything
// else, including a transport that does not report what it did, counts as
// possibly sent.
func (w *wireTrace) unsent(err error) bool {
	if w.gotConn.Load() {
		return false
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial") || w.tlsFailed.Load()
}

// transportFailure classifies an error of sending a request or reading
// its answer. ctx is the caller's context, actx the attempt's; unsent
// reports that the request certainly never reached the platform.
func transportFailure[T any](c *Client, ctx, actx context.Context, err error, unsent bool) outcome[T] {
	out := transportOutcome[T](c, ctx, actx, err)
	out.ambiguous = !unsent
	return out
}

func transportOutcome[T any](c *Client, ctx, actx context.Context, err error) outcome[T] {
	if cerr := ctx.Err(); cerr != nil {
		// The caller gave up. A deadline counts against the platform (a
		// hanging platform must open the breaker even when callers have
		// short deadlines); a cancellation does not.
		verdict := errBreakerFailure
		if errors.Is(cerr, context.Canceled) {
			verdict = errBreakerExcluded
		}
		return outcome[T]{
			err:     &Error{Kind: ErrUnavailable, detail: "the caller's context ended: " + cerr.Error(), extra: []error{cerr}},
			verdict: verdict,
		}
	}
	if actx.Err() != nil {
		return outcome[T]{
			err:     &Error{Kind: ErrUnavailable, detail: "the attempt timed out after " + c.attemptTimeout.String()},
			retry:   true,
			verdict: errBreakerFailure,
		}
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidErr  x509.CertificateInvalidError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostnameErr) || errors.As(err, &invalidErr) {
		// Retrying does not fix a certificate.
		return outcome[T]{
			err:     &Error{Kind: ErrUnavailable, detail: "TLS verification failed: " + err.Error()},
			verdict: errBreakerFailure,
		}
	}
	return outcome[T]{
		err:     &Error{Kind: ErrUnavailable, detail: transportDetail(err)},
		retry:   true,
		verdict: errBreakerFailure,
	}
}

// transportDetail describes a transport error for logs.
func transportDetail(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}

// envelope is the platform's answer, with data of type D.
type envelope[D any] struct {
	Code    *int   `json:"code"`
	Message string `json:"message"`
	Data    *D     `json:"data"`
}

// preVerifyData is the data of a pre-verification answer.
type preVerifyData struct {
	IotID     string `json:"iotId"`
	IotToken  string `json:"iotToken"`
	Resources *struct {
		MQTT *struct {
			Host string   `json:"host"`
			Port flexPort `json:"port"`
		} `json:"mqtt"`
	} `json:"resources"`
}

// flexPort accepts a port as a JSON number or a string of digits.
type flexPort int

func (p *flexPort) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("port is not an integer")
	}
	*p = flexPort(n)
	return nil
}

// rules says how to read the answers of one endpoint, whose data is a D
// and whose result is a T. Platform codes mean the same for every
// endpoint (codeTable).
type rules[D, T any] struct {
	// secrets returns the values of a parsed answer that must never be
	// relayed (the token, a DeviceSecret); d may be nil.
	secrets func(d *D) []string
	// result extracts the result of a code 200 answer, or names its first
	// missing or invalid field; d may be nil.
	result func(d *D) (T, string)
}

// preVerifyRules are the rules of /auth/devicename.
var preVerifyRules = rules[preVerifyData, Result]{
	secrets: func(d *preVerifyData) []string {
		if d == nil {
			return nil
		}
		return []string{d.IotToken}
	},
	result: result,
}

// interpret maps a pre-verification answer of the given HTTP status to an
// outcome.
func interpret(status int, h http.Header, data []byte, sign string) outcome[Result] {
	return interpretWith(preVerifyRules, status, h, data, sign)
}

// interpretWith maps an answer of the given HTTP status to an outcome by
// r. sign, and the secrets r finds in the answer, are removed from the
// relayed message.
func interpretWith[D, T any](r rules[D, T], status int, h http.Header, data []byte, sign string) outcome[T] {
	var env envelope[D]
	jerr := json.Unmarshal(data, &env)
	redact := []string{sign}
	if jerr == nil {
		redact = append(redact, r.secrets(env.Data)...)
	}
	// e builds an *Error carrying what the answer said.
	e := func(kind error, detail string) *Error {
		err := &Error{Kind: kind, HTTPStatus: status, detail: detail}
		if jerr == nil {
			if env.Code != nil {
				err.Code = *env.Code
			}
			err.Message = cleanMessage(env.Message, redact...)
		}
		return err
	}
	ok := 200 <= status && status < 300

	// The breaker hears of failures of the endpoint (HTTP 5xx, answers
	// that are not the platform's JSON), never of a device's platform
	// code: one device's refusals or code-500 answers must not stop the
	// other devices.
	switch {
	case status == http.StatusTooManyRequests:
		err := e(ErrThrottled, "rate limited (HTTP 429)")
		err.RetryAfter = retryAfter(h.Get("Retry-After"))
		return outcome[T]{err: err, retry: true, verdict: errBreakerExcluded}
	case status >= 500:
		err := e(ErrUpstream, "server error")
		if status == http.StatusServiceUnavailable {
			err.RetryAfter = retryAfter(h.Get("Retry-After"))
		}
		return outcome[T]{err: err, retry: true, ambiguous: true, verdict: errBreakerFailure}
	case jerr != nil:
		if ok {
			return outcome[T]{err: e(ErrUpstream, describeBadJSON(h, data, jerr)), ambiguous: true, verdict: errBreakerFailure}
		}
		return outcome[T]{err: e(ErrUpstream, "unexpected HTTP status"), verdict: errBreakerFailure}
	case env.Code == nil:
		return outcome[T]{err: e(ErrUpstream, "the answer has no code"), ambiguous: ok, verdict: errBreakerFailure}
	}

	info := LookupCode(*env.Code)
	switch info.Class {
	case ClassSuccess:
		if !ok {
			return outcome[T]{err: e(ErrUpstream, "code 200 with an unexpected HTTP status"), ambiguous: true, verdict: errBreakerFailure}
		}
		res, missing := r.result(env.Data)
		if missing != "" {
			return outcome[T]{err: e(ErrUpstream, "the answer lacks a valid "+missing), ambiguous: true, verdict: errBreakerFailure}
		}
		return outcome[T]{res: res, status: status}
	case ClassThrottled:
		return outcome[T]{err: e(info.Kind, info.Meaning), retry: true, verdict: errBreakerExcluded}
	case ClassServerError:
		return outcome[T]{err: e(info.Kind, info.Meaning), retry: true, ambiguous: true}
	case ClassPermanent:
		return outcome[T]{err: e(info.Kind, "")}
	}
	return outcome[T]{err: e(ErrUnknownCode, "a code signerd does not know")}
}

// describeBadJSON says why a 2xx answer could not be decoded, without
// quoting it.
func describeBadJSON(h http.Header, data []byte, jerr error) string {
	ct, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	var syn *json.SyntaxError
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return "the answer is empty"
	case errors.As(jerr, &syn) && syn.Offset >= int64(len(data)):
		return "the JSON answer is cut short"
	case ct != "" && ct != "application/json" && !strings.HasSuffix(ct, "+json"):
		return "the answer is not JSON (Content-Type " + ct + ")"
	}
	return "the answer is not valid JSON"
}

// Limits of the fields of a success answer.
const (
	maxIotIDLen    = 256
	maxIotTokenLen = 1024
	maxHostLen     = 253
)

// result extracts the result of a code 200 answer, or names the first
// missing or invalid field.
func result(d *preVerifyData) (Result, string) {
	switch {
	case d == nil:
		return Result{}, "data"
	case !isVisibleASCII(d.IotID, maxIotIDLen):
		return Result{}, "data.iotId"
	case !isVisibleASCII(d.IotToken, maxIotTokenLen):
		return Result{}, "data.iotToken"
	case d.Resources == nil || d.Resources.MQTT == nil:
		return Result{}, "data.resources.mqtt"
	case !isHost(d.Resources.MQTT.Host):
		return Result{}, "data.resources.mqtt.host"
	case d.Resources.MQTT.Port < 1 || d.Resources.MQTT.Port > 65535:
		return Result{}, "data.resources.mqtt.port"
	}
	return Result{
		IotID:    d.IotID,
		IotToken: d.IotToken,
		Host:     d.Resources.MQTT.Host,
		Port:     int(d.Resources.MQTT.Port),
	}, ""
}

// isVisibleASCII reports whether s is 1–maxLen bytes of printable ASCII
// other than space.
func isVisibleASCII(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// isHost reports whether s is an IP address or a DNS name of labels of
// [A-Za-z0-9-] (and '_'), at most 253 characters.
func isHost(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	if len(s) == 0 || len(s) > maxHostLen {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// maxRetryAfter bounds a parsed Retry-After, to keep arithmetic safe.
const maxRetryAfter = 24 * time.Hour

// retryAfter parses a Retry-After value (seconds or an HTTP date); it
// returns 0 if v is empty or invalid.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		d := time.Until(t)
		if d <= 0 {
			return 0
		}
		return min(d, maxRetryAfter)
	}
	return 0
}
