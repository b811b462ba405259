package auth

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/signerd/signerd/device"
)

// Kind is the kind of caller.
type Kind int

const (
	// KindAnonymous is an unauthenticated caller: allowed only in -dev.
	KindAnonymous Kind = iota
	// KindDevice is one device, identified by its client certificate.
	KindDevice
	// KindBackend is a fleet backend, identified by a SPIFFE-style URI SAN
	// or a JWT subject.
	KindBackend
)

func (k Kind) String() string {
	switch k {
	case KindDevice:
		return "device"
	case KindBackend:
		return "backend"
	}
	return "anonymous"
}

// Identity is an authenticated caller.
type Identity struct {
	Kind Kind
	// Platform, ProductKey, DeviceName and Module name a device caller
	// (see Device); Platform is "" for an Alibaba device.
	Platform, ProductKey, DeviceName, Module string
	// Name is a backend's principal: its URI SAN or its JWT subject.
	Name string
	// Method is how the caller proved it: "mtls", "jwt" or "none".
	Method string
}

// String is the identity as it appears in audit records and as the key of
// per-caller rate limits.
func (i Identity) String() string {
	switch i.Kind {
	case KindDevice:
		return "device:" + i.Device().String()
	case KindBackend:
		return "backend:" + i.Name
	}
	return "anonymous"
}

// Device is the device a device caller is (zero for other callers).
func (i Identity) Device() device.ID {
	if i.Kind != KindDevice {
		return device.ID{}
	}
	return device.ID{Platform: i.Platform, ProductKey: i.ProductKey, DeviceName: i.DeviceName, Module: i.Module}
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the caller's identity.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// CertConfig says how identities are read from verified client certificates.
type CertConfig struct {
	// DeviceURIScheme is the scheme of a device's URI SAN
	// {scheme}://{productKey}/{deviceName}; default "aliyun-iot".
	DeviceURIScheme string
	// DeviceCNSeparator, if set, also accepts devices whose subject CN is
	// {productKey}{sep}{deviceName} (for CAs that cannot issue URI SANs).
	DeviceCNSeparator string
	// BackendURISchemes are the URI SAN schemes of backends; default
	// ["spiffe"]. Whatever the scheme, the rest of the URI must be a SPIFFE
	// ID's.
	BackendURISchemes []string
}

// Validate reports a configuration under which a certificate could be read
// two ways.
func (c CertConfig) Validate() error {
	var errs []error
	if c.DeviceURIScheme != "" && !validScheme(c.DeviceURIScheme) {
		errs = append(errs, fmt.Errorf("device URI scheme %q: want a lower-case URI scheme (letters, digits, '+', '-', '.')", c.DeviceURIScheme))
	}
	for _, s := range c.BackendURISchemes {
		if !validScheme(s) {
			errs = append(errs, fmt.Errorf("backend URI scheme %q: want a lower-case URI scheme (letters, digits, '+', '-', '.')", s))
		}
		if strings.EqualFold(s, c.deviceScheme()) {
			errs = append(errs, fmt.Errorf("backend URI scheme %q is also the device URI scheme", s))
		}
	}
	for _, s := range append([]string{c.deviceScheme()}, c.backendSchemes()...) {
		if p, ok := device.ByScheme(strings.ToLower(s)); ok {
			errs = append(errs, fmt.Errorf("URI scheme %q is platform %s's device scheme", s, p.Name))
		}
	}
	// A separator holding a productKey character would make the split
	// point ambiguous ("a1PK1dev" with "1"): the CN could name two devices.
	if sep := c.DeviceCNSeparator; sep != "" && strings.IndexFunc(sep, isAlnum) >= 0 {
		errs = append(errs, fmt.Errorf("device CN separator %q: must not contain letters or digits, which a productKey holds", sep))
	}
	return errors.Join(errs...)
}

func (c CertConfig) deviceScheme() string {
	if c.DeviceURIScheme == "" {
		return "aliyun-iot"
	}
	return c.DeviceURIScheme
}

func (c CertConfig) backendSchemes() []string {
	if len(c.BackendURISchemes) == 0 {
		return []string{"spiffe"}
	}
	return c.BackendURISchemes
}

// DeviceURI is the URI SAN naming the device productKey/deviceName: the one
// spelling of it that IdentityFromCert accepts.
func (c CertConfig) DeviceURI(productKey, deviceName string) string {
	return c.deviceScheme() + "://" + productKey + "/" + deviceName
}

// URIFor is the URI SAN naming dev, of any platform: the one spelling of
// it that IdentityFromCert accepts ("" for a platform that is not
// registered or has no certificate scheme).
func (c CertConfig) URIFor(dev device.ID) string {
	if dev.Platform == "" {
		return c.DeviceURI(dev.ProductKey, dev.DeviceName)
	}
	p, ok := device.Lookup(dev.Platform)
	if !ok || p.Scheme == "" {
		return ""
	}
	u := p.Scheme + "://"
	if p.Products {
		u += dev.ProductKey + "/"
	}
	u += dev.DeviceName
	if dev.Module != "" {
		u += "/" + dev.Module
	}
	return u
}

// DeviceCN is the subject CN naming the device productKey/deviceName when
// DeviceCNSeparator is set.
func (c CertConfig) DeviceCN(productKey, deviceName string) string {
	return productKey + c.DeviceCNSeparator + deviceName
}

// ErrNoIdentity: a verified certificate names no device or backend.
var ErrNoIdentity = errors.New("certificate names no device or backend identity")

// maxSPIFFEIDLen is the SPIFFE ID specification's limit, in bytes.
const maxSPIFFEIDLen = 2048

// IdentityFromCert reads the caller's identity from a certificate that the
// TLS stack has already verified against the configured CA bundle.
//
// A certificate names a caller only in one exact spelling: a device's URI
// SAN must be {scheme}://{productKey}/{deviceName} as written, a backend's a
// SPIFFE ID by the letter of the specification, and the certificate must
// hold exactly one such URI. The SANs are read as the CA encoded them, not
// as url.Parse decoded them (see uriSANs), so that no other spelling (a
// percent-escape, a port, user info) can be read as somebody's name.
// Anything else is an error saying why, for the log and audit record.
func (c CertConfig) IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	raws, err := uriSANs(cert)
	if err != nil {
		return Identity{}, err
	}
	var found []Identity
	var backendSAN bool
	for _, raw := range raws {
		scheme, _, ok := strings.Cut(raw, ":")
		if !ok {
			continue // a relative reference names nobody
		}
		// The scheme is compared without case, so that "ALIYUN-IOT://…"
		// is refused as a misspelt identity instead of being ignored
		// beside another one.
		switch {
		case strings.EqualFold(scheme, c.deviceScheme()):
			id, err := c.deviceFromURI(raw)
			if err != nil {
				return Identity{}, err
			}
			found = append(found, id)
		case isPlatformScheme(scheme):
			id, err := platformDeviceFromURI(raw, scheme)
			if err != nil {
				return Identity{}, err
			}
			found = append(found, id)
		case containsFold(c.backendSchemes(), scheme):
			id, err := backendFromURI(raw, scheme)
			if err != nil {
				return Identity{}, err
			}
			found = append(found, id)
			backendSAN = true
		}
	}
	if backendSAN && len(raws) != 1 {
		// X509-SVID §5.2: an SVID with more than one URI SAN must be
		// rejected.
		return Identity{}, fmt.Errorf("certificate holds a SPIFFE ID and %d other URI SANs: a SPIFFE ID must be the only one", len(raws)-1)
	}
	if len(found) == 0 && c.DeviceCNSeparator != "" {
		id, err := c.deviceFromCN(cert)
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
		if cert.IsCA || cert.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
			// A signing certificate is validation material, never a
			// caller (X509-SVID §5.2).
			return Identity{}, fmt.Errorf("certificate naming %s is a CA certificate", found[0])
		}
		return found[0], nil
	}
	// A certificate that names two principals is ambiguous: refuse it
	// rather than guess which one the caller meant.
	return Identity{}, fmt.Errorf("certificate names %d identities; a caller's certificate must name exactly one", len(found))
}

// oidSubjectAltName is the subjectAltName extension (RFC 5280 §4.2.1.6);
// sanURITag is its uniformResourceIdentifier [6] choice.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

const sanURITag = 6

// uriSANs returns the certificate's URI SANs exactly as the CA encoded them.
// cert.URIs cannot serve: crypto/x509 keeps only what url.Parse made of
// each one, and that decodes percent-escapes ("dev%2Db-0002" has the Path
// "/dev-b-0002"), so two different names meet in one url.URL.
func uriSANs(cert *x509.Certificate) ([]string, error) {
	var out []string
	seen := false
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		if seen {
			return nil, errors.New("certificate has two subjectAltName extensions")
		}
		seen = true
		var seq asn1.RawValue
		rest, err := asn1.Unmarshal(ext.Value, &seq)
		if err != nil || len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
			return nil, errors.New("malformed subjectAltName extension")
		}
		for b := seq.Bytes; len(b) > 0; {
			var name asn1.RawValue
			if b, err = asn1.Unmarshal(b, &name); err != nil {
				return nil, fmt.Errorf("malformed subjectAltName extension: %w", err)
			}
			if name.Class == asn1.ClassContextSpecific && name.Tag == sanURITag && !name.IsCompound {
				out = append(out, string(name.Bytes))
			}
		}
	}
	// A certificate built in memory, not parsed from DER, has URIs but no
	// encoded extension: its SANs cannot be read as written.
	if len(out) != len(cert.URIs) {
		return nil, fmt.Errorf("certificate has %d URI SANs but %d in its encoded subjectAltName", len(cert.URIs), len(out))
	}
	return out, nil
}

// deviceFromURI reads {scheme}://{productKey}/{deviceName}, nothing else:
// the reasons name what was found instead.
func (c CertConfig) deviceFromURI(raw string) (Identity, error) {
	scheme := c.deviceScheme()
	bad := func(why string) error {
		return fmt.Errorf("device URI SAN %q: %s; want exactly %s://{productKey}/{deviceName}", raw, why, scheme)
	}
	rest, ok := strings.CutPrefix(raw, scheme+"://")
	if !ok {
		return Identity{}, bad("scheme or \"//\" not as written by the rule")
	}
	pk, dn, hasPath := strings.Cut(rest, "/")
	switch {
	case strings.Contains(raw, "%"):
		return Identity{}, bad("percent-encoding")
	case strings.Contains(rest, "?"):
		return Identity{}, bad("a query")
	case strings.Contains(rest, "#"):
		return Identity{}, bad("a fragment")
	case strings.Contains(pk, "@"):
		return Identity{}, bad("user info")
	case strings.Contains(pk, ":"):
		return Identity{}, bad("a port")
	case !hasPath || dn == "":
		return Identity{}, bad("no device name")
	case strings.Contains(dn, "/"):
		return Identity{}, bad("an extra path segment")
	}
	if err := device.ValidateProductKey(pk); err != nil {
		return Identity{}, fmt.Errorf("device URI SAN %q: %w", raw, err)
	}
	if err := device.ValidateDeviceName(dn); err != nil {
		return Identity{}, fmt.Errorf("device URI SAN %q: %w", raw, err)
	}
	// The rule itself: the identity, formatted, is the SAN byte for byte.
	// And any URL reader must agree on the parts, so that no component
	// that reads the certificate with net/url sees another device.
	u, err := url.Parse(raw)
	if c.DeviceURI(pk, dn) != raw || err != nil || u.Host != pk || u.Path != "/"+dn || u.RawPath != "" ||
		u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return Identity{}, bad("not in canonical form")
	}
	return Identity{Kind: KindDevice, ProductKey: pk, DeviceName: dn, Method: "mtls"}, nil
}

// isPlatformScheme reports whether scheme, in any case, is a registered
// platform's device scheme (any case, so that a misspelt one is refused
// rather than ignored).
func isPlatformScheme(scheme string) bool {
	_, ok := device.ByScheme(strings.ToLower(scheme))
	return ok
}

// platformDeviceFromURI reads another platform's device identity,
// {scheme}://{product}/{device}[/{module}] (or {scheme}://{device} on a
// platform without products), as strictly as the Alibaba one: exactly as
// written, every part valid by the platform's rules, and read the same by
// any URL parser.
func platformDeviceFromURI(raw, scheme string) (Identity, error) {
	pl, _ := device.ByScheme(strings.ToLower(scheme))
	shape := "{product}/{device}"
	switch {
	case !pl.Products:
		shape = "{device}"
	case pl.Modules:
		shape = "{product}/{device}[/{module}]"
	}
	bad := func(why string) error {
		return fmt.Errorf("device URI SAN %q: %s; want exactly %s://%s", raw, why, pl.Scheme, shape)
	}
	rest, ok := strings.CutPrefix(raw, pl.Scheme+"://")
	if !ok {
		return Identity{}, bad("scheme or \"//\" not as written by the rule")
	}
	parts := strings.Split(rest, "/")
	host := parts[0]
	switch {
	case strings.Contains(raw, "%"):
		return Identity{}, bad("percent-encoding")
	case strings.Contains(rest, "?"):
		return Identity{}, bad("a query")
	case strings.Contains(rest, "#"):
		return Identity{}, bad("a fragment")
	case strings.Contains(host, "@"):
		return Identity{}, bad("user info")
	case strings.Contains(host, ":"):
		return Identity{}, bad("a port")
	}
	if slices.Contains(parts, "") {
		// "hub/dev/" must not be read as the device without a module.
		return Identity{}, bad("an empty segment")
	}
	id := Identity{Kind: KindDevice, Platform: pl.Name, Method: "mtls"}
	switch {
	case !pl.Products && len(parts) == 1:
		id.DeviceName = parts[0]
	case pl.Products && len(parts) == 2:
		id.ProductKey, id.DeviceName = parts[0], parts[1]
	case pl.Products && pl.Modules && len(parts) == 3:
		id.ProductKey, id.DeviceName, id.Module = parts[0], parts[1], parts[2]
	default:
		return Identity{}, bad(fmt.Sprintf("%d path segments", len(parts)-1))
	}
	if err := id.Device().Validate(); err != nil {
		return Identity{}, fmt.Errorf("device URI SAN %q: %w", raw, err)
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, pl.Scheme) || u.Host != host || u.Path != strings.TrimPrefix(rest, host) ||
		u.RawPath != "" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return Identity{}, bad("not in canonical form")
	}
	return id, nil
}

// backendFromURI reads a backend's SPIFFE ID (for other backend schemes,
// everything after "{scheme}://" must be a SPIFFE ID's).
func backendFromURI(raw, scheme string) (Identity, error) {
	if len(raw) > maxSPIFFEIDLen {
		return Identity{}, fmt.Errorf("backend URI SAN of %d bytes: a SPIFFE ID has at most %d", len(raw), maxSPIFFEIDLen)
	}
	rest, ok := strings.CutPrefix(raw, strings.ToLower(scheme)+"://")
	if !ok {
		return Identity{}, fmt.Errorf("backend URI SAN %q: want %s://{trust-domain}/{path} with the scheme in lower case", raw, strings.ToLower(scheme))
	}
	if err := validSPIFFEID("spiffe://" + rest); err != nil {
		return Identity{}, fmt.Errorf("backend URI SAN %q: %w", raw, err)
	}
	return Identity{Kind: KindBackend, Name: raw, Method: "mtls"}, nil
}

// validSPIFFEID checks s against the SPIFFE ID specification (trust domain
// of lower-case letters, digits, '.', '-', '_'; path segments of letters,
// digits, '.', '-', '_', none empty, "." or ".."; no trailing '/',
// percent-encoding, port, user info, query or fragment; at most 2048 bytes)
// and X509-SVID's rule that a caller's ID has a path.
func validSPIFFEID(s string) error {
	if len(s) > maxSPIFFEIDLen {
		return fmt.Errorf("%d bytes: a SPIFFE ID has at most %d", len(s), maxSPIFFEIDLen)
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		return fmt.Errorf("not a SPIFFE ID: %w", err)
	}
	if id.Path() == "" {
		return errors.New("a SPIFFE ID without a path names a trust domain, not a workload")
	}
	return nil
}

// deviceFromCN reads {productKey}{sep}{deviceName} from the subject's one
// CN.
func (c CertConfig) deviceFromCN(cert *x509.Certificate) (Identity, error) {
	// pkix.Name.CommonName keeps the last of several CNs: count them, so
	// that a subject with two cannot be read as either.
	n := 0
	for _, a := range cert.Subject.Names {
		if a.Type.Equal(oidCommonName) {
			n++
		}
	}
	cn := cert.Subject.CommonName
	switch {
	case n > 1:
		return Identity{}, fmt.Errorf("certificate subject has %d CNs; a device's must have one", n)
	case n == 0 && cn != "":
		// Set in memory, not parsed from DER.
		return Identity{}, errors.New("certificate subject CN is not in its encoded subject")
	}
	pk, dn, ok := strings.Cut(cn, c.DeviceCNSeparator)
	if !ok {
		return Identity{}, ErrNoIdentity
	}
	if device.ValidateProductKey(pk) != nil || device.ValidateDeviceName(dn) != nil || c.DeviceCN(pk, dn) != cn {
		return Identity{}, fmt.Errorf("%w: subject CN %q is not {productKey}%s{deviceName}", ErrNoIdentity, cn, c.DeviceCNSeparator)
	}
	return Identity{Kind: KindDevice, ProductKey: pk, DeviceName: dn, Method: "mtls"}, nil
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// ValidateBackendName checks a backend principal's name wherever one is
// read (a JWT subject, a policy entry): printable ASCII without spaces, at
// most 2048 bytes, and a valid SPIFFE ID with a path if it claims to be
// one. Names are compared byte for byte, so anything that could look like
// another name (a homoglyph, an invisible character, a U+FFFD that
// encoding/json put in place of invalid UTF-8) is refused rather than
// carried into the policy match and the audit record.
func ValidateBackendName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > maxSPIFFEIDLen {
		return fmt.Errorf("%d bytes, more than %d", len(name), maxSPIFFEIDLen)
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; b <= ' ' || b > '~' {
			return fmt.Errorf("%.64q: byte %d is not printable ASCII", name, i)
		}
	}
	if scheme, _, ok := strings.Cut(name, ":"); ok && strings.EqualFold(scheme, "spiffe") {
		if err := validSPIFFEID(name); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
	}
	return nil
}

func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
