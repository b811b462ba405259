package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// oneAuthzAnswer is what a caller learns from one call.
type oneAuthzAnswer struct {
	code  codes.Code
	msg   string
	items []codes.Code
}

// denied reports whether the target device was refused: the call as a
// whole, or its one item.
func (a oneAuthzAnswer) denied() bool {
	return a.code == codes.PermissionDenied || (a.code == codes.OK && slices.Equal(a.items, []codes.Code{codes.PermissionDenied}))
}

// oneAuthzRPCs call every RPC of the service with the target device in the
// place that RPC authorizes: the request's device, the one item of a batch
// or stream, the sub-device of a gateway the caller may use, or the gateway
// itself.
var oneAuthzRPCs = []struct {
	name string
	call func(ctx context.Context, c *caller, gw, target [2]string) (oneAuthzAnswer, error)
}{
	{"SignMqttConnect", func(ctx context.Context, c *caller, _, d [2]string) (oneAuthzAnswer, error) {
		_, err := c.grpc.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: d[0], DeviceName: d[1]})
		return oneAuthzAnswer{}, err
	}},
	{"PreVerify", func(ctx context.Context, c *caller, _, d [2]string) (oneAuthzAnswer, error) {
		_, err := c.grpc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: d[0], DeviceName: d[1]})
		return oneAuthzAnswer{}, err
	}},
	{"RegisterDevice", func(ctx context.Context, c *caller, _, d [2]string) (oneAuthzAnswer, error) {
		_, err := c.grpc.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: d[0], DeviceName: d[1]})
		return oneAuthzAnswer{}, err
	}},
	{"SignSubDeviceLogin/sub-device", func(ctx context.Context, c *caller, gw, d [2]string) (oneAuthzAnswer, error) {
		_, err := c.grpc.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{ProductKey: gw[0], DeviceName: gw[1],
			SubDevices: []*signerv1.SubDevice{{ProductKey: d[0], DeviceName: d[1]}}})
		return oneAuthzAnswer{}, err
	}},
	{"SignSubDeviceLogin/gateway", func(ctx context.Context, c *caller, _, d [2]string) (oneAuthzAnswer, error) {
		_, err := c.grpc.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{ProductKey: d[0], DeviceName: d[1],
			SubDevices: []*signerv1.SubDevice{{ProductKey: pkA, DeviceName: grantSub}}})
		return oneAuthzAnswer{}, err
	}},
	{"BatchSignMqttConnect", func(ctx context.Context, c *caller, _, d [2]string) (oneAuthzAnswer, error) {
		resp, err := c.grpc.BatchSignMqttConnect(ctx, &signerv1.BatchSignMqttConnectRequest{
			Requests: []*signerv1.SignMqttConnectRequest{{ProductKey: d[0], DeviceName: d[1]}}})
		return oneAuthzAnswer{items: itemCodes(resp)}, err
	}},
	{"StreamSignMqttConnect", func(ctx context.Context, c *caller, _, d [2]string) (oneAuthzAnswer, error) {
		items, err := streamCodes(ctx, c, []*signerv1.SignMqttConnectRequest{{ProductKey: d[0], DeviceName: d[1]}})
		return oneAuthzAnswer{items: items}, err
	}},
}

// TestOneAuthorizerDecidesEveryRPC runs one table of denial cases through
// every RPC of the service (single device, PreVerify, registration,
// sub-device and gateway of SignSubDeviceLogin, batch item, stream item):
// each is refused by the same policy, with the same answer whether or not
// the device exists, without one secret-store lookup, and audited as
// denied by policy for that device. Allowed rows of the same table prove
// that the refusals are the policy's, not the RPC's. Issue 13:
// authorization lived in four places with different defaults.
func TestOneAuthorizerDecidesEveryRPC(t *testing.T) {
	descr := descriptorRPCs(t)
	for _, rpc := range descr {
		if slices.ContainsFunc(platformRPCs, func(r platformRPC) bool { return r.rpc == rpc }) {
			continue // TestOneAuthorizerDecidesPlatformRPCs: devices of their own platform
		}
		if !slices.ContainsFunc(oneAuthzRPCs, func(r struct {
			name string
			call func(ctx context.Context, c *caller, gw, target [2]string) (oneAuthzAnswer, error)
		}) bool {
			return strings.SplitN(r.name, "/", 2)[0] == rpc
		}) {
			t.Fatalf("RPC %s is not in the table: add it, so that its authorization is proven too", rpc)
		}
	}

	gateway := [2]string{pkA, grantGW}
	policy := fmt.Sprintf(`deviceRpcs: [%s]
gateways:
  - gateway: %s/%s
    subDevices: [%s/%s]
backends:
  - identity: %s
    products: [%s]
    rpcs: ["*"]
  - identity: %s
    products: [%s]
    rpcs: ["*"]
`, strings.Join(descr, ", "), pkA, grantGW, pkA, grantSub, provA, pkA, jwtProvA, pkA)
	s := startSecure(t, secOptions{policy: policy})
	for _, d := range [][2]string{{pkA, grantGW}, {pkA, grantSub}, {pkA, grantDev}, {pkA, "dev-0002"}, {pkB, "dev-0003"}} {
		s.putSecret(t, d[0], d[1])
	}

	gwCert := s.ca.Device(t, pkA, grantGW)
	provCert := s.ca.Backend(t, provA)
	strangerCert := s.ca.Backend(t, stranger)
	callers := map[string]*caller{
		"gateway device": s.newCaller(t, "device:"+pkA+"/"+grantGW, &gwCert, ""),
		"mTLS backend":   s.newCaller(t, "backend:"+provA, &provCert, ""),
		"JWT backend":    s.newCaller(t, "backend:"+jwtProvA, nil, s.jwt.es256(t, validClaims(jwtProvA))),
		"stranger":       s.newCaller(t, "backend:"+stranger, &strangerCert, ""),
	}

	// Each denial row names a device that exists and one that does not,
	// for the same reason: the caller must not tell them apart.
	denials := []struct {
		name, caller  string
		exists, ghost [2]string
	}{
		{"device for another device", "gateway device", [2]string{pkA, "dev-0002"}, [2]string{pkA, "dev-ghost"}},
		{"mTLS backend, product not granted", "mTLS backend", [2]string{pkB, "dev-0003"}, [2]string{pkB, "dev-ghost"}},
		{"JWT backend, product not granted", "JWT backend", [2]string{pkB, "dev-0003"}, [2]string{pkB, "dev-ghost"}},
		{"backend not in the policy", "stranger", [2]string{pkA, grantDev}, [2]string{pkA, "dev-ghost"}},
	}
	allowed := []struct {
		name, caller string
		target       [2]string
	}{
		{"device for itself", "gateway device", [2]string{pkA, grantGW}},
		{"backend, granted product", "mTLS backend", [2]string{pkA, grantDev}},
		{"JWT backend, granted product", "JWT backend", [2]string{pkA, grantDev}},
	}

	seq := 0
	call := func(t *testing.T, c *caller, rpc int, target [2]string) (oneAuthzAnswer, string) {
		t.Helper()
		seq++
		reqID := fmt.Sprintf("one-authz-%04d", seq)
		md := []string{"x-request-id", reqID}
		if c.bearer != "" {
			md = append(md, "authorization", "Bearer "+c.bearer)
		}
		ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs(md...)), patience)
		defer cancel()
		a, err := oneAuthzRPCs[rpc].call(ctx, c, gateway, target)
		st := status.Convert(err)
		a.code, a.msg = st.Code(), st.Message()
		return a, reqID
	}

	type deniedCall struct {
		reqID, caller, rpc string
		device             [2]string
	}
	var audited []deniedCall
	for _, row := range denials {
		for i, rpc := range oneAuthzRPCs {
			t.Run(row.name+"/"+rpc.name, func(t *testing.T) {
				c := callers[row.caller]
				before, _ := s.store.snapshot()
				got, id := call(t, c, i, row.exists)
				ghost, ghostID := call(t, c, i, row.ghost)
				if after, _ := s.store.snapshot(); after != before {
					t.Errorf("the secret store was asked %d times for refused devices", after-before)
				}
				if !got.denied() {
					t.Errorf("%s for %v: %v %q (items %v), want PERMISSION_DENIED", c.name, row.exists, got.code, got.msg, got.items)
				}
				// "Not yours" and "does not exist" are one answer (the
				// sub-device message names the index, not the device).
				if got.code != ghost.code || got.msg != ghost.msg || !slices.Equal(got.items, ghost.items) {
					t.Errorf("existing device answered %+v, missing one %+v: the caller can tell them apart", got, ghost)
				}
				rpcName := strings.SplitN(rpc.name, "/", 2)[0]
				audited = append(audited, deniedCall{id, c.name, rpcName, row.exists}, deniedCall{ghostID, c.name, rpcName, row.ghost})
			})
		}
	}
	for _, row := range allowed {
		for i, rpc := range oneAuthzRPCs {
			t.Run("allowed/"+row.name+"/"+rpc.name, func(t *testing.T) {
				c := callers[row.caller]
				target := row.target
				if rpc.name == "SignSubDeviceLogin/sub-device" {
					target = [2]string{pkA, grantSub}
				}
				if rpc.name == "SignSubDeviceLogin/gateway" {
					target = gateway
				}
				got, _ := call(t, c, i, target)
				if got.code == codes.PermissionDenied || slices.Contains(got.items, codes.PermissionDenied) {
					t.Errorf("%s for %v: %v %q (items %v), want past authorization", c.name, target, got.code, got.msg, got.items)
				}
			})
		}
	}

	// Every refusal is audited for the device it named, as the policy's.
	records := map[string][]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s.audit.String()), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		records[m["request_id"]] = append(records[m["request_id"]], m)
	}
	for _, d := range audited {
		found := false
		for _, r := range records[d.reqID] {
			if r["product_key"] == d.device[0] && r["device_name"] == d.device[1] && r["rpc"] == d.rpc &&
				r["caller"] == d.caller && r["outcome"] == "denied" && r["code"] == "PermissionDenied" &&
				strings.HasPrefix(r["reason"], "policy: "+d.caller+" may not ") {
				found = true
			}
		}
		if !found {
			t.Errorf("request %s (%s as %s for %v): no policy denial in its audit records %v", d.reqID, d.rpc, d.caller, d.device, records[d.reqID])
		}
	}
	_, byID := s.store.snapshot()
	for _, row := range denials {
		for _, d := range [][2]string{row.exists, row.ghost} {
			if byID[secrets.DeviceID{ProductKey: d[0], DeviceName: d[1]}] != 0 && row.caller != "stranger" {
				t.Errorf("device %v, refused in every call, was looked up", d)
			}
		}
	}
}
