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

	devid "github.com/signerd/signerd/device"
	"github.com/signerd/signerd/internal/pkitest"
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/platform/azure"
	"github.com/signerd/signerd/platform/huawei"
	"github.com/signerd/signerd/platform/onenet"
	"github.com/signerd/signerd/platform/tencent"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// platformSigners are every platform module's signers, configured as a
// server would be: the DPS scope and the Huawei host they need.
func platformSigners(t testing.TB) []platform.Signer {
	t.Helper()
	sections := map[string]string{
		"azure":  `{"dps": {"0ne00000A0A": {"groups": [{"name": "grp1", "registrations": ["*"]}]}}}`,
		"huawei": `{"host": "iot.example.test"}`,
	}
	var out []platform.Signer
	for _, m := range []platform.Module{azure.Module{}, tencent.Module{}, huawei.Module{}, onenet.Module{}} {
		var section []byte
		if s, ok := sections[m.Name()]; ok {
			section = []byte(s)
		}
		c, err := m.Configure(section)
		if err != nil {
			t.Fatalf("configure %s: %v", m.Name(), err)
		}
		out = append(out, c.Signers...)
	}
	return out
}

// platformRPC is one platform sign RPC, called for a device of its platform.
type platformRPC struct {
	rpc      string
	platform string
	scheme   string
	products bool
	call     func(ctx context.Context, c signerv1.SignerServiceClient, product, name string) error
}

var platformRPCs = []platformRPC{
	{"SignAzureMqttConnect", "azure", "azure-iot", true, func(ctx context.Context, c signerv1.SignerServiceClient, p, n string) error {
		_, err := c.SignAzureMqttConnect(ctx, &signerv1.SignAzureMqttConnectRequest{Hub: p, DeviceId: n})
		return err
	}},
	{"SignAzureDpsMqttConnect", "azure-dps", "azure-dps", true, func(ctx context.Context, c signerv1.SignerServiceClient, p, n string) error {
		_, err := c.SignAzureDpsMqttConnect(ctx, &signerv1.SignAzureDpsMqttConnectRequest{IdScope: p, RegistrationId: n})
		return err
	}},
	{"SignTencentMqttConnect", "tencent", "tencent-iot", true, func(ctx context.Context, c signerv1.SignerServiceClient, p, n string) error {
		_, err := c.SignTencentMqttConnect(ctx, &signerv1.SignTencentMqttConnectRequest{ProductId: p, DeviceName: n})
		return err
	}},
	{"SignHuaweiMqttConnect", "huawei", "huawei-iot", false, func(ctx context.Context, c signerv1.SignerServiceClient, _, n string) error {
		_, err := c.SignHuaweiMqttConnect(ctx, &signerv1.SignHuaweiMqttConnectRequest{DeviceId: n})
		return err
	}},
	{"SignOnenetMqttConnect", "onenet", "onenet-iot", true, func(ctx context.Context, c signerv1.SignerServiceClient, p, n string) error {
		_, err := c.SignOnenetMqttConnect(ctx, &signerv1.SignOnenetMqttConnectRequest{ProductId: p, DeviceName: n})
		return err
	}},
}

// Names every platform accepts: a product of 10 of [A-Z0-9] (Tencent's
// rule, valid everywhere else but for a DPS ID scope) and device names of
// letters, digits and '-'.
const (
	platProduct = "PRODA00001"
	platOther   = "PRODB00002"
	platScope   = "0ne00000A0A"
	platDev     = "dev-0001"
	platDev2    = "dev-0002"
	platGhost   = "dev-ghost"
)

func (r platformRPC) product(p string) string {
	switch {
	case !r.products:
		return ""
	case r.platform == "azure-dps" && p == platProduct:
		return platScope
	case r.platform == "azure-dps":
		return "0ne00000B0B"
	}
	return p
}

func (r platformRPC) uri(product, name string) string {
	if !r.products {
		return r.scheme + "://" + name
	}
	return r.scheme + "://" + product + "/" + name
}

// TestOneAuthorizerDecidesPlatformRPCs runs one table of denial cases
// through every platform sign RPC: a device of another platform with the
// same names, another device of the same platform, a backend whose grant
// is Alibaba's "*" or another product, a backend not in the policy. Each is
// refused by the one authorizer, with the same answer whether or not the
// device exists, without one secret-store lookup, and audited as denied for
// the device with its platform; the allowed rows of the same table get
// their login.
func TestOneAuthorizerDecidesPlatformRPCs(t *testing.T) {
	s := startSecure(t, secOptions{policy: `backends:
  - identity: ` + provA + `
    products: ["azure:` + platProduct + `", "azure-dps:` + platScope + `", "tencent:` + platProduct + `", "huawei:*", "onenet:` + platProduct + `"]
    rpcs: ["*"]
  - identity: ` + jwtProvA + `
    products: ["*:*"]
    rpcs: ["*"]
  - identity: spiffe://signerd.test/fleet/alibaba-all
    products: ["*"]
    rpcs: ["*"]
`})
	key := []byte("a platform device key, 32 bytes!")
	for _, r := range platformRPCs {
		for _, p := range []string{platProduct, platOther} {
			for _, n := range []string{platDev, platDev2} {
				id := devid.ID{Platform: r.platform, ProductKey: r.product(p), DeviceName: n}
				if r.platform == "azure-dps" {
					id = devid.ID{Platform: "azure-dps-group", ProductKey: r.product(p), DeviceName: "grp1"}
				}
				s.store.inner.(*secrets.Memory).Put(id, key)
			}
		}
		s.putSecret(t, platProduct, platDev) // the Alibaba device of the same names
	}
	aliCert := s.ca.Device(t, platProduct, platDev)
	aliAll := s.ca.Backend(t, "spiffe://signerd.test/fleet/alibaba-all")
	prov := s.ca.Backend(t, provA)
	strangerCert := s.ca.Backend(t, stranger)
	alibabaDevice := s.newCaller(t, "device:"+platProduct+"/"+platDev, &aliCert, "")
	alibabaAll := s.newCaller(t, "backend:spiffe://signerd.test/fleet/alibaba-all", &aliAll, "")
	provCaller := s.newCaller(t, "backend:"+provA, &prov, "")
	strangerCaller := s.newCaller(t, "backend:"+stranger, &strangerCert, "")
	jwtAll := s.newCaller(t, "backend:"+jwtProvA, nil, s.jwt.es256(t, validClaims(jwtProvA)))

	seq := 0
	call := func(c *caller, r platformRPC, product, name string) (codes.Code, string, string) {
		seq++
		reqID := fmt.Sprintf("plat-authz-%04d", seq)
		md := []string{"x-request-id", reqID}
		if c.bearer != "" {
			md = append(md, "authorization", "Bearer "+c.bearer)
		}
		ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), metadata.Pairs(md...)), patience)
		defer cancel()
		st := status.Convert(r.call(ctx, c.grpc, r.product(product), name))
		return st.Code(), st.Message(), reqID
	}
	type deniedCall struct {
		reqID, caller string
		dev           devid.ID
	}
	var audited []deniedCall
	for _, r := range platformRPCs {
		ownCert := s.ca.Issue(t, pkitest.Options{CommonName: "device", URIs: []string{r.uri(r.product(platProduct), platDev)}})
		own := s.newCaller(t, "device:"+devid.ID{Platform: r.platform, ProductKey: r.product(platProduct), DeviceName: platDev}.String(), &ownCert, "")
		denials := []struct {
			name         string
			c            *caller
			product, dev string
		}{
			{"an Alibaba device with the same names", alibabaDevice, platProduct, platDev},
			{"the platform's device for another device", own, platProduct, platDev2},
			{"a backend granted Alibaba's \"*\"", alibabaAll, platProduct, platDev},
			{"a backend, product not granted", provCaller, platOther, platDev},
			{"a backend not in the policy", strangerCaller, platProduct, platDev},
		}
		for _, d := range denials {
			if d.name == "a backend, product not granted" && !r.products {
				continue // huawei has no products: "huawei:*" is the grant
			}
			t.Run(r.rpc+"/"+d.name, func(t *testing.T) {
				before, _ := s.store.snapshot()
				code, msg, id := call(d.c, r, d.product, d.dev)
				ghostCode, ghostMsg, ghostID := call(d.c, r, d.product, platGhost)
				if after, _ := s.store.snapshot(); after != before {
					t.Errorf("the secret store was asked %d times for refused devices", after-before)
				}
				if code != codes.PermissionDenied || code != ghostCode || msg != ghostMsg {
					t.Errorf("%s: %v %q (missing device: %v %q), want one PERMISSION_DENIED for both", d.c.name, code, msg, ghostCode, ghostMsg)
				}
				p := r.product(d.product)
				audited = append(audited, deniedCall{id, d.c.name, devid.ID{Platform: r.platform, ProductKey: p, DeviceName: d.dev}},
					deniedCall{ghostID, d.c.name, devid.ID{Platform: r.platform, ProductKey: p, DeviceName: platGhost}})
			})
		}
		for _, a := range []struct {
			name string
			c    *caller
		}{{"the device for itself", own}, {"a backend granted the product", provCaller}, {"a JWT backend granted every platform", jwtAll}} {
			t.Run(r.rpc+"/allowed/"+a.name, func(t *testing.T) {
				if code, msg, _ := call(a.c, r, platProduct, platDev); code != codes.OK {
					t.Errorf("%s: %v %q, want OK", a.c.name, code, msg)
				}
			})
		}
	}

	records := map[string][]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s.audit.String()), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		records[m["request_id"]] = append(records[m["request_id"]], m)
	}
	for _, d := range audited {
		if !slices.ContainsFunc(records[d.reqID], func(r map[string]string) bool {
			return r["platform"] == d.dev.Platform && r["product_key"] == d.dev.ProductKey && r["device_name"] == d.dev.DeviceName &&
				r["caller"] == d.caller && r["outcome"] == "denied" && r["code"] == "PermissionDenied" &&
				(strings.HasPrefix(r["reason"], "policy: "+d.caller+" may not ") || d.caller == "backend:"+stranger)
		}) {
			t.Errorf("request %s (%s for %v): no denial of that device in its audit records %v", d.reqID, d.caller, d.dev, records[d.reqID])
		}
	}
}
