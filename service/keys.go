package service

import (
	"context"
	"fmt"

	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// Keys computes device MACs wherever each product's keys live
// (*secrets.Router). The service asks it for MACs and never learns where a
// key is kept, so it has no branch per key home.
type Keys interface {
	secrets.MACer
	secrets.SecretMACer
	// InStore returns nil if productKey's device secrets are kept in the
	// Store that registration writes to, or an error saying where they are
	// kept instead.
	InStore(productKey string) error
}

// WithKeys sets where device keys live. Without it every product's keys
// are looked up in the store given to New, and a product whose settings
// put its keys elsewhere is refused (FAILED_PRECONDITION).
func WithKeys(k Keys) Option { return func(s *Server) { s.keys = k } }

// methods pairs each platform sign method with the algorithm package
// secrets computes it by and the API's name for it: the seam between the
// platform's rules (signing) and the key homes (secrets).
var methods = []struct {
	method signing.Method
	alg    secrets.Algorithm
	api    signerv1.SignMethod
}{
	{signing.MethodHMACSHA256, secrets.HMACSHA256, signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256},
	{signing.MethodHMACSHA1, secrets.HMACSHA1, signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1},
	{signing.MethodHMACMD5, secrets.HMACMD5, signerv1.SignMethod_SIGN_METHOD_HMAC_MD5},
}

// algorithm returns the algorithm of m, or AlgorithmUnspecified for an
// invalid m (which signing rejects before any MAC is asked for).
func algorithm(m signing.Method) secrets.Algorithm {
	for _, e := range methods {
		if e.method == m {
			return e.alg
		}
	}
	return secrets.AlgorithmUnspecified
}

// mac returns the MAC with device id's key, wherever it lives, for the
// sign functions of package signing.
func (s *Server) mac(ctx context.Context, id secrets.DeviceID) signing.MAC {
	return func(m signing.Method, content []byte) ([]byte, error) {
		return s.keys.MAC(ctx, id, algorithm(m), content)
	}
}

// algorithmMessage is the caller's message for e: the method to use by its
// API name, the refused one as the platform spells it.
func algorithmMessage(e *secrets.AlgorithmError) string {
	use, refused := e.Use.String(), e.Algorithm.String()
	for _, m := range methods {
		if m.alg == e.Use {
			use = m.api.String()
		}
		if m.alg == e.Algorithm {
			refused = m.method.String()
		}
	}
	return fmt.Sprintf("product %s keeps its device secrets in %s, whose HMAC has %s: use %s, not %s",
		e.ProductKey, e.Home, e.Offers, use, refused)
}
