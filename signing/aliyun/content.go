package aliyun

import (
	"slices"
	"strings"
)

// Param is one key/value parameter of a sign content.
type Param struct {
	Key   string
	Value string
}

func compareKeys(a, b Param) int { return strings.Compare(a.Key, b.Key) }

// Content returns the sign content of params: the key and value of each
// parameter concatenated, in ascending byte order of the keys, with no
// separators. For ASCII keys this is the order the IoT Platform uses. It
// is the rule for both the MQTT CONNECT password and form-based signing.
//
// Parameters with equal keys keep their relative order; Content does not
// deduplicate them, so callers that need unique keys must ensure it. Content
// neither validates the parameters nor modifies params.
func Content(params ...Param) string {
	sorted := params
	if !slices.IsSortedFunc(params, compareKeys) {
		sorted = slices.Clone(params)
		slices.SortStableFunc(sorted, compareKeys)
	}
	n := 0
	for _, p := range sorted {
		n += len(p.Key) + len(p.Value)
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range sorted {
		b.WriteString(p.Key)
		b.WriteString(p.Value)
	}
	return b.String()
}

// Keys of the MQTT CONNECT sign content, in sorted order.
const (
	keyClientID   = "clientId"
	keyDeviceName = "deviceName"
	keyProductKey = "productKey"
	keyTimestamp  = "timestamp"
)

// ConnectSignContent returns the sign content of the MQTT CONNECT password
// for req:
//
//	clientId{c}deviceName{d}productKey{p}timestamp{t}
//
// without the timestamp part when req.Timestamp is empty. It equals
// Content over the same parameters. Only the identifying fields are used;
// the method and transport do not affect the content.
//
// ConnectSignContent does not validate req; call [ConnectRequest.Validate]
// first. It exists so that the HMAC can be computed elsewhere (for example
// by Vault Transit); [SignConnect] does both steps locally.
func ConnectSignContent(req ConnectRequest) string {
	var b strings.Builder
	b.Grow(connectContentLen(req))
	b.WriteString(keyClientID)
	b.WriteString(req.ClientID)
	b.WriteString(keyDeviceName)
	b.WriteString(req.DeviceName)
	b.WriteString(keyProductKey)
	b.WriteString(req.ProductKey)
	if req.Timestamp != "" {
		b.WriteString(keyTimestamp)
		b.WriteString(req.Timestamp)
	}
	return b.String()
}

// connectContentLen returns len(ConnectSignContent(req)).
func connectContentLen(req ConnectRequest) int {
	n := len(keyClientID) + len(req.ClientID) +
		len(keyDeviceName) + len(req.DeviceName) +
		len(keyProductKey) + len(req.ProductKey)
	if req.Timestamp != "" {
		n += len(keyTimestamp) + len(req.Timestamp)
	}
	return n
}

// appendConnectContent appends ConnectSignContent(req) to dst.
func appendConnectContent(dst []byte, req ConnectRequest) []byte {
	dst = append(dst, keyClientID...)
	dst = append(dst, req.ClientID...)
	dst = append(dst, keyDeviceName...)
	dst = append(dst, req.DeviceName...)
	dst = append(dst, keyProductKey...)
	dst = append(dst, req.ProductKey...)
	if req.Timestamp != "" {
		dst = append(dst, keyTimestamp...)
		dst = append(dst, req.Timestamp...)
	}
	return dst
}
