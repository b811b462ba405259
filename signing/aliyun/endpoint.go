package aliyun

import "strconv"

// DefaultRegion is the region used when ProductSettings.Region is empty.
const DefaultRegion = "cn-shanghai"

// Default MQTT ports, used when the corresponding ProductSettings port is 0.
const (
	DefaultTCPPort = 1883
	DefaultTLSPort = 1883
	DefaultWSSPort = 443
)

// Host name limits (RFC 1035).
const (
	maxLabelLen = 63
	maxHostLen  = 253
)

// ProductSettings are the per-product endpoint settings. The zero value
// selects the legacy endpoint of DefaultRegion on the default ports.
type ProductSettings struct {
	// Region is the region ID, such as "cn-shanghai", used for the legacy
	// host "{productKey}.iot-as-mqtt.{region}.aliyuncs.com". Empty means
	// DefaultRegion. It must be a lower-case DNS label.
	Region string
	// InstanceID, if set, selects the instance host
	// "{instanceId}.mqtt.iothub.aliyuncs.com" instead of the legacy host. It
	// must be a lower-case DNS label.
	InstanceID string
	// Host, if set, is used as the host as is, overriding InstanceID and
	// Region. It must be a DNS name (an IPv4 address also passes).
	Host string
	// TCPPort, TLSPort and WSSPort override the default port of each
	// transport when nonzero; they must be in 1–65535.
	TCPPort int
	TLSPort int
	WSSPort int
}

// Validate checks every set field of s and returns a *FieldError for the
// first invalid one, in the order region, instanceId, host, tcpPort,
// tlsPort, wssPort; or nil if s is valid. Fields are checked even when
// another field overrides them.
func (s ProductSettings) Validate() error {
	if s.Region != "" && !isDNSLabel(s.Region) {
		return fieldError(fieldRegion, reasonLabel)
	}
	if s.InstanceID != "" && !isDNSLabel(s.InstanceID) {
		return fieldError(fieldInstanceID, reasonLabel)
	}
	if s.Host != "" && !isDNSName(s.Host) {
		return fieldError(fieldHost, reasonHost)
	}
	for _, p := range [...]struct {
		field string
		port  int
	}{
		{fieldTCPPort, s.TCPPort},
		{fieldTLSPort, s.TLSPort},
		{fieldWSSPort, s.WSSPort},
	} {
		if p.port < 0 || p.port > 65535 {
			return fieldError(p.field, reasonPort)
		}
	}
	return nil
}

// Endpoint is the MQTT endpoint a device connects to.
type Endpoint struct {
	Host string
	Port int
	// URI is "{scheme}://{host}:{port}", where the scheme is "mqtts" for
	// TLS, "tcp" for TCP and "wss" for WebSocket over TLS.
	URI string
}

// ResolveEndpoint returns the endpoint that devices of the product
// productKey reach over transport t, given the product's settings s. The
// host is s.Host if set, else "{instanceId}.mqtt.iothub.aliyuncs.com" if
// s.InstanceID is set, else "{productKey}.iot-as-mqtt.{region}.aliyuncs.com".
//
// It validates productKey, s and t and returns a *FieldError naming the
// first invalid field.
func ResolveEndpoint(productKey string, s ProductSettings, t Transport) (Endpoint, error) {
	if err := ValidateProductKey(productKey); err != nil {
		return Endpoint{}, err
	}
	if err := s.Validate(); err != nil {
		return Endpoint{}, err
	}
	var scheme string
	var port int
	switch t {
	case TransportTLS:
		scheme, port = "mqtts", orDefault(s.TLSPort, DefaultTLSPort)
	case TransportTCP:
		scheme, port = "tcp", orDefault(s.TCPPort, DefaultTCPPort)
	case TransportWebSocketTLS:
		scheme, port = "wss", orDefault(s.WSSPort, DefaultWSSPort)
	default:
		return Endpoint{}, fieldError(fieldTransport, reasonTransport)
	}
	var host string
	switch {
	case s.Host != "":
		host = s.Host
	case s.InstanceID != "":
		host = s.InstanceID + ".mqtt.iothub.aliyuncs.com"
	default:
		host = productKey + ".iot-as-mqtt." + orDefault(s.Region, DefaultRegion) + ".aliyuncs.com"
	}
	return Endpoint{
		Host: host,
		Port: port,
		URI:  scheme + "://" + host + ":" + strconv.Itoa(port),
	}, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// isDNSLabel reports whether s is a lower-case DNS label: 1–63 characters
// of [a-z0-9-], not starting or ending with '-'.
func isDNSLabel(s string) bool {
	return isLabel(s, classLabel)
}

// isDNSName reports whether s is a DNS name of at most 253 characters made
// of dot-separated labels of 1–63 characters of [A-Za-z0-9-], none starting
// or ending with '-'. A trailing dot is not accepted.
func isDNSName(s string) bool {
	if len(s) == 0 || len(s) > maxHostLen {
		return false
	}
	for start := 0; start <= len(s); {
		end := start
		for end < len(s) && s[end] != '.' {
			end++
		}
		if !isLabel(s[start:end], classAlnum) {
			return false
		}
		start = end + 1
	}
	return true
}

// isLabel reports whether s is 1–63 bytes, each either '-' or in one of the
// classes in mask, and does not start or end with '-'.
func isLabel(s string, mask uint8) bool {
	if len(s) == 0 || len(s) > maxLabelLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '-' && charClass[s[i]]&mask == 0 {
			return false
		}
	}
	return true
}
