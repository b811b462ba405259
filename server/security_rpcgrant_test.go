package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// descriptorRPCs are SignerService's methods as signer.proto's descriptor
// lists them, unary and streaming alike.
func descriptorRPCs(t *testing.T) []string {
	t.Helper()
	sd := signerv1.File_signer_v1_signer_proto.Services().ByName("SignerService")
	var names []string
	streams := 0
	for i := 0; i < sd.Methods().Len(); i++ {
		m := sd.Methods().Get(i)
		names = append(names, string(m.Name()))
		if m.IsStreamingServer() {
			streams++
		}
	}
	if streams == 0 {
		t.Fatal("SignerService has no server-streaming RPC: this test would not cover one")
	}
	return names
}

const (
	grantDev = "dev-0001"
	grantGW  = "gw-0001"
	grantSub = "sub-0001"
)

// callRPC calls rpc as c over gRPC on product A's devices and returns the
// call's code and, for batches and streams, each item's code.
func callRPC(t *testing.T, c *caller, rpc string) (codes.Code, []codes.Code) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if c.bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.bearer)
	}
	item := []*signerv1.SignMqttConnectRequest{{ProductKey: pkA, DeviceName: grantDev}}
	var err error
	var items []codes.Code
	switch rpc {
	case "SignMqttConnect":
		_, err = c.grpc.SignMqttConnect(ctx, &signerv1.SignMqttConnectRequest{ProductKey: pkA, DeviceName: grantDev})
	case "PreVerify":
		_, err = c.grpc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: pkA, DeviceName: grantDev})
	case "SignSubDeviceLogin":
		_, err = c.grpc.SignSubDeviceLogin(ctx, &signerv1.SignSubDeviceLoginRequest{ProductKey: pkA, DeviceName: grantGW,
			SubDevices: []*signerv1.SubDevice{{ProductKey: pkA, DeviceName: grantSub}}})
	case "RegisterDevice":
		_, err = c.grpc.RegisterDevice(ctx, &signerv1.RegisterDeviceRequest{ProductKey: pkA, DeviceName: "dev-new1"})
	case "BatchSignMqttConnect":
		var resp *signerv1.BatchSignMqttConnectResponse
		resp, err = c.grpc.BatchSignMqttConnect(ctx, &signerv1.BatchSignMqttConnectRequest{Requests: item})
		items = itemCodes(resp)
	case "StreamSignMqttConnect":
		items, err = streamCodes(ctx, c, item)
	default:
		i := slices.IndexFunc(platformRPCs, func(r platformRPC) bool { return r.rpc == rpc })
		if i < 0 {
			t.Fatalf("RPC %s has no call in this test: add one, so that its grant is proven too", rpc)
		}
		r := platformRPCs[i]
		err = r.call(ctx, c.grpc, r.product(platProduct), platDev)
	}
	return status.Code(err), items
}

// streamCodes runs a StreamSignMqttConnect to its end.
func streamCodes(ctx context.Context, c *caller, items []*signerv1.SignMqttConnectRequest) ([]codes.Code, error) {
	st, err := c.grpc.StreamSignMqttConnect(ctx, &signerv1.StreamSignMqttConnectRequest{Requests: items})
	if err != nil {
		return nil, err
	}
	var out []codes.Code
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, codes.Code(r.GetError().GetCode()))
	}
}

// TestEveryRPCGrantableByName gives one backend per RPC of the service (as
// the descriptor lists them, the streaming one included) a grant of that RPC
// alone, by name, and calls every RPC as each of them through the real
// server: the granted RPC passes authorization, every other is
// PERMISSION_DENIED, and a batch or stream the caller is not granted is
// refused as a whole. Issue 12: StreamSignMqttConnect could not be named,
// and a backend with any grant could open a stream.
func TestEveryRPCGrantableByName(t *testing.T) {
	rpcs := descriptorRPCs(t)
	backendID := func(rpc string) string { return "spiffe://signerd.test/only/" + rpc }
	var policy strings.Builder
	policy.WriteString("deviceRpcs: [SignMqttConnect, StreamSignMqttConnect, SignSubDeviceLogin]\n")
	fmt.Fprintf(&policy, "gateways:\n  - gateway: %s/%s\n    subDevices: [%s/%s]\n", pkA, grantGW, pkA, grantSub)
	policy.WriteString("backends:\n")
	for _, rpc := range rpcs {
		fmt.Fprintf(&policy, "  - identity: %s\n    products: [%s, \"*:*\"]\n    rpcs: [%s]\n", backendID(rpc), pkA, rpc)
	}
	fmt.Fprintf(&policy, "  - identity: %s\n    products: [%s]\n    rpcs: [StreamSignMqttConnect]\n", jwtProvA, pkA)
	s := startSecure(t, secOptions{policy: policy.String()})
	for _, dn := range []string{grantDev, grantGW, grantSub, "dev-0002"} {
		s.putSecret(t, pkA, dn)
	}

	for _, granted := range rpcs {
		cert := s.ca.Backend(t, backendID(granted))
		c := s.newCaller(t, "backend:"+backendID(granted), &cert, "")
		for _, rpc := range rpcs {
			code, items := callRPC(t, c, rpc)
			switch {
			case rpc != granted && code != codes.PermissionDenied:
				t.Errorf("backend granted only %s: %s answered %v (items %v), want PermissionDenied", granted, rpc, code, items)
			case rpc == granted && (code == codes.PermissionDenied || code == codes.Unauthenticated):
				t.Errorf("backend granted %s by name: %s answered %v", granted, rpc, code)
			case rpc == granted && slices.Contains([]string{"SignMqttConnect", "SignSubDeviceLogin", "BatchSignMqttConnect", "StreamSignMqttConnect"}, rpc) &&
				(code != codes.OK || slices.ContainsFunc(items, func(c codes.Code) bool { return c != codes.OK })):
				t.Errorf("backend granted %s by name: answered %v, items %v; want OK throughout", granted, code, items)
			}
		}
	}

	t.Run("stream by a JWT backend", func(t *testing.T) {
		c := s.newCaller(t, "backend:"+jwtProvA, nil, s.jwt.es256(t, validClaims(jwtProvA)))
		if code, items := callRPC(t, c, "StreamSignMqttConnect"); code != codes.OK || !slices.Equal(items, []codes.Code{codes.OK}) {
			t.Errorf("JWT backend granted StreamSignMqttConnect: %v, items %v; want OK, [OK]", code, items)
		}
		if code, _ := callRPC(t, c, "SignMqttConnect"); code != codes.PermissionDenied {
			t.Errorf("JWT backend granted only the stream: SignMqttConnect answered %v, want PermissionDenied", code)
		}
	})

	t.Run("stream over REST", func(t *testing.T) {
		body := `{"requests":[{"productKey":"` + pkA + `","deviceName":"` + grantDev + `"}]}`
		for _, tc := range []struct {
			rpc  string
			want int
		}{{"StreamSignMqttConnect", http.StatusOK}, {"SignMqttConnect", http.StatusForbidden}, {"BatchSignMqttConnect", http.StatusForbidden}} {
			cert := s.ca.Backend(t, backendID(tc.rpc))
			c := s.newCaller(t, "backend:"+backendID(tc.rpc), &cert, "")
			resp, err := c.http.Post(s.base+"/v1/devices:streamSignMqttConnect", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("REST stream by a backend granted only %s: HTTP %d %s, want %d", tc.rpc, resp.StatusCode, raw, tc.want)
			}
			if tc.want == http.StatusOK && !strings.Contains(string(raw), `"password"`) {
				t.Errorf("REST stream by a backend granted it: no credentials in %s", raw)
			}
		}
	})

	t.Run("devices stream for themselves only", func(t *testing.T) {
		cert := s.ca.Device(t, pkA, grantDev)
		d := s.newCaller(t, "device:"+pkA+"/"+grantDev, &cert, "")
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		items, err := streamCodes(ctx, d, []*signerv1.SignMqttConnectRequest{{ProductKey: pkA, DeviceName: grantDev}, {ProductKey: pkA, DeviceName: "dev-0002"}})
		if err != nil || !slices.Equal(items, []codes.Code{codes.OK, codes.PermissionDenied}) {
			t.Errorf("device with StreamSignMqttConnect in deviceRpcs: items %v, %v; want [OK PermissionDenied]", items, err)
		}
		// BatchSignMqttConnect is not in deviceRpcs.
		if code, _ := callRPC(t, d, "BatchSignMqttConnect"); code != codes.PermissionDenied {
			t.Errorf("device without BatchSignMqttConnect in deviceRpcs: batch answered %v, want PermissionDenied", code)
		}
	})

	t.Run("audit", func(t *testing.T) {
		// The refused stream's record says which grant was missing.
		want := "policy: backend:" + backendID("SignMqttConnect") + " may not call StreamSignMqttConnect"
		found := false
		for _, line := range strings.Split(strings.TrimSpace(s.audit.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("audit line is not JSON: %q", line)
			}
			if m["rpc"] == "StreamSignMqttConnect" && m["reason"] == want && m["outcome"] == "denied" {
				found = true
			}
		}
		if !found {
			t.Errorf("no audit record of the refused stream with reason %q", want)
		}
	})
}
