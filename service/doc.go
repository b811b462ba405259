// Package service implements signer.v1.SignerService: it turns a validated
// request into a signed answer: the device's MAC comes from a secrets.MACer
// (a local key from the store, or Vault Transit, chosen per product by
// secrets.Router) and the platform's rules are applied by package
// signing/aliyun. The per-product settings an answer depends on (endpoint,
// keep-alive, clean session, Vault Transit) are the platform's too: the
// service is handed a signing/aliyun.Products (WithProducts) and does not
// parse or check them itself.
//
// Both transports end here: gRPC directly and REST through grpc-gateway in
// front of the same gRPC server, so there is exactly one implementation of
// every rule. Errors of the packages it calls (secrets, signing, platform,
// a caller's cancelled context) are mapped to gRPC status codes in one
// place, errors.go (toStatus, platformToStatus, invalidArgument); answers
// that are the service's own decision (a feature this server was not given,
// such as RegisterDevice without Vault: UNIMPLEMENTED; a product set up for
// something the server lacks: FAILED_PRECONDITION) are made where it takes
// that decision.
//
// Every device a call touches is first put to the one auth.Authorizer (the
// request's device, each batch or stream item, the gateway and each
// sub-device), before its secret is looked up; and the service reports each
// device's outcome (audit.Report), from which the server writes the audit.
package service
