package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/auth"
)

const gatewayPolicy = `
deviceRpcs: [SignMqttConnect, PreVerify, SignSubDeviceLogin]
backends:
  - identity: spiffe://signerd.test/gateways
    products: [a1GwPK, a1Sensors]
    rpcs: [SignSubDeviceLogin]
  - identity: spiffe://signerd.test/gw-only
    products: [a1GwPK]
    rpcs: [SignSubDeviceLogin]
  - identity: spiffe://signerd.test/wrong-rpc
    products: ["*"]
    rpcs: [SignMqttConnect]
gateways:
  - gateway: a1GwPK/gw-0001
    subDevices: ["a1Sensors/*", "a1Meters/meter-0001"]
  - gateway: a1GwPK/gw-0002
    subDevices: ["a1Sensors/sensor-0009"]
`

func TestAuthorizeSubDevice(t *testing.T) {
	p, err := auth.ParsePolicy([]byte(gatewayPolicy))
	if err != nil {
		t.Fatal(err)
	}
	gw1 := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1GwPK", DeviceName: "gw-0001", Method: "mtls"}
	gw2 := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1GwPK", DeviceName: "gw-0002", Method: "mtls"}
	sensor := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1Sensors", DeviceName: "sensor-0001", Method: "mtls"}
	backend := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://signerd.test/gateways", Method: "mtls"}
	gwOnly := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://signerd.test/gw-only", Method: "mtls"}
	wrongRPC := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://signerd.test/wrong-rpc", Method: "jwt"}
	stranger := auth.Identity{Kind: auth.KindBackend, Name: "spiffe://signerd.test/nobody", Method: "jwt"}

	tests := []struct {
		name        string
		id          auth.Identity
		gw, sub     [2]string
		wantAllowed bool
	}{
		{"gateway, sub-device by product wildcard", gw1, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, true},
		{"gateway, sub-device by name", gw1, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Meters", "meter-0001"}, true},
		{"gateway, another meter", gw1, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Meters", "meter-0002"}, false},
		{"gateway, unassigned product", gw1, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Other", "dev-0001"}, false},
		{"gateway, itself as sub-device", gw1, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1GwPK", "gw-0001"}, false},
		{"second gateway, its own sub-device", gw2, [2]string{"a1GwPK", "gw-0002"}, [2]string{"a1Sensors", "sensor-0009"}, true},
		{"second gateway, the first's sub-device", gw2, [2]string{"a1GwPK", "gw-0002"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"device for another gateway", gw2, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"sub-device for itself", sensor, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"unknown gateway", gw1, [2]string{"a1GwPK", "gw-0003"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"backend with both products", backend, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, true},
		{"backend, unassigned sub-device", backend, [2]string{"a1GwPK", "gw-0002"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"backend without the sub-device's product", backend, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Meters", "meter-0001"}, false},
		{"backend with the gateway's product only", gwOnly, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"backend without the RPC", wrongRPC, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"backend not in the policy", stranger, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, false},
		{"anonymous", auth.Identity{}, [2]string{"a1GwPK", "gw-0001"}, [2]string{"a1Sensors", "sensor-0001"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.AuthorizeSubDevice(tc.id, tc.gw[0], tc.gw[1], tc.sub[0], tc.sub[1])
			if tc.wantAllowed && err != nil {
				t.Errorf("denied: %v", err)
			}
			if !tc.wantAllowed && !errors.Is(err, auth.ErrDenied) {
				t.Errorf("= %v, want ErrDenied", err)
			}
		})
	}
}

// A gateway device needs SignSubDeviceLogin in deviceRpcs: the assignment
// alone does not make a new RPC callable by devices.
func TestAuthorizeSubDeviceNeedsDeviceRPC(t *testing.T) {
	p, err := auth.ParsePolicy([]byte("gateways:\n  - gateway: a1GwPK/gw-0001\n    subDevices: [\"a1Sensors/*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	gw := auth.Identity{Kind: auth.KindDevice, ProductKey: "a1GwPK", DeviceName: "gw-0001", Method: "mtls"}
	if err := p.AuthorizeSubDevice(gw, "a1GwPK", "gw-0001", "a1Sensors", "sensor-0001"); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("gateway without SignSubDeviceLogin in deviceRpcs: %v, want ErrDenied", err)
	}
	if err := p.Authorize(gw, "SignSubDeviceLogin", "a1GwPK", "gw-0001"); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("Authorize: %v, want ErrDenied with the default deviceRpcs", err)
	}
}

func TestParsePolicyGatewayErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string
	}{
		{"missing gateway", "gateways:\n  - subDevices: [a1S/dev-0001]\n", []string{"gateways[0].gateway", "required"}},
		{"gateway without a name", "gateways:\n  - gateway: a1GwPK\n    subDevices: [a1S/dev-0001]\n", []string{"gateways[0].gateway", "a1GwPK"}},
		{"gateway wildcard", "gateways:\n  - gateway: a1GwPK/*\n    subDevices: [a1S/dev-0001]\n", []string{"gateways[0].gateway", "a1GwPK/*"}},
		{"bad gateway name", "gateways:\n  - gateway: a1GwPK/g|w\n    subDevices: [a1S/dev-0001]\n", []string{"gateways[0].gateway"}},
		{"gateway twice", "gateways:\n  - gateway: a1GwPK/gw-0001\n    subDevices: [a1S/dev-0001]\n  - gateway: a1GwPK/gw-0001\n    subDevices: [a1S/dev-0002]\n",
			[]string{"gateways[1].gateway", "listed twice"}},
		{"missing sub-devices", "gateways:\n  - gateway: a1GwPK/gw-0001\n", []string{"gateways[0].subDevices", "required"}},
		{"bad sub-device", "gateways:\n  - gateway: a1GwPK/gw-0001\n    subDevices: [a1-S/dev-0001]\n", []string{"gateways[0].subDevices", "a1-S/dev-0001"}},
		{"product glob", "gateways:\n  - gateway: a1GwPK/gw-0001\n    subDevices: [\"a1*/dev-0001\"]\n", []string{"gateways[0].subDevices"}},
		{"every device", "gateways:\n  - gateway: a1GwPK/gw-0001\n    subDevices: [\"*\"]\n", []string{"gateways[0].subDevices", `"*"`}},
		{"itself", "gateways:\n  - gateway: a1GwPK/gw-0001\n    subDevices: [a1GwPK/gw-0001]\n", []string{"gateways[0].subDevices", "the gateway itself"}},
		{"unknown key", "gateways:\n  - gateway: a1GwPK/gw-0001\n    devices: [a1S/dev-0001]\n", []string{"devices"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.ParsePolicy([]byte(tc.data))
			if err == nil {
				t.Fatalf("ParsePolicy(%q) accepted", tc.data)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
