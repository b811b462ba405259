// Package server runs signerd's listeners: the gRPC server with its
// interceptor chain and health service, and the HTTP server that puts
// grpc-gateway (REST/JSON), the OpenAPI document and the health endpoints in
// front of that same gRPC server.
//
// The gateway reaches the service through an in-process channel, not a
// second implementation and not a network hop: every REST call passes the
// same interceptor chain as a gRPC call (request id, retry info, metrics,
// logging, audit, authentication, rate limits, load shedding, recovery;
// built in one place, Server.interceptors), handed the request message
// itself, with no HTTP/2 and no protobuf encoding (a unary call on the HTTP
// request's own goroutine, a stream on grpchan's inprocgrpc), and its gRPC
// status becomes the REST answer in errors.go.
//
// Authorization is not an interceptor: the service asks its auth.Authorizer
// about every device a call touches. The audit interceptors are the one
// audit point: they write the records from the outcomes the service reports
// (audit.Report), or one record for a call refused before the service.
package server
