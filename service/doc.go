// Package service implements signer.v1.SignerService: it turns a validated
// request into a signed answer, with the device's secret looked up in a
// secrets.Store and the platform's rules applied by package signing.
//
// Both transports end here: gRPC directly and REST through grpc-gateway in
// front of the same gRPC server, so there is exactly one implementation of
// every rule. Errors are mapped to gRPC status codes in one place, errors.go.
package service
