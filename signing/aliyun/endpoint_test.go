package aliyun_test

import (
	"strings"
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

func TestResolveEndpoint(t *testing.T) {
	const pk = "a1FakePK01"
	legacy := pk + ".iot-as-mqtt.cn-shanghai.aliyuncs.com"
	tests := []struct {
		name      string
		settings  signing.ProductSettings
		transport signing.Transport
		want      signing.Endpoint
	}{
		{"default tls", signing.ProductSettings{}, signing.TransportTLS,
			signing.Endpoint{Host: legacy, Port: 1883, URI: "mqtts://" + legacy + ":1883"}},
		{"default tcp", signing.ProductSettings{}, signing.TransportTCP,
			signing.Endpoint{Host: legacy, Port: 1883, URI: "tcp://" + legacy + ":1883"}},
		{"default wss", signing.ProductSettings{}, signing.TransportWebSocketTLS,
			signing.Endpoint{Host: legacy, Port: 443, URI: "wss://" + legacy + ":443"}},
		{"region", signing.ProductSettings{Region: "ap-southeast-1"}, signing.TransportTLS,
			signing.Endpoint{
				Host: pk + ".iot-as-mqtt.ap-southeast-1.aliyuncs.com", Port: 1883,
				URI: "mqtts://" + pk + ".iot-as-mqtt.ap-southeast-1.aliyuncs.com:1883",
			}},
		{"instance", signing.ProductSettings{InstanceID: "iot-06z00abc123"}, signing.TransportTLS,
			signing.Endpoint{
				Host: "iot-06z00abc123.mqtt.iothub.aliyuncs.com", Port: 1883,
				URI: "mqtts://iot-06z00abc123.mqtt.iothub.aliyuncs.com:1883",
			}},
		{"instance wins over region", signing.ProductSettings{Region: "cn-beijing", InstanceID: "iot-cn-0pp1"}, signing.TransportWebSocketTLS,
			signing.Endpoint{
				Host: "iot-cn-0pp1.mqtt.iothub.aliyuncs.com", Port: 443,
				URI: "wss://iot-cn-0pp1.mqtt.iothub.aliyuncs.com:443",
			}},
		{"host wins over both", signing.ProductSettings{Region: "cn-beijing", InstanceID: "iot-cn-0pp1", Host: "mqtt.example.com"}, signing.TransportTCP,
			signing.Endpoint{Host: "mqtt.example.com", Port: 1883, URI: "tcp://mqtt.example.com:1883"}},
		{"single-label host", signing.ProductSettings{Host: "broker"}, signing.TransportTLS,
			signing.Endpoint{Host: "broker", Port: 1883, URI: "mqtts://broker:1883"}},
		{"mixed-case host", signing.ProductSettings{Host: "MQTT.Example.COM"}, signing.TransportTLS,
			signing.Endpoint{Host: "MQTT.Example.COM", Port: 1883, URI: "mqtts://MQTT.Example.COM:1883"}},
		{"ipv4 host", signing.ProductSettings{Host: "10.0.0.1"}, signing.TransportTCP,
			signing.Endpoint{Host: "10.0.0.1", Port: 1883, URI: "tcp://10.0.0.1:1883"}},
		{"tls port override", signing.ProductSettings{TCPPort: 1, TLSPort: 8883, WSSPort: 65535}, signing.TransportTLS,
			signing.Endpoint{Host: legacy, Port: 8883, URI: "mqtts://" + legacy + ":8883"}},
		{"tcp port override", signing.ProductSettings{TCPPort: 1, TLSPort: 8883, WSSPort: 65535}, signing.TransportTCP,
			signing.Endpoint{Host: legacy, Port: 1, URI: "tcp://" + legacy + ":1"}},
		{"wss port override", signing.ProductSettings{TCPPort: 1, TLSPort: 8883, WSSPort: 65535}, signing.TransportWebSocketTLS,
			signing.Endpoint{Host: legacy, Port: 65535, URI: "wss://" + legacy + ":65535"}},
		{"other transports' overrides ignored", signing.ProductSettings{TCPPort: 1884, WSSPort: 8443}, signing.TransportTLS,
			signing.Endpoint{Host: legacy, Port: 1883, URI: "mqtts://" + legacy + ":1883"}},
		{"longest labels", signing.ProductSettings{Region: strings.Repeat("r", 63)}, signing.TransportTLS,
			signing.Endpoint{
				Host: pk + ".iot-as-mqtt." + strings.Repeat("r", 63) + ".aliyuncs.com", Port: 1883,
				URI: "mqtts://" + pk + ".iot-as-mqtt." + strings.Repeat("r", 63) + ".aliyuncs.com:1883",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signing.ResolveEndpoint(pk, tc.settings, tc.transport)
			if err != nil || got != tc.want {
				t.Errorf("ResolveEndpoint(%q, %+v, %v) = %+v, %v; want %+v, nil", pk, tc.settings, tc.transport, got, err, tc.want)
			}
		})
	}
}

func TestResolveEndpointErrors(t *testing.T) {
	const (
		errLabel = "must be a DNS label: 1–63 characters of [a-z0-9-], not starting or ending with '-'"
		errHost  = "host: must be a DNS name of at most 253 characters: dot-separated labels of 1–63 characters of [A-Za-z0-9-], not starting or ending with '-'"
		errPort  = "must be between 1 and 65535, or 0 for the default"
	)
	label63 := strings.Repeat("a", 63)
	tests := []struct {
		name       string
		productKey string
		settings   signing.ProductSettings
		transport  signing.Transport
		wantField  string
		wantMsg    string
	}{
		{"bad productKey", "a1.pk", signing.ProductSettings{}, signing.TransportTLS, "productKey", errProductKey},
		{"productKey checked with explicit host", "", signing.ProductSettings{Host: "h.example"}, signing.TransportTLS, "productKey", errProductKey},
		{"unspecified transport", "pk", signing.ProductSettings{}, signing.TransportUnspecified, "transport", errTransport},
		{"unknown transport", "pk", signing.ProductSettings{}, signing.Transport(4), "transport", errTransport},
		{"upper-case region", "pk", signing.ProductSettings{Region: "CN-shanghai"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"region with dot", "pk", signing.ProductSettings{Region: "cn.shanghai"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"region with underscore", "pk", signing.ProductSettings{Region: "cn_shanghai"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"region leading hyphen", "pk", signing.ProductSettings{Region: "-cn"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"region trailing hyphen", "pk", signing.ProductSettings{Region: "cn-"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"region too long", "pk", signing.ProductSettings{Region: label63 + "a"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"region with slash", "pk", signing.ProductSettings{Region: "cn/x"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"region checked with explicit host", "pk", signing.ProductSettings{Region: "BAD", Host: "h.example"}, signing.TransportTLS, "region", "region: " + errLabel},
		{"instanceId with space", "pk", signing.ProductSettings{InstanceID: "iot 1"}, signing.TransportTLS, "instanceId", "instanceId: " + errLabel},
		{"instanceId upper case", "pk", signing.ProductSettings{InstanceID: "IOT-1"}, signing.TransportTLS, "instanceId", "instanceId: " + errLabel},
		{"instanceId with dot", "pk", signing.ProductSettings{InstanceID: "evil.example.com#"}, signing.TransportTLS, "instanceId", "instanceId: " + errLabel},
		{"instanceId trailing hyphen", "pk", signing.ProductSettings{InstanceID: "iot-"}, signing.TransportTLS, "instanceId", "instanceId: " + errLabel},
		{"host with space", "pk", signing.ProductSettings{Host: "a b.com"}, signing.TransportTLS, "host", errHost},
		{"host with port", "pk", signing.ProductSettings{Host: "a.com:1883"}, signing.TransportTLS, "host", errHost},
		{"host with path", "pk", signing.ProductSettings{Host: "a.com/x"}, signing.TransportTLS, "host", errHost},
		{"host with userinfo", "pk", signing.ProductSettings{Host: "u@a.com"}, signing.TransportTLS, "host", errHost},
		{"host with scheme", "pk", signing.ProductSettings{Host: "tcp://a.com"}, signing.TransportTLS, "host", errHost},
		{"ipv6 host", "pk", signing.ProductSettings{Host: "[::1]"}, signing.TransportTLS, "host", errHost},
		{"host trailing dot", "pk", signing.ProductSettings{Host: "a.com."}, signing.TransportTLS, "host", errHost},
		{"host leading dot", "pk", signing.ProductSettings{Host: ".a.com"}, signing.TransportTLS, "host", errHost},
		{"host empty label", "pk", signing.ProductSettings{Host: "a..com"}, signing.TransportTLS, "host", errHost},
		{"host label leading hyphen", "pk", signing.ProductSettings{Host: "-a.com"}, signing.TransportTLS, "host", errHost},
		{"host label trailing hyphen", "pk", signing.ProductSettings{Host: "a-.com"}, signing.TransportTLS, "host", errHost},
		{"host label too long", "pk", signing.ProductSettings{Host: label63 + "a.com"}, signing.TransportTLS, "host", errHost},
		{"host too long", "pk", signing.ProductSettings{Host: strings.Repeat(label63+".", 3) + strings.Repeat("a", 62)}, signing.TransportTLS, "host", errHost},
		{"host non-ascii", "pk", signing.ProductSettings{Host: "bücher.example"}, signing.TransportTLS, "host", errHost},
		{"negative tcp port", "pk", signing.ProductSettings{TCPPort: -1}, signing.TransportTLS, "tcpPort", "tcpPort: " + errPort},
		{"tls port too big", "pk", signing.ProductSettings{TLSPort: 65536}, signing.TransportTCP, "tlsPort", "tlsPort: " + errPort},
		{"wss port too big", "pk", signing.ProductSettings{WSSPort: 1 << 20}, signing.TransportTLS, "wssPort", "wssPort: " + errPort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signing.ResolveEndpoint(tc.productKey, tc.settings, tc.transport)
			if got != (signing.Endpoint{}) {
				t.Errorf("ResolveEndpoint returned %+v alongside an error, want zero Endpoint", got)
			}
			checkFieldError(t, "ResolveEndpoint", err, tc.wantField, tc.wantMsg)
		})
	}
}

func TestProductSettingsValidate(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	valid := []signing.ProductSettings{
		{},
		{Region: "cn-shanghai", InstanceID: "iot-06z00abc123", Host: "x.example.com", TCPPort: 1, TLSPort: 65535, WSSPort: 443},
		{Region: "a", InstanceID: "0"},
		{Region: label63, InstanceID: label63},
		// 253 characters.
		{Host: strings.Repeat(label63+".", 3) + strings.Repeat("a", 61)},
	}
	for _, s := range valid {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v, want nil", s, err)
		}
	}
	// The first invalid field, in declaration order, is reported.
	s := signing.ProductSettings{InstanceID: "-", Host: "-", TCPPort: -1}
	checkFieldError(t, "Validate", s.Validate(), "instanceId",
		"instanceId: must be a DNS label: 1–63 characters of [a-z0-9-], not starting or ending with '-'")
}
