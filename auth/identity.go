package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/signerd/signerd/signing"
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
	// ProductKey and DeviceName name a device caller.
	ProductKey, DeviceName string
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
		return "device:" + i.ProductKey + "/" + i.DeviceName
	case KindBackend:
		return "backend:" + i.Name
	}
	return "anonymous"
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
	// ["spiffe"].
	BackendURISchemes []string
}

// ErrNoIdentity: a verified certificate names no device or backend.
var ErrNoIdentity = errors.New("certificate names no device or backend identity")

// IdentityFromCert reads the caller's identity from a certificate that the
// TLS stack has already verified against the configured CA bundle.
func (c CertConfig) IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	scheme := c.DeviceURIScheme
	if scheme == "" {
		scheme = "aliyun-iot"
	}
	backendSchemes := c.BackendURISchemes
	if len(backendSchemes) == 0 {
		backendSchemes = []string{"spiffe"}
	}
	var found []Identity
	for _, u := range cert.URIs {
		switch {
		case u.Scheme == scheme:
			id, err := deviceFromURI(u)
			if err != nil {
				return Identity{}, err
			}
			found = append(found, id)
		case contains(backendSchemes, u.Scheme):
			if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return Identity{}, fmt.Errorf("backend URI SAN %q: want %s://trust-domain/path", u, u.Scheme)
			}
			found = append(found, Identity{Kind: KindBackend, Name: u.String(), Method: "mtls"})
		}
	}
	if len(found) == 0 && c.DeviceCNSeparator != "" {
		if pk, dn, ok := strings.Cut(cert.Subject.CommonName, c.DeviceCNSeparator); ok {
			if signing.ValidateProductKey(pk) == nil && signing.ValidateDeviceName(dn) == nil {
				found = append(found, Identity{Kind: KindDevice, ProductKey: pk, DeviceName: dn, Method: "mtls"})
			}
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
		return found[0], nil
	}
	// A certificate that names two principals is ambiguous: refuse it
	// rather than guess which one the caller meant.
	return Identity{}, errors.New("certificate names more than one identity")
}

func deviceFromURI(u *url.URL) (Identity, error) {
	// aliyun-iot://{productKey}/{deviceName}: the device name may contain
	// ':' and '@', which url.Parse puts in Opaque/User for some inputs, so
	// read the raw form.
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Identity{}, fmt.Errorf("device URI SAN %q: want %s://{productKey}/{deviceName}", u.Redacted(), u.Scheme)
	}
	pk := u.Host
	dn := strings.TrimPrefix(u.Path, "/")
	if err := signing.ValidateProductKey(pk); err != nil {
		return Identity{}, fmt.Errorf("device URI SAN: %w", err)
	}
	if err := signing.ValidateDeviceName(dn); err != nil {
		return Identity{}, fmt.Errorf("device URI SAN: %w", err)
	}
	return Identity{Kind: KindDevice, ProductKey: pk, DeviceName: dn, Method: "mtls"}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
