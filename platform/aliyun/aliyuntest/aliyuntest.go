// Package aliyuntest emulates the IoT Platform's device auth endpoint
// for tests: POST /auth/devicename (the HTTPS pre-verification) and POST
// /auth/register/device (dynamic registration, "one secret per product",
// pre-registration variant).
//
// The emulator is an httptest TLS server. It checks each request as
// strictly as the platform does (method, path, content type, required
// fields, field rules) and recomputes the sign with its own implementation
// of the platform's rule (crypto/hmac directly; it does not use signerd's
// signing package), so a test that passes against it shows that the form
// signerd sends is one the platform accepts. Faults can be injected to
// exercise a client's error handling, and every request is recorded.
//
// # Dynamic registration
//
// A product added with [Server.AddProduct] has dynamic registration
// enabled. A registration for one of its devices (added with
// [Server.AllowRegistration] or [Server.AddDevice]) that has not been
// activated issues a new random DeviceSecret, which replaces the device's
// secret: as on the platform, only the newest secret is valid, for
// pre-verification too. A successful pre-verification activates the
// device ([Server.Activate] does it directly); an activated device is
// refused with code 6289. The form must carry exactly productKey,
// deviceName, random (1–64 characters of [A-Za-z0-9]), signMethod
// (hmacmd5, hmacsha1 or hmacsha256) and sign, the hex HMAC keyed with the
// ProductSecret over deviceName{d}productKey{p}random{r}. Codes: 460 for a
// malformed form, 5001 for an unknown product (or one without dynamic
// registration) or device, 401 for a wrong sign, 6289 for an activated
// device. The platform does not document its registration error codes;
// these are the emulator's (and signerd's) reading of its behaviour.
package aliyuntest

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"hash"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Platform codes the emulator answers with.
const (
	CodeSuccess           = 200
	CodeSignatureMismatch = 401
	CodeBadParameter      = 460
	CodeInternal          = 500
	CodeDeviceNotFound    = 5001
	CodeAuthTypeMismatch  = 6200
	CodeAlreadyActivated  = 6289
)

// Path is the pre-verification path.
const Path = "/auth/devicename"

// RegisterPath is the dynamic registration path.
const RegisterPath = "/auth/register/device"

// Limits the emulator enforces.
const (
	maxClientIDLen = 64
	maxRandomLen   = 64
	maxBodyBytes   = 64 << 10
)

// Default MQTT endpoint returned on success.
const (
	DefaultMQTTHost = "127.0.0.1"
	DefaultMQTTPort = 1883
)

// FaultKind is a kind of injected fault.
type FaultKind int

// The faults. Faults apply before the request is checked; the request's
// body is read (and recorded) first.
const (
	// FaultNone: no fault; the request is handled normally.
	FaultNone FaultKind = iota
	// FaultCloseConnection closes the connection without answering.
	FaultCloseConnection
	// FaultResetConnection resets the TCP connection (RST) without
	// answering.
	FaultResetConnection
	// FaultDelay waits Fault.Delay (or until the client goes away), then
	// handles the request normally.
	FaultDelay
	// FaultHTTPStatus answers with HTTP Fault.Status (default 503) and a
	// non-JSON body; Fault.RetryAfter, if set, is sent as Retry-After.
	FaultHTTPStatus
	// FaultTooManyRequests answers HTTP 429 with Retry-After:
	// Fault.RetryAfter (omitted if empty).
	FaultTooManyRequests
	// FaultNonJSON answers HTTP 200 with an HTML page.
	FaultNonJSON
	// FaultTruncatedJSON answers HTTP 200 with a success answer cut in the
	// middle (a complete HTTP message whose JSON is incomplete).
	FaultTruncatedJSON
	// FaultShortBody announces a Content-Length longer than the body it
	// sends, then closes the connection.
	FaultShortBody
	// FaultCode answers HTTP 200 with JSON code Fault.Code and message
	// Fault.Message.
	FaultCode
	// FaultOversized answers HTTP 200 with valid JSON of Fault.Size bytes
	// (default 1 MiB).
	FaultOversized
	// FaultMissingFields answers code 200 without data.iotToken (on
	// RegisterPath: without data.deviceSecret).
	FaultMissingFields
	// FaultDropAnswer handles the request normally (a registration issues
	// a secret, a pre-verification a token), then closes the connection
	// without answering: the platform acted, the client never hears of
	// it.
	FaultDropAnswer

	// Connection faults apply to connections, not requests: in the order
	// injected among themselves, each to the next new connection. No
	// request is received on such a connection (Calls does not count
	// it; ConnFaults does).

	// FaultRefuseConnection makes the next dial of a client from
	// [Server.Client] fail with "connection refused" (it dials a port
	// nobody listens on). Clients of their own never see it.
	FaultRefuseConnection
	// FaultHandshakeFailure accepts the next connection and closes it
	// (with a TCP RST) before the TLS handshake: the client's handshake
	// fails, before any byte of its request was written.
	FaultHandshakeFailure
)

// connLevel reports whether k applies to connections rather than requests.
func (k FaultKind) connLevel() bool {
	return k == FaultRefuseConnection || k == FaultHandshakeFailure
}

var faultNames = map[FaultKind]string{
	FaultNone:             "none",
	FaultCloseConnection:  "close-connection",
	FaultResetConnection:  "reset-connection",
	FaultDelay:            "delay",
	FaultHTTPStatus:       "http-status",
	FaultTooManyRequests:  "too-many-requests",
	FaultNonJSON:          "non-json",
	FaultTruncatedJSON:    "truncated-json",
	FaultShortBody:        "short-body",
	FaultCode:             "code",
	FaultOversized:        "oversized",
	FaultMissingFields:    "missing-fields",
	FaultDropAnswer:       "drop-answer",
	FaultRefuseConnection: "refuse-connection",
	FaultHandshakeFailure: "handshake-failure",
}

func (k FaultKind) String() string {
	if s, ok := faultNames[k]; ok {
		return s
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is an injected fault.
type Fault struct {
	Kind FaultKind
	// Times is how many calls the fault applies to; 0 means every call
	// until ClearFaults.
	Times int
	// Delay is the wait of FaultDelay.
	Delay time.Duration
	// Status is the HTTP status of FaultHTTPStatus (default 503).
	Status int
	// RetryAfter is the Retry-After header of FaultTooManyRequests and
	// FaultHTTPStatus, verbatim ("" omits it).
	RetryAfter string
	// Code and Message are the answer of FaultCode.
	Code    int
	Message string
	// Size is the body size of FaultOversized (default 1 MiB).
	Size int
}

// Request is a recorded request.
type Request struct {
	Method      string
	Path        string
	ContentType string
	// Form is the parsed body, or nil if it could not be parsed.
	Form url.Values
	// Fault is the fault applied, or FaultNone.
	Fault FaultKind
	// HTTPStatus is the HTTP status answered (0 if the connection was
	// closed without an answer).
	HTTPStatus int
	// Code and Message are the platform code and message answered (0 and
	// "" if none).
	Code    int
	Message string
	// IotID and IotToken are the credentials issued by a successful
	// pre-verification.
	IotID    string
	IotToken string
	// DeviceSecret is the secret issued by a successful registration.
	DeviceSecret string
	// Sent is the number of body bytes FaultOversized managed to write
	// before the client stopped reading.
	Sent int64
}

// Accepted reports whether the request was answered with credentials (a
// token or, for a registration, a DeviceSecret).
func (r Request) Accepted() bool {
	return r.Code == CodeSuccess && (r.IotToken != "" || r.DeviceSecret != "")
}

// Device identifies a registered device.
type Device struct {
	ProductKey string
	DeviceName string
}

type device struct {
	secret    []byte
	iotID     string
	activated bool
}

type faultState struct {
	f    Fault
	left int // remaining calls; 0 for always
}

// Server is an emulated auth endpoint. It is safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	devices  map[Device]*device
	products map[string][]byte    // productKey → ProductSecret
	tokens   map[[2]string]Device // (iotId, iotToken) → device
	faults   []*faultState
	requests []Request
	calls    int
	// connFaults counts connections refused or cut by connection faults.
	connFaults int
	// refusedAddr is an address nobody listens on.
	refusedAddr string
	mqttHost    string
	mqttPort    int
}

// Option configures a Server.
type Option func(*Server)

// WithMQTT sets the MQTT endpoint returned on success.
func WithMQTT(host string, port int) Option {
	return func(s *Server) { s.mqttHost, s.mqttPort = host, port }
}

// New starts an emulator. If tb is not nil, the server is closed when the
// test ends; otherwise the caller must call Close.
func New(tb testing.TB, opts ...Option) *Server {
	s := &Server{
		devices:  make(map[Device]*device),
		products: make(map[string][]byte),
		tokens:   make(map[[2]string]Device),
		mqttHost: DefaultMQTTHost,
		mqttPort: DefaultMQTTPort,
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// Hijacking, used for connection faults, needs HTTP/1.1.
	s.srv.EnableHTTP2 = false
	s.srv.Listener = &faultListener{Listener: s.srv.Listener, s: s}
	s.srv.StartTLS()
	s.refusedAddr = closedAddr()
	if tr, ok := s.srv.Client().Transport.(*http.Transport); ok {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if s.takeConnFault(FaultRefuseConnection) {
				addr = s.refusedAddr
			}
			return d.DialContext(ctx, network, addr)
		}
	}
	if tb != nil {
		tb.Cleanup(s.Close)
	}
	return s
}

// URL returns the base URL, such as https://127.0.0.1:43210; the endpoint
// is URL()+Path.
func (s *Server) URL() string { return s.srv.URL }

// Client returns an HTTP client that trusts the server's certificate and
// that FaultRefuseConnection applies to. It is closed with the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// CertPool returns a pool holding the server's certificate, for clients
// that build their own TLS configuration.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// CertPEM returns the server's certificate as PEM, for processes (such as
// signerd's -platform-ca-file) that read their trust from a file.
func (s *Server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Close shuts the server down, waiting for running requests.
func (s *Server) Close() { s.srv.Close() }

// SetMQTT sets the MQTT endpoint returned on success.
func (s *Server) SetMQTT(host string, port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mqttHost, s.mqttPort = host, port
}

// AddDevice registers a device and returns its iotId, which stays the same
// for every token issued to it. Adding a device again replaces its secret.
func (s *Server) AddDevice(productKey, deviceName, deviceSecret string) (iotID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Device{productKey, deviceName}
	if d, ok := s.devices[k]; ok {
		d.secret = []byte(deviceSecret)
		return d.iotID
	}
	d := &device{secret: []byte(deviceSecret), iotID: randomID(20)}
	s.devices[k] = d
	return d.iotID
}

// AddProduct enables dynamic registration for a product whose
// ProductSecret is productSecret. Adding it again replaces the secret.
func (s *Server) AddProduct(productKey, productSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.products[productKey] = []byte(productSecret)
}

// AllowRegistration adds a device to a product (pre-registration) with a
// random secret nobody knows, so that it can obtain one by dynamic
// registration, and returns its iotId. A device that exists already is
// left as it is.
func (s *Server) AllowRegistration(productKey, deviceName string) (iotID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Device{productKey, deviceName}
	if d, ok := s.devices[k]; ok {
		return d.iotID
	}
	d := &device{secret: []byte(randomID(32)), iotID: randomID(20)}
	s.devices[k] = d
	return d.iotID
}

// Activate marks a device as activated, as its first successful
// connection does: dynamic registration then refuses it (code 6289). It
// reports whether the device exists.
func (s *Server) Activate(productKey, deviceName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[Device{productKey, deviceName}]
	if ok {
		d.activated = true
	}
	return ok
}

// DeviceSecret returns the device's current secret: the one it was added
// with or, after a registration, the newest one issued.
func (s *Server) DeviceSecret(productKey, deviceName string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[Device{productKey, deviceName}]
	if !ok {
		return "", false
	}
	return string(d.secret), true
}

// RemoveDevice unregisters a device; later requests for it get code 5001.
// Tokens issued before stay valid.
func (s *Server) RemoveDevice(productKey, deviceName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.devices, Device{productKey, deviceName})
}

// Inject adds a fault. Faults apply in the order injected: each call takes
// the first one that still applies.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{f: f, left: f.Times})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Requests returns a copy of the requests recorded so far, in arrival
// order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Form = cloneForm(r.Form)
		out[i] = r
	}
	return out
}

// Calls returns the number of requests received, whatever their fate.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Reset forgets the recorded requests and zeroes the call count; devices,
// tokens and faults stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.calls = nil, 0
}

// Issued reports whether the emulator issued the pair (iotID, iotToken),
// and to which device. An MQTT broker emulator can use it to check a
// CONNECT with username iotId and password iotToken.
func (s *Server) Issued(iotID, iotToken string) (Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.tokens[[2]string{iotID, iotToken}]
	return d, ok
}

// ConnFaults returns the number of connections refused or cut by
// connection faults.
func (s *Server) ConnFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connFaults
}

// nextFault returns the fault for this call and counts the call.
func (s *Server) nextFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.takeLocked(false)
}

// takeConnFault reports whether the first connection fault is of kind k,
// and if so takes it and counts the connection.
func (s *Server) takeConnFault(k FaultKind) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fs := range s.faults {
		if fs.f.Kind.connLevel() {
			if fs.f.Kind != k {
				return false
			}
			s.takeLocked(true)
			s.connFaults++
			return true
		}
	}
	return false
}

// takeLocked takes the first fault of the level (connection faults or
// request faults) and returns it, or the zero Fault if there is none.
// Times counts a fault's remaining uses.
func (s *Server) takeLocked(connLevel bool) Fault {
	for i, fs := range s.faults {
		if fs.f.Kind.connLevel() != connLevel {
			continue
		}
		if fs.left == 0 {
			return fs.f
		}
		fs.left--
		if fs.left == 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		return fs.f
	}
	return Fault{}
}

// faultListener applies FaultHandshakeFailure to accepted connections.
type faultListener struct {
	net.Listener
	s *Server
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.s.takeConnFault(FaultHandshakeFailure) {
			return c, err
		}
		if tcp, ok := c.(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
		c.Close()
	}
}

// closedAddr returns a loopback address nobody listens on: a port just
// released.
func closedAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(errors.New("aliyuntest: " + err.Error()))
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

// serve handles one request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type")}
	body, bodyErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if bodyErr == nil {
		if f, err := url.ParseQuery(string(body)); err == nil {
			rec.Form = f
		}
	}
	f := s.nextFault()
	rec.Fault = f.Kind
	recorded := false
	defer func() {
		if !recorded {
			s.record(rec)
		}
	}()
	// recordNow records the request before the connection is cut, so that
	// a client that sees the cut also finds the request recorded.
	recordNow := func() {
		s.record(rec)
		recorded = true
	}

	switch f.Kind {
	case FaultNone:
	case FaultCloseConnection, FaultResetConnection:
		recordNow()
		hijackClose(w, f.Kind == FaultResetConnection)
		return
	case FaultDelay:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client went away: answer nothing (net/http would
			// otherwise send an empty 200, which a client that just
			// timed out may still read).
			panic(http.ErrAbortHandler)
		}
	case FaultHTTPStatus:
		rec.HTTPStatus = orDefault(f.Status, http.StatusServiceUnavailable)
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(rec.HTTPStatus)
		io.WriteString(w, "<html><body>"+http.StatusText(rec.HTTPStatus)+"</body></html>")
		return
	case FaultTooManyRequests:
		rec.HTTPStatus = http.StatusTooManyRequests
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(rec.HTTPStatus)
		io.WriteString(w, "Too Many Requests")
		return
	case FaultNonJSON:
		rec.HTTPStatus = http.StatusOK
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html><body>Service temporarily unavailable</body></html>")
		return
	case FaultTruncatedJSON:
		rec.HTTPStatus = http.StatusOK
		full := successJSON("fake-iot-id", "fake-iot-token", "127.0.0.1", 1883)
		if r.URL.Path == RegisterPath {
			full = registerJSON(rec.Form.Get("productKey"), rec.Form.Get("deviceName"), "fake-device-secret")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(full[:len(full)/2])
		return
	case FaultShortBody:
		rec.HTTPStatus = http.StatusOK
		full := successJSON("fake-iot-id", "fake-iot-token", "127.0.0.1", 1883)
		if r.URL.Path == RegisterPath {
			full = registerJSON(rec.Form.Get("productKey"), rec.Form.Get("deviceName"), "fake-device-secret")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(full)))
		recordNow()
		w.Write(full[:len(full)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		hijackClose(w, false)
		return
	case FaultCode:
		rec.Code, rec.Message = f.Code, f.Message
		rec.HTTPStatus = writeJSON(w, map[string]any{"code": f.Code, "message": f.Message})
		return
	case FaultOversized:
		rec.HTTPStatus = http.StatusOK
		w.Header().Set("Content-Type", "application/json")
		rec.Sent = writeOversized(w, orDefault(f.Size, 1<<20))
		return
	case FaultDropAnswer:
		// Handle the request as usual, into a recorder nobody reads,
		// then cut the connection.
		s.handle(httptest.NewRecorder(), r, &rec, bodyErr)
		rec.HTTPStatus = 0
		recordNow()
		hijackClose(w, false)
		return
	case FaultMissingFields:
		rec.Code = CodeSuccess
		if r.URL.Path == RegisterPath {
			rec.HTTPStatus = writeJSON(w, map[string]any{
				"code": CodeSuccess, "message": "success",
				"data": map[string]any{"productKey": rec.Form.Get("productKey"), "deviceName": rec.Form.Get("deviceName")},
			})
			return
		}
		rec.HTTPStatus = writeJSON(w, map[string]any{
			"code": CodeSuccess, "message": "success",
			"data": map[string]any{"iotId": "fake-iot-id", "resources": map[string]any{
				"mqtt": map[string]any{"host": "127.0.0.1", "port": 1883}}},
		})
		return
	}

	s.handle(w, r, &rec, bodyErr)
}

// handle applies the platform's rules to a request without a fault and
// answers it on w, noting the answer in rec.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, rec *Request, bodyErr error) {
	switch {
	case r.Method != http.MethodPost:
		rec.HTTPStatus = http.StatusMethodNotAllowed
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", rec.HTTPStatus)
		return
	case r.URL.Path == RegisterPath:
		res := s.checkRegister(r, rec.Form, bodyErr)
		rec.Code, rec.Message, rec.DeviceSecret = res.code, res.message, res.secret
		answer := map[string]any{"code": res.code, "message": res.message}
		if res.code == CodeSuccess {
			answer["data"] = map[string]any{
				"productKey": rec.Form.Get("productKey"), "deviceName": rec.Form.Get("deviceName"),
				"deviceSecret": res.secret,
			}
		}
		rec.HTTPStatus = writeJSON(w, answer)
		return
	case r.URL.Path != Path:
		rec.HTTPStatus = http.StatusNotFound
		http.NotFound(w, r)
		return
	}
	res := s.check(r, rec.Form, bodyErr)
	rec.Code, rec.Message, rec.IotID, rec.IotToken = res.code, res.message, res.iotID, res.iotToken
	answer := map[string]any{"code": res.code, "message": res.message}
	if res.code == CodeSuccess {
		data := map[string]any{"iotId": res.iotID, "iotToken": res.iotToken}
		if res.mqtt {
			data["resources"] = map[string]any{"mqtt": map[string]any{"host": res.host, "port": res.port}}
		}
		answer["data"] = data
	}
	rec.HTTPStatus = writeJSON(w, answer)
}

// checkResult is the platform's verdict on a request.
type checkResult struct {
	code            int
	message         string
	iotID, iotToken string
	mqtt            bool
	host            string
	port            int
}

func reject(code int, message string) checkResult { return checkResult{code: code, message: message} }

// Parameters left out of the sign.
var unsigned = map[string]bool{"version": true, "sign": true, "resources": true, "signmethod": true}

// hashes are the sign methods the platform accepts.
var hashes = map[string]func() hash.Hash{
	"hmacmd5":    md5.New,
	"hmacsha1":   sha1.New,
	"hmacsha256": sha256.New,
}

// check applies the platform's rules to a POST to Path.
func (s *Server) check(r *http.Request, form url.Values, bodyErr error) checkResult {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil || mt != "application/x-www-form-urlencoded":
		return reject(CodeBadParameter, "content type must be application/x-www-form-urlencoded")
	case bodyErr != nil || form == nil:
		return reject(CodeBadParameter, "the body is not a form")
	case r.URL.RawQuery != "":
		return reject(CodeBadParameter, "parameters must be in the body")
	}
	for k, v := range form {
		if len(v) != 1 {
			return reject(CodeBadParameter, "parameter "+k+" is repeated")
		}
	}
	for _, k := range []string{"productKey", "deviceName", "clientId", "signmethod", "sign"} {
		if form.Get(k) == "" {
			return reject(CodeBadParameter, "parameter "+k+" is missing")
		}
	}
	if len(form.Get("clientId")) > maxClientIDLen {
		return reject(CodeBadParameter, "clientId is longer than 64 characters")
	}
	newHash, ok := hashes[form.Get("signmethod")]
	if !ok {
		return reject(CodeBadParameter, "signmethod must be hmacmd5, hmacsha1 or hmacsha256")
	}
	if ts, ok := form["timestamp"]; ok && !isDigits(ts[0]) {
		return reject(CodeBadParameter, "timestamp must be digits")
	}
	if v, ok := form["version"]; ok && v[0] != "default" {
		return reject(CodeBadParameter, "version must be default")
	}
	wantMQTT := false
	if v, ok := form["resources"]; ok {
		for _, res := range strings.Split(v[0], ",") {
			if res != "mqtt" {
				return reject(CodeBadParameter, "unknown resource")
			}
			wantMQTT = true
		}
	}

	s.mu.Lock()
	dev, ok := s.devices[Device{form.Get("productKey"), form.Get("deviceName")}]
	var secret []byte
	var iotID string
	if ok {
		secret, iotID = slices.Clone(dev.secret), dev.iotID
	}
	host, port := s.mqttHost, s.mqttPort
	s.mu.Unlock()
	if !ok {
		return reject(CodeDeviceNotFound, "device not found")
	}

	// The sign: HMAC over every submitted parameter except the unsigned
	// ones, keys sorted, key and value concatenated; compared without
	// regard to case.
	mac := hmac.New(newHash, secret)
	for _, k := range slices.Sorted(maps.Keys(form)) {
		if !unsigned[k] {
			io.WriteString(mac, k)
			io.WriteString(mac, form[k][0])
		}
	}
	got, err := hex.DecodeString(form.Get("sign"))
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return reject(CodeSignatureMismatch, "sign mismatch")
	}

	token := randomID(32)
	s.mu.Lock()
	s.tokens[[2]string{iotID, token}] = Device{form.Get("productKey"), form.Get("deviceName")}
	// The first successful connection activates the device.
	if d := s.devices[Device{form.Get("productKey"), form.Get("deviceName")}]; d != nil && string(d.secret) == string(secret) {
		d.activated = true
	}
	s.mu.Unlock()
	return checkResult{
		code: CodeSuccess, message: "success",
		iotID: iotID, iotToken: token,
		mqtt: wantMQTT, host: host, port: port,
	}
}

// registerResult is the platform's verdict on a registration.
type registerResult struct {
	code    int
	message string
	secret  string
}

// registerFields are the fields of a registration form, all required.
var registerFields = []string{"productKey", "deviceName", "random", "signMethod", "sign"}

// checkRegister applies the platform's rules to a POST to RegisterPath.
func (s *Server) checkRegister(r *http.Request, form url.Values, bodyErr error) registerResult {
	rej := func(code int, msg string) registerResult { return registerResult{code: code, message: msg} }
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil || mt != "application/x-www-form-urlencoded":
		return rej(CodeBadParameter, "content type must be application/x-www-form-urlencoded")
	case bodyErr != nil || form == nil:
		return rej(CodeBadParameter, "the body is not a form")
	case r.URL.RawQuery != "":
		return rej(CodeBadParameter, "parameters must be in the body")
	}
	for k, v := range form {
		if len(v) != 1 {
			return rej(CodeBadParameter, "parameter "+k+" is repeated")
		}
		if !slices.Contains(registerFields, k) {
			return rej(CodeBadParameter, "unknown parameter "+k)
		}
	}
	for _, k := range registerFields {
		if form.Get(k) == "" {
			return rej(CodeBadParameter, "parameter "+k+" is missing")
		}
	}
	newHash, ok := hashes[form.Get("signMethod")]
	if !ok {
		return rej(CodeBadParameter, "signMethod must be hmacmd5, hmacsha1 or hmacsha256")
	}
	if rnd := form.Get("random"); len(rnd) > maxRandomLen || !isAlnum(rnd) {
		return rej(CodeBadParameter, "random must be 1–64 letters and digits")
	}

	pk, dn := form.Get("productKey"), form.Get("deviceName")
	s.mu.Lock()
	productSecret, ok := s.products[pk]
	productSecret = slices.Clone(productSecret)
	s.mu.Unlock()
	if !ok {
		return rej(CodeDeviceNotFound, "product not found or dynamic registration not enabled")
	}
	// The sign: HMAC keyed with the ProductSecret over deviceName,
	// productKey and random, keys sorted, key and value concatenated;
	// compared without regard to case.
	mac := hmac.New(newHash, productSecret)
	io.WriteString(mac, "deviceName"+dn+"productKey"+pk+"random"+form.Get("random"))
	got, err := hex.DecodeString(form.Get("sign"))
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return rej(CodeSignatureMismatch, "sign mismatch")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[Device{pk, dn}]
	switch {
	case !ok:
		return rej(CodeDeviceNotFound, "device not found")
	case d.activated:
		return rej(CodeAlreadyActivated, "device already activated")
	}
	// Each registration issues a new secret; only the newest is valid.
	secret := randomID(32)
	d.secret = []byte(secret)
	return registerResult{code: CodeSuccess, message: "success", secret: secret}
}

// hijackClose takes over the connection and closes it; with reset, it
// makes the close send a TCP RST.
func hijackClose(w http.ResponseWriter, reset bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if reset {
		if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
			if tcp, ok := nc.NetConn().(*net.TCPConn); ok {
				tcp.SetLinger(0)
				tcp.Close()
				return
			}
		}
	}
	conn.Close()
}

// writeJSON writes v as an HTTP 200 JSON answer and returns the status.
func writeJSON(w http.ResponseWriter, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return http.StatusOK
}

// writeOversized streams a valid JSON answer of size bytes, padded with a
// long string, and returns how many bytes were written before the client
// went away.
func writeOversized(w http.ResponseWriter, size int) int64 {
	const head, tail = `{"code":500,"message":"","pad":"`, `"}`
	pad := max(size-len(head)-len(tail), 0)
	chunk := []byte(strings.Repeat("x", 32<<10))
	var sent int64
	write := func(b []byte) bool {
		n, err := w.Write(b)
		sent += int64(n)
		return err == nil
	}
	if !write([]byte(head)) {
		return sent
	}
	for pad > 0 {
		n := min(pad, len(chunk))
		if !write(chunk[:n]) {
			return sent
		}
		pad -= n
	}
	write([]byte(tail))
	return sent
}

// successJSON is a success answer with the given fields.
func successJSON(iotID, token, host string, port int) []byte {
	b, _ := json.Marshal(map[string]any{
		"code": CodeSuccess, "message": "success",
		"data": map[string]any{"iotId": iotID, "iotToken": token,
			"resources": map[string]any{"mqtt": map[string]any{"host": host, "port": port}}},
	})
	return b
}

// registerJSON is a registration success answer with the given fields.
func registerJSON(productKey, deviceName, secret string) []byte {
	b, _ := json.Marshal(map[string]any{
		"code": CodeSuccess, "message": "success",
		"data": map[string]any{"productKey": productKey, "deviceName": deviceName, "deviceSecret": secret},
	})
	return b
}

func isAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// randomID returns n random lower-case hex characters.
func randomID(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("aliyuntest: " + err.Error()))
	}
	return hex.EncodeToString(b)[:n]
}

func cloneForm(f url.Values) url.Values {
	if f == nil {
		return nil
	}
	out := make(url.Values, len(f))
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	return out
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
