// Package auth decides who a caller is and what it may have.
//
// Whoever obtains a device's credentials can be that device, so every call is
// authenticated before anything else happens, and authorized before the
// secret store is touched:
//
//   - Devices present an mTLS client certificate naming them, by default with
//     the URI SAN aliyun-iot://{productKey}/{deviceName}, exactly as written
//     (no percent-escape or other spelling of the same name). A device may
//     obtain credentials for itself only.
//   - Backends present an mTLS certificate with a SPIFFE-style URI SAN, or a
//     bearer JWT (RS256/ES256, checked against a JWKS for issuer, audience and
//     expiry). The policy file grants each backend identity a set of
//     productKeys and RPCs.
//
// One Authorizer (NewAuthorizer, over the Policy) makes every authorization
// decision; the service asks it about every device a call touches, before
// any lookup. Its refusals are *Denial values carrying the reason for the
// audit; to the caller they look the same whether or not the device exists,
// so that a caller learns nothing about devices it may not have.
package auth
