package auth_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		// want are substrings of the error, naming the field.
		want []string
	}{
		{name: "not YAML", data: "backends: [", want: []string{"parse policy"}},
		{name: "unknown top-level key", data: "backend:\n  - identity: x\n", want: []string{`"backend"`}},
		{name: "unknown grant key", data: "backends:\n  - identity: spiffe://td/a\n    products: [\"*\"]\n    rpcs: [\"*\"]\n    product: [a1PK]\n", want: []string{`"backends[0].product"`}},
		{name: "products not a list", data: "backends:\n  - identity: spiffe://td/a\n    products: a1PK\n    rpcs: [\"*\"]\n", want: []string{"products"}},
		{name: "missing identity", data: "backends:\n  - products: [a1PK]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].identity", "required"}},
		{name: "duplicate identity", data: "backends:\n  - identity: spiffe://td/a\n    products: [a1PK]\n    rpcs: [\"*\"]\n  - identity: spiffe://td/a\n    products: [b1PK]\n    rpcs: [\"*\"]\n",
			want: []string{"backends[1].identity", "listed twice"}},
		{name: "missing products", data: "backends:\n  - identity: spiffe://td/a\n    rpcs: [\"*\"]\n", want: []string{"backends[0].products", "required"}},
		{name: "empty products", data: "backends:\n  - identity: spiffe://td/a\n    products: []\n    rpcs: [\"*\"]\n", want: []string{"backends[0].products"}},
		{name: "bad productKey", data: "backends:\n  - identity: spiffe://td/a\n    products: [a1-PK]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].products", "a1-PK"}},
		{name: "productKey glob", data: "backends:\n  - identity: spiffe://td/a\n    products: [\"a1*\"]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].products", "a1*"}},
		{name: "missing rpcs", data: "backends:\n  - identity: spiffe://td/a\n    products: [a1PK]\n", want: []string{"backends[0].rpcs", "required"}},
		{name: "unknown rpc", data: "backends:\n  - identity: spiffe://td/a\n    products: [a1PK]\n    rpcs: [SignMqtConnect]\n", want: []string{"backends[0].rpcs", "SignMqtConnect"}},
		{name: "rpc spelt as the REST verb", data: "backends:\n  - identity: spiffe://td/a\n    products: [a1PK]\n    rpcs: [signMqttConnect]\n", want: []string{"backends[0].rpcs", "signMqttConnect"}},
		{name: "rpc as a full method", data: "backends:\n  - identity: spiffe://td/a\n    products: [a1PK]\n    rpcs: [/signer.v1.SignerService/SignMqttConnect]\n", want: []string{"backends[0].rpcs"}},
		{name: "unknown device rpc", data: "deviceRpcs: [SignMqttConnect, Register]\n", want: []string{"deviceRpcs", "Register"}},
		{name: "stream rpc in lower case", data: "backends:\n  - identity: spiffe://td/a\n    products: [a1PK]\n    rpcs: [streamSignMqttConnect]\n", want: []string{"backends[0].rpcs", "streamSignMqttConnect"}},
		{name: "identity not a valid SPIFFE ID", data: "backends:\n  - identity: spiffe://td/a/../admin\n    products: [a1PK]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].identity", "SPIFFE"}},
		{name: "identity percent-encoded", data: "backends:\n  - identity: spiffe://td/%61dmin\n    products: [a1PK]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].identity"}},
		{name: "identity SPIFFE ID in capitals", data: "backends:\n  - identity: SPIFFE://TD/admin\n    products: [a1PK]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].identity"}},
		{name: "identity with a space", data: "backends:\n  - identity: \"factory test\"\n    products: [a1PK]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].identity", "printable ASCII"}},
		{name: "identity with a homoglyph", data: "backends:\n  - identity: \"\\u0430dmin\"\n    products: [a1PK]\n    rpcs: [\"*\"]\n", want: []string{"backends[0].identity", "printable ASCII"}},
		{name: "wildcard device rpcs", data: "deviceRpcs: [\"*\"]\n", want: []string{"deviceRpcs", "*"}},
		{name: "every problem at once", data: "backends:\n  - products: [a1-PK]\n  - identity: spiffe://td/b\n    products: [a1PK]\n    rpcs: [Nope]\n",
			want: []string{"backends[0].identity", "backends[0].products", "backends[0].rpcs", "backends[1].rpcs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := auth.ParsePolicy([]byte(tc.data))
			if err == nil {
				t.Fatalf("ParsePolicy(%q) = %+v, want an error", tc.data, p)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParsePolicy(%q) error %q does not contain %q", tc.data, err, w)
				}
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	yaml := `
backends:
  - identity: spiffe://signerd.test/fleet/provisioner
    products: [a1ProdA, a1ProdB]
    rpcs: [SignMqttConnect]
  - identity: factory-test
    products: ["*"]
    rpcs: ["*"]
`
	json := `{"backends":[{"identity":"spiffe://signerd.test/fleet/provisioner","products":["a1ProdA","a1ProdB"],"rpcs":["SignMqttConnect"]},` +
		`{"identity":"factory-test","products":["*"],"rpcs":["*"]}]}`
	for name, data := range map[string]string{"yaml": yaml, "json": json} {
		t.Run(name, func(t *testing.T) {
			p, err := auth.ParsePolicy([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			prov := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://signerd.test/fleet/provisioner", Method: "mtls"}
			factory := auth.Identity{Kind: auth.KindBackend, Name: "factory-test", Method: "jwt"}
			check := func(id auth.Identity, rpc, pk string, allowed bool) {
				t.Helper()
				err := p.Authorize(id, rpc, pk, "dev-0001")
				if allowed && err != nil {
					t.Errorf("%s %s %s: %v, want allowed", id, rpc, pk, err)
				}
				if !allowed && !errors.Is(err, auth.ErrDenied) {
					t.Errorf("%s %s %s: %v, want ErrDenied", id, rpc, pk, err)
				}
			}
			check(prov, "SignMqttConnect", "a1ProdA", true)
			check(prov, "SignMqttConnect", "a1ProdB", true)
			check(prov, "SignMqttConnect", "a1ProdC", false)
			check(prov, "PreVerify", "a1ProdA", false)
			check(factory, "SignMqttConnect", "a1ProdC", true)
			check(factory, "PreVerify", "a1AnyProduct", true)
		})
	}
	if p, err := auth.ParsePolicy([]byte("")); err != nil || len(p.Backends) != 0 {
		t.Errorf("empty policy: %+v, %v; want no backends and no error", p, err)
	}
}

func TestAuthorize(t *testing.T) {
	p, err := auth.NewPolicy(
		auth.Grant{Identity: "spiffe://td/prov-a", Products: []string{"a1ProdA"}, RPCs: []string{"SignMqttConnect"}},
		auth.Grant{Identity: "spiffe://td/prov-ab", Products: []string{"a1ProdA", "a1ProdB"}, RPCs: []string{"SignMqttConnect", "PreVerify"}},
		auth.Grant{Identity: "spiffe://td/all-products", Products: []string{"*"}, RPCs: []string{"PreVerify"}},
		auth.Grant{Identity: "spiffe://td/all-rpcs", Products: []string{"a1ProdB"}, RPCs: []string{"*"}},
		auth.Grant{Identity: "admin", Products: []string{"*"}, RPCs: []string{"*"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	dev := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1ProdA", DeviceName: "dev:0001@x", Method: "mtls"}
	backend := func(name string) auth.Identity {
		return auth.Identity{Kind: auth.KindBackend, Name: name, Method: "mtls"}
	}
	tests := []struct {
		id          auth.Identity
		rpc, pk, dn string
		allowed     bool
		name        string
	}{
		{name: "device itself", id: dev, rpc: "SignMqttConnect", pk: "a1ProdA", dn: "dev:0001@x", allowed: true},
		{name: "device itself, PreVerify", id: dev, rpc: "PreVerify", pk: "a1ProdA", dn: "dev:0001@x", allowed: true},
		{name: "device, other device", id: dev, rpc: "SignMqttConnect", pk: "a1ProdA", dn: "dev:0002@x"},
		{name: "device, other product", id: dev, rpc: "SignMqttConnect", pk: "a1ProdB", dn: "dev:0001@x"},
		{name: "device, name case", id: dev, rpc: "SignMqttConnect", pk: "a1ProdA", dn: "DEV:0001@X"},
		{name: "device, productKey case", id: dev, rpc: "SignMqttConnect", pk: "A1PRODA", dn: "dev:0001@x"},
		{name: "device, name prefix", id: dev, rpc: "SignMqttConnect", pk: "a1ProdA", dn: "dev:0001@"},
		{name: "device, name with suffix", id: dev, rpc: "SignMqttConnect", pk: "a1ProdA", dn: "dev:0001@x "},
		{name: "device, percent-encoded name", id: dev, rpc: "SignMqttConnect", pk: "a1ProdA", dn: "dev%3A0001@x"},
		{name: "device, empty names", id: dev, rpc: "SignMqttConnect"},
		{name: "device, non-device RPC", id: dev, rpc: "Register", pk: "a1ProdA", dn: "dev:0001@x"},
		{name: "device, empty RPC", id: dev, rpc: "", pk: "a1ProdA", dn: "dev:0001@x"},
		{name: "device with a backend's name", id: auth.Identity{Kind: auth.KindDevice, ProductKey: "a1ProdA", DeviceName: "dev-0001", Name: "admin"},
			rpc: "SignMqttConnect", pk: "a1ProdB", dn: "dev-0002"},

		{name: "backend granted product and RPC", id: backend("spiffe://td/prov-a"), rpc: "SignMqttConnect", pk: "a1ProdA", dn: "any-device", allowed: true},
		{name: "backend, ungranted product", id: backend("spiffe://td/prov-a"), rpc: "SignMqttConnect", pk: "a1ProdB", dn: "any-device"},
		{name: "backend, productKey case", id: backend("spiffe://td/prov-a"), rpc: "SignMqttConnect", pk: "A1PRODA", dn: "any-device"},
		{name: "backend, ungranted RPC", id: backend("spiffe://td/prov-a"), rpc: "PreVerify", pk: "a1ProdA", dn: "any-device"},
		{name: "backend, RPC case", id: backend("spiffe://td/prov-a"), rpc: "signMqttConnect", pk: "a1ProdA", dn: "any-device"},
		{name: "backend with two products, second", id: backend("spiffe://td/prov-ab"), rpc: "PreVerify", pk: "a1ProdB", dn: "any-device", allowed: true},
		{name: "backend with two products, third", id: backend("spiffe://td/prov-ab"), rpc: "PreVerify", pk: "a1ProdC", dn: "any-device"},
		{name: "product wildcard", id: backend("spiffe://td/all-products"), rpc: "PreVerify", pk: "a1Whatever", dn: "any-device", allowed: true},
		{name: "product wildcard, ungranted RPC", id: backend("spiffe://td/all-products"), rpc: "SignMqttConnect", pk: "a1Whatever", dn: "any-device"},
		{name: "RPC wildcard", id: backend("spiffe://td/all-rpcs"), rpc: "PreVerify", pk: "a1ProdB", dn: "any-device", allowed: true},
		{name: "RPC wildcard, ungranted product", id: backend("spiffe://td/all-rpcs"), rpc: "SignMqttConnect", pk: "a1ProdA", dn: "any-device"},
		{name: "both wildcards", id: auth.Identity{Kind: auth.KindBackend, Name: "admin", Method: "jwt"}, rpc: "SignMqttConnect", pk: "a1Any", dn: "any-device", allowed: true},
		{name: "unknown backend", id: backend("spiffe://td/stranger"), rpc: "SignMqttConnect", pk: "a1ProdA", dn: "any-device"},
		{name: "backend name case", id: backend("spiffe://td/PROV-A"), rpc: "SignMqttConnect", pk: "a1ProdA", dn: "any-device"},
		{name: "backend with empty name", id: backend(""), rpc: "SignMqttConnect", pk: "a1ProdA", dn: "any-device"},
		{name: "backend kind with device fields", id: auth.Identity{Kind: auth.KindBackend, ProductKey: "a1ProdC", DeviceName: "dev-0001"},
			rpc: "SignMqttConnect", pk: "a1ProdC", dn: "dev-0001"},
		{name: "anonymous", id: auth.Identity{Kind: auth.KindAnonymous, Name: "admin"}, rpc: "SignMqttConnect", pk: "a1ProdA", dn: "dev-0001"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Authorize(tc.id, tc.rpc, tc.pk, tc.dn)
			if tc.allowed && err != nil {
				t.Errorf("Authorize(%+v, %q, %q, %q) = %v, want allowed", tc.id, tc.rpc, tc.pk, tc.dn, err)
			}
			if !tc.allowed && err != auth.ErrDenied {
				t.Errorf("Authorize(%+v, %q, %q, %q) = %v, want ErrDenied", tc.id, tc.rpc, tc.pk, tc.dn, err)
			}
		})
	}
}

func TestDeviceRPCs(t *testing.T) {
	p, err := auth.ParsePolicy([]byte("deviceRpcs: [SignMqttConnect]\n"))
	if err != nil {
		t.Fatal(err)
	}
	dev := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1ProdA", DeviceName: "dev-0001"}
	if err := p.Authorize(dev, "SignMqttConnect", "a1ProdA", "dev-0001"); err != nil {
		t.Errorf("SignMqttConnect for itself: %v", err)
	}
	if err := p.Authorize(dev, "PreVerify", "a1ProdA", "dev-0001"); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("PreVerify for itself with deviceRpcs [SignMqttConnect]: %v, want ErrDenied", err)
	}
}

// serviceRPCs are SignerService's methods as its proto file descriptor lists
// them, unary and streaming alike: the list a policy must accept, derived
// independently of the gRPC ServiceDesc that auth reads.
func serviceRPCs(t *testing.T) []string {
	t.Helper()
	sd := signerv1.File_signer_v1_signer_proto.Services().ByName("SignerService")
	if sd == nil {
		t.Fatal("SignerService is not in signer.proto's descriptor")
	}
	var names []string
	streaming := 0
	for i := 0; i < sd.Methods().Len(); i++ {
		m := sd.Methods().Get(i)
		names = append(names, string(m.Name()))
		if m.IsStreamingServer() || m.IsStreamingClient() {
			streaming++
		}
	}
	if streaming == 0 {
		t.Fatal("SignerService has no streaming RPC: the test would not cover one")
	}
	return names
}

// TestEveryRPCIsNameable grants each RPC of the service alone, by name, to
// a backend (rpcs) and to devices (deviceRpcs), and checks that the grant
// allows that RPC and no other.
func TestEveryRPCIsNameable(t *testing.T) {
	all := serviceRPCs(t)
	if got := slices.Sorted(slices.Values(auth.RPCNames())); !slices.Equal(got, slices.Sorted(slices.Values(all))) {
		t.Errorf("auth.RPCNames() = %v, want the descriptor's %v", got, all)
	}
	backend := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://td/only-one", Method: "mtls"}
	dev := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1ProdA", DeviceName: "dev-0001", Method: "mtls"}
	for _, rpc := range all {
		t.Run(rpc, func(t *testing.T) {
			p, err := auth.ParsePolicy([]byte(fmt.Sprintf(
				"deviceRpcs: [%s]\nbackends:\n  - identity: %s\n    products: [a1ProdA]\n    rpcs: [%s]\n", rpc, backend.Name, rpc)))
			if err != nil {
				t.Fatalf("a policy granting %s by name: %v", rpc, err)
			}
			for _, other := range all {
				want := other == rpc
				if got := p.Authorize(backend, other, "a1ProdA", "dev-0009") == nil; got != want {
					t.Errorf("backend granted [%s]: Authorize(%s) allowed = %v, want %v", rpc, other, got, want)
				}
				if got := p.MayCall(backend, other); got != want {
					t.Errorf("backend granted [%s]: MayCall(%s) = %v, want %v", rpc, other, got, want)
				}
				if got := p.Authorize(dev, other, "a1ProdA", "dev-0001") == nil; got != want {
					t.Errorf("deviceRpcs [%s]: Authorize(%s) for itself allowed = %v, want %v", rpc, other, got, want)
				}
				if got := p.MayCall(dev, other); got != want {
					t.Errorf("deviceRpcs [%s]: MayCall(%s) = %v, want %v", rpc, other, got, want)
				}
			}
			// The grant stays bound to its products and to the device itself.
			if p.Authorize(backend, rpc, "b1ProdB", "dev-0009") == nil {
				t.Errorf("backend granted %s on a1ProdA: allowed on b1ProdB", rpc)
			}
			if p.Authorize(dev, rpc, "a1ProdA", "dev-0002") == nil {
				t.Errorf("deviceRpcs [%s]: allowed for another device", rpc)
			}
		})
	}
	// "*" is every RPC for backends, streaming included.
	p, err := auth.NewPolicy(auth.Grant{Identity: backend.Name, Products: []string{"*"}, RPCs: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rpc := range all {
		if !p.MayCall(backend, rpc) || p.Authorize(backend, rpc, "a1Any", "dev-0001") != nil {
			t.Errorf("rpcs [\"*\"]: %s not granted", rpc)
		}
	}
}
