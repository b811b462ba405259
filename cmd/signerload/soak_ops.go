package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	// Batch items' errors carry google.rpc details: protojson needs their
	// types to decode a REST batch answer.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// outcome is one answer the soak judged: a call, or one item of a batch.
type outcome struct {
	kind   string // what was asked, e.g. "grpc sign"
	expect string // the code the request is built to get ("OK", "InvalidArgument", …)
	got    string // the code it got, or a transport failure
	wrong  string // for an OK answer: what in it was wrong ("" if right)
	// vault, platform: the answer depends on Vault, the platform; during
	// an injected outage of one it may be UNAVAILABLE or DEADLINE_EXCEEDED.
	vault, platform bool
	item            bool // a batch item, not a call
}

// soakClients are the callers of the soak, each with its own TLS identity.
type soakClients struct {
	fleet   fleet
	devices int
	base    string // https://host:port of the REST listener
	emu     *aliyuntest.Server

	backend    []signerv1.SignerServiceClient // spiffe://…/backend: every product and RPC
	restricted signerv1.SignerServiceClient   // spiffe://…/restricted: another product only
	anonymous  signerv1.SignerServiceClient   // no client certificate
	conns      []*grpc.ClientConn

	rest       *http.Client   // the backend over REST (HTTP/2)
	restAnon   *http.Client   // no client certificate
	restAlien  *http.Client   // a certificate of a CA signerd does not trust
	deviceREST []*http.Client // device i's own certificate, i < len
	unknown    int            // distinct unknown device names
}

const (
	soakBackendID    = "spiffe://signerd.soak/fleet/backend"
	soakRestrictedID = "spiffe://signerd.soak/fleet/restricted"
	soakOtherProduct = "a1SoakOther"
	soakTimeout      = 15 * time.Second
)

func newSoakClients(ca, alien *soakCA, grpcAddr, httpAddr string, f fleet, devices, deviceCerts, conns int, emu *aliyuntest.Server) (*soakClients, error) {
	c := &soakClients{fleet: f, devices: devices, base: "https://" + httpAddr, emu: emu, unknown: 1000}
	tlsFor := func(ca *soakCA, uri string) (*tls.Config, error) {
		cfg := &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12}
		if uri == "" {
			return cfg, nil
		}
		cert, err := ca.issue("soak", uri, false)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		return cfg, nil
	}
	grpcClient := func(cfg *tls.Config) (signerv1.SignerServiceClient, error) {
		conn, err := grpc.NewClient("passthrough:///"+grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return nil, err
		}
		c.conns = append(c.conns, conn)
		return signerv1.NewSignerServiceClient(conn), nil
	}
	backendTLS, err := tlsFor(ca, soakBackendID)
	if err != nil {
		return nil, err
	}
	for range max(conns, 1) {
		g, err := grpcClient(backendTLS)
		if err != nil {
			return nil, err
		}
		c.backend = append(c.backend, g)
	}
	restrictedTLS, err := tlsFor(ca, soakRestrictedID)
	if err != nil {
		return nil, err
	}
	if c.restricted, err = grpcClient(restrictedTLS); err != nil {
		return nil, err
	}
	anonTLS, _ := tlsFor(ca, "")
	if c.anonymous, err = grpcClient(anonTLS); err != nil {
		return nil, err
	}
	httpClient := func(cfg *tls.Config, idle int, h2 bool) *http.Client {
		return &http.Client{Transport: &http.Transport{
			Proxy: nil, TLSClientConfig: cfg, ForceAttemptHTTP2: h2,
			MaxIdleConnsPerHost: idle, IdleConnTimeout: 30 * time.Second,
		}}
	}
	c.rest = httpClient(backendTLS, 16, true)
	c.restAnon = httpClient(anonTLS, 1, false)
	// The alien client trusts signerd's CA but presents a certificate of
	// another CA, for the same backend identity.
	alienTLS, err := tlsFor(alien, soakBackendID)
	if err != nil {
		return nil, err
	}
	alienTLS.RootCAs = ca.pool()
	c.restAlien = httpClient(alienTLS, 1, false)
	for i := range min(deviceCerts, devices) {
		cfg, err := tlsFor(ca, "aliyun-iot://"+f.product+"/"+f.name(i))
		if err != nil {
			return nil, err
		}
		c.deviceREST = append(c.deviceREST, httpClient(cfg, 1, false))
	}
	return c, nil
}

func (c *soakClients) close() {
	for _, conn := range c.conns {
		conn.Close()
	}
	for _, h := range append([]*http.Client{c.rest, c.restAnon, c.restAlien}, c.deviceREST...) {
		h.CloseIdleConnections()
	}
}

// soakOp is one kind of request of the mix, with its weight.
type soakOp struct {
	name   string
	weight int
	do     func(c *soakClients, ctx context.Context, r *rand.Rand) []outcome
}

// soakMix is the realistic mix: mostly signs for the fleet, over both
// transports, by backends and devices themselves; batches; PreVerify; and
// the calls a service sees every day that must be refused.
var soakMix = []soakOp{
	{"grpc sign", 30, (*soakClients).grpcSign},
	{"rest sign", 22, (*soakClients).restSign},
	{"rest sign as device", 10, (*soakClients).deviceSign},
	{"grpc batch", 4, (*soakClients).grpcBatch},
	{"rest batch", 3, (*soakClients).restBatch},
	{"grpc preverify", 3, (*soakClients).grpcPreVerify},
	{"rest preverify", 3, (*soakClients).restPreVerify},
	{"unknown device", 4, (*soakClients).unknownDevice},
	{"bad input", 12, (*soakClients).badInput},
	{"no permission", 9, (*soakClients).noPermission},
}

var (
	soakMethods = []signerv1.SignMethod{
		signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256, signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1, signerv1.SignMethod_SIGN_METHOD_HMAC_MD5,
	}
	soakTransports = []signerv1.Transport{signerv1.Transport_TRANSPORT_TLS, signerv1.Transport_TRANSPORT_TCP}
)

// signRequest is a request for device i with a random method and
// transport; three in four carry their own timestamp, the rest take the
// server's clock.
func (c *soakClients) signRequest(r *rand.Rand, i int) *signerv1.SignMqttConnectRequest {
	req := &signerv1.SignMqttConnectRequest{
		ProductKey: c.fleet.product, DeviceName: c.fleet.name(i),
		SignMethod: soakMethods[r.IntN(len(soakMethods))], Transport: soakTransports[r.IntN(len(soakTransports))],
	}
	if r.IntN(4) != 0 {
		ts := time.Now().UnixMilli() - r.Int64N(3_600_000)
		req.TimestampMs = &ts
	}
	return req
}

// checkSign judges an answer for req against device i's known secret,
// with an HMAC computed here (crypto/hmac), not by signerd's signing
// package: "" if right, else what is wrong (never the secret or password).
func (c *soakClients) checkSign(req *signerv1.SignMqttConnectRequest, i int, got *signerv1.SignMqttConnectResponse) string {
	pk, dn := c.fleet.product, c.fleet.name(i)
	clientID := pk + "." + dn
	mode := "2"
	if req.GetTransport() == signerv1.Transport_TRANSPORT_TCP {
		mode = "3"
	}
	name, newHash := soakHash(req.GetSignMethod())
	prefix := clientID + "|securemode=" + mode + ",signmethod=" + name + ",timestamp="
	cid := got.GetClientId()
	if !strings.HasPrefix(cid, prefix) || !strings.HasSuffix(cid, "|") {
		return "clientId: not " + prefix + "…|"
	}
	ts := strings.TrimSuffix(strings.TrimPrefix(cid, prefix), "|")
	if req.TimestampMs != nil {
		if ts != strconv.FormatInt(req.GetTimestampMs(), 10) {
			return "clientId: not the timestamp sent"
		}
	} else if ms, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.UnixMilli(ms)).Abs() > 10*time.Minute {
		return "clientId: the server's timestamp is not now"
	}
	if got.GetUsername() != dn+"&"+pk {
		return "username"
	}
	if got.GetPassword() != soakHMAC(newHash, c.fleet.secret(i), "clientId"+clientID+"deviceName"+dn+"productKey"+pk+"timestamp"+ts) {
		return "password does not match the device's secret"
	}
	return ""
}

func soakHash(m signerv1.SignMethod) (string, func() hash.Hash) {
	switch m {
	case signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1:
		return "hmacsha1", sha1.New
	case signerv1.SignMethod_SIGN_METHOD_HMAC_MD5:
		return "hmacmd5", md5.New
	}
	return "hmacsha256", sha256.New
}

func soakHMAC(newHash func() hash.Hash, key []byte, content string) string {
	m := hmac.New(newHash, key)
	m.Write([]byte(content))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *soakClients) backendClient(r *rand.Rand) signerv1.SignerServiceClient {
	return c.backend[r.IntN(len(c.backend))]
}

func (c *soakClients) grpcSign(ctx context.Context, r *rand.Rand) []outcome {
	i := r.IntN(c.devices)
	req := c.signRequest(r, i)
	resp, err := c.backendClient(r).SignMqttConnect(ctx, req)
	o := outcome{kind: "grpc sign", expect: "OK", got: grpcCodeOf(err), vault: true}
	if err == nil {
		o.wrong = c.checkSign(req, i, resp)
	}
	return []outcome{o}
}

func (c *soakClients) restSign(ctx context.Context, r *rand.Rand) []outcome {
	i := r.IntN(c.devices)
	return []outcome{c.restSignWith(ctx, c.rest, "rest sign", r, i)}
}

// deviceSign: a device asks for its own credentials with its certificate.
func (c *soakClients) deviceSign(ctx context.Context, r *rand.Rand) []outcome {
	i := r.IntN(len(c.deviceREST))
	return []outcome{c.restSignWith(ctx, c.deviceREST[i], "rest sign as device", r, i)}
}

func (c *soakClients) restSignWith(ctx context.Context, h *http.Client, kind string, r *rand.Rand, i int) outcome {
	req := c.signRequest(r, i)
	var resp signerv1.SignMqttConnectResponse
	got := c.post(ctx, h, devicePath(req.ProductKey, req.DeviceName, "signMqttConnect"), restBodyOf(req), &resp)
	o := outcome{kind: kind, expect: "OK", got: got, vault: true}
	if got == "OK" {
		o.wrong = c.checkSign(req, i, &resp)
	}
	return o
}

// restBodyOf is req without its path fields, as the gateway takes it.
func restBodyOf(req *signerv1.SignMqttConnectRequest) []byte {
	b := proto.Clone(req).(*signerv1.SignMqttConnectRequest)
	b.ProductKey, b.DeviceName = "", ""
	out, _ := protojson.Marshal(b)
	return out
}

func devicePath(pk, dn, verb string) string {
	return "/v1/products/" + url.PathEscape(pk) + "/devices/" + url.PathEscape(dn) + ":" + verb
}

// batchOf is a batch of n random devices; one batch in four carries one
// bad item and one of an unknown device, which must fail alone.
func (c *soakClients) batchOf(r *rand.Rand, n int) (reqs []*signerv1.SignMqttConnectRequest, devs []int, expect []string) {
	for range n {
		i := r.IntN(c.devices)
		reqs, devs, expect = append(reqs, c.signRequest(r, i)), append(devs, i), append(expect, "OK")
	}
	if r.IntN(4) == 0 {
		reqs[0].DeviceName, expect[0] = "x", "InvalidArgument"
		reqs[1].DeviceName, expect[1] = fmt.Sprintf("gone-%04d", r.IntN(c.unknown)), "NotFound"
	}
	return reqs, devs, expect
}

func (c *soakClients) judgeBatch(kind string, reqs []*signerv1.SignMqttConnectRequest, devs []int, expect []string, results []*signerv1.BatchSignMqttConnectResult) []outcome {
	var out []outcome
	if len(results) != len(reqs) {
		return []outcome{{kind: kind, expect: "OK", got: "OK", wrong: fmt.Sprintf("%d results for %d requests", len(results), len(reqs))}}
	}
	for k, res := range results {
		o := outcome{kind: kind + " item", expect: expect[k], got: "OK", vault: true, item: true}
		if e := res.GetError(); e != nil {
			o.got = codes.Code(e.GetCode()).String()
		} else {
			o.wrong = c.checkSign(reqs[k], devs[k], res.GetResponse())
		}
		out = append(out, o)
	}
	return out
}

func (c *soakClients) grpcBatch(ctx context.Context, r *rand.Rand) []outcome {
	reqs, devs, expect := c.batchOf(r, 20)
	resp, err := c.backendClient(r).BatchSignMqttConnect(ctx, &signerv1.BatchSignMqttConnectRequest{Requests: reqs})
	call := outcome{kind: "grpc batch", expect: "OK", got: grpcCodeOf(err)}
	if err != nil {
		return []outcome{call}
	}
	return append([]outcome{call}, c.judgeBatch("grpc batch", reqs, devs, expect, resp.GetResults())...)
}

func (c *soakClients) restBatch(ctx context.Context, r *rand.Rand) []outcome {
	reqs, devs, expect := c.batchOf(r, 20)
	body, _ := protojson.Marshal(&signerv1.BatchSignMqttConnectRequest{Requests: reqs})
	var resp signerv1.BatchSignMqttConnectResponse
	call := outcome{kind: "rest batch", expect: "OK", got: c.post(ctx, c.rest, "/v1/devices:batchSignMqttConnect", body, &resp)}
	if call.got != "OK" {
		return []outcome{call}
	}
	return append([]outcome{call}, c.judgeBatch("rest batch", reqs, devs, expect, resp.GetResults())...)
}

// checkPreVerify: the token must be one the platform issued to this
// device, and the CONNECT fields must be that token.
func (c *soakClients) checkPreVerify(i int, resp *signerv1.PreVerifyResponse) string {
	d, ok := c.emu.Issued(resp.GetIotId(), resp.GetIotToken())
	switch {
	case !ok:
		return "iotToken: not issued by the platform"
	case d.ProductKey != c.fleet.product || d.DeviceName != c.fleet.name(i):
		return "iotToken: issued to another device"
	case resp.GetUsername() != resp.GetIotId() || resp.GetPassword() != resp.GetIotToken():
		return "CONNECT fields are not the iotId and iotToken"
	}
	return ""
}

func (c *soakClients) grpcPreVerify(ctx context.Context, r *rand.Rand) []outcome {
	i := r.IntN(c.devices)
	resp, err := c.backendClient(r).PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: c.fleet.product, DeviceName: c.fleet.name(i)})
	o := outcome{kind: "grpc preverify", expect: "OK", got: grpcCodeOf(err), vault: true, platform: true}
	if err == nil {
		o.wrong = c.checkPreVerify(i, resp)
	}
	return []outcome{o}
}

func (c *soakClients) restPreVerify(ctx context.Context, r *rand.Rand) []outcome {
	i := r.IntN(c.devices)
	var resp signerv1.PreVerifyResponse
	o := outcome{kind: "rest preverify", expect: "OK", vault: true, platform: true}
	o.got = c.post(ctx, c.rest, devicePath(c.fleet.product, c.fleet.name(i), "preVerify"), []byte(`{}`), &resp)
	if o.got == "OK" {
		o.wrong = c.checkPreVerify(i, &resp)
	}
	return []outcome{o}
}

// unknownDevice: a device with no secret in Vault.
func (c *soakClients) unknownDevice(ctx context.Context, r *rand.Rand) []outcome {
	dn := fmt.Sprintf("gone-%04d", r.IntN(c.unknown))
	o := outcome{kind: "unknown device", expect: "NotFound", vault: true}
	if r.IntN(2) == 0 {
		_, err := c.backendClient(r).SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: c.fleet.product, DeviceName: dn})
		o.got = grpcCodeOf(err)
	} else {
		o.got = c.post(ctx, c.rest, devicePath(c.fleet.product, dn, "signMqttConnect"), []byte(`{}`), nil)
	}
	return []outcome{o}
}

// badInput: requests that must be refused as INVALID_ARGUMENT, over both
// transports, before any lookup.
func (c *soakClients) badInput(ctx context.Context, r *rand.Rand) []outcome {
	pk, dn := c.fleet.product, c.fleet.name(r.IntN(c.devices))
	ts := int64(1)
	grpcBad := []*signerv1.SignMqttConnectRequest{
		{ProductKey: pk, DeviceName: "ab"},
		{ProductKey: "a1-bad", DeviceName: dn},
		{ProductKey: pk, DeviceName: dn, ClientId: strings.Repeat("c", 65)},
		{ProductKey: pk, DeviceName: dn, TimestampMs: &ts, OmitTimestamp: true},
		{ProductKey: pk, DeviceName: dn, SignMethod: signerv1.SignMethod(99)},
	}
	restBad := []struct{ path, body string }{
		{devicePath(pk, dn, "signMqttConnect"), `{`},
		{devicePath(pk, dn, "signMqttConnect"), `{"bogus":1}`},
		{devicePath(pk, dn, "signMqttConnect"), `{"signMethod":"SIGN_METHOD_NOPE"}`},
		{"/v1/products/" + pk + "/devices/dev%FF0001:signMqttConnect", `{}`},
		{devicePath(pk, "x", "preVerify"), `{}`},
		{"/v1/devices:batchSignMqttConnect", `{"requests":[]}`},
	}
	k := r.IntN(len(grpcBad) + len(restBad))
	o := outcome{kind: "bad input", expect: "InvalidArgument"}
	if k < len(grpcBad) {
		_, err := c.backendClient(r).SignMqttConnect(ctx, grpcBad[k])
		o.got = grpcCodeOf(err)
	} else {
		b := restBad[k-len(grpcBad)]
		o.got = c.post(ctx, c.rest, b.path, []byte(b.body), nil)
	}
	return []outcome{o}
}

// noPermission: callers who may not have what they ask for, or who are
// nobody.
func (c *soakClients) noPermission(ctx context.Context, r *rand.Rand) []outcome {
	pk := c.fleet.product
	i := r.IntN(c.devices)
	dn := c.fleet.name(i)
	o := outcome{kind: "no permission", expect: "PermissionDenied"}
	switch r.IntN(7) {
	case 0: // a backend granted another product only
		_, err := c.restricted.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn})
		o.got = grpcCodeOf(err)
	case 1:
		_, err := c.restricted.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pk, DeviceName: dn})
		o.got = grpcCodeOf(err)
	case 2: // a device asking for another device
		d := r.IntN(len(c.deviceREST))
		other := c.fleet.name((d + 1 + r.IntN(c.devices-1)) % c.devices)
		o.got = c.post(ctx, c.deviceREST[d], devicePath(pk, other, "signMqttConnect"), []byte(`{}`), nil)
	case 3: // a device calling a batch RPC it is not granted
		d := r.IntN(len(c.deviceREST))
		o.got = c.post(ctx, c.deviceREST[d], "/v1/devices:batchSignMqttConnect",
			fmt.Appendf(nil, `{"requests":[{"productKey":%q,"deviceName":%q}]}`, pk, c.fleet.name(d)), nil)
	case 4: // no certificate, gRPC
		o.expect = "Unauthenticated"
		_, err := c.anonymous.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: dn})
		o.got = grpcCodeOf(err)
	case 5: // no certificate, REST
		o.expect = "Unauthenticated"
		o.got = c.post(ctx, c.restAnon, devicePath(pk, dn, "signMqttConnect"), []byte(`{}`), nil)
	default: // a certificate of a CA signerd does not trust
		o.expect = "Unauthenticated"
		o.got = c.post(ctx, c.restAlien, devicePath(pk, dn, "signMqttConnect"), []byte(`{}`), nil)
	}
	return []outcome{o}
}

// restHTTP is the HTTP status the README documents for each code.
var restHTTP = map[codes.Code]int{
	codes.InvalidArgument: 400, codes.Unauthenticated: 401, codes.PermissionDenied: 403, codes.NotFound: 404,
	codes.FailedPrecondition: 400, codes.AlreadyExists: 409, codes.Aborted: 409, codes.ResourceExhausted: 429,
	codes.Unavailable: 503, codes.DeadlineExceeded: 504, codes.Unimplemented: 501, codes.Unknown: 502, codes.Internal: 500,
}

// post sends body to path and decodes a 200 answer into out (if not nil).
// It returns the answer's code name, "… (HTTP n, not the documented
// status)" when status and code disagree, or a transport failure.
func (c *soakClients) post(ctx context.Context, h *http.Client, path string, body []byte, out proto.Message) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return "request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.Do(req)
	if err != nil {
		return transportCode(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return transportCode(err)
	}
	if resp.StatusCode == http.StatusOK {
		if out != nil {
			if err := protojson.Unmarshal(b, out); err != nil {
				return "OK (undecodable body)"
			}
		}
		return "OK"
	}
	var e struct {
		Code *int `json:"code"`
	}
	if json.Unmarshal(b, &e) != nil || e.Code == nil {
		return fmt.Sprintf("HTTP %d (no gateway error body)", resp.StatusCode)
	}
	code := codes.Code(*e.Code)
	if restHTTP[code] != resp.StatusCode {
		return fmt.Sprintf("%s (HTTP %d, not the documented status)", code, resp.StatusCode)
	}
	return code.String()
}

// grpcCodeOf names a gRPC call's outcome.
func grpcCodeOf(err error) string {
	if err == nil {
		return "OK"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded.String()
	}
	s, ok := status.FromError(err)
	if !ok {
		return "not a gRPC status: " + err.Error()
	}
	return s.Code().String()
}
