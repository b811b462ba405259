package service

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// MaxBatch is the most devices one BatchSignMqttConnect may name.
const MaxBatch = 1000

// batchConcurrency bounds the secret-store lookups of one batch, so that a
// cold batch does not flood Vault.
const batchConcurrency = 16

// BatchSignMqttConnect implements signerv1.SignerServiceServer.
func (s *Server) BatchSignMqttConnect(ctx context.Context, req *signerv1.BatchSignMqttConnectRequest) (*signerv1.BatchSignMqttConnectResponse, error) {
	// A batch is for callers granted it by name (or "*"); each item is then
	// authorized as this RPC before its lookup.
	if err := s.authz.AuthorizeCall(ctx, "BatchSignMqttConnect"); err != nil {
		return nil, deny("permission denied", err)
	}
	items := req.GetRequests()
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, invalidArgument([]violation{{field: "requests",
			reason: fmt.Sprintf("must hold 1–%d requests, not %d", MaxBatch, len(items))}})
	}
	results := s.signBatch(ctx, "BatchSignMqttConnect", items)
	if err := ctx.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &signerv1.BatchSignMqttConnectResponse{Results: results}, nil
}

// signBatch authorizes each item as rpc (before its lookup) and signs the
// allowed ones concurrently; one result per item, in order.
func (s *Server) signBatch(ctx context.Context, rpc string, items []*signerv1.SignMqttConnectRequest) []*signerv1.BatchSignMqttConnectResult {
	results := make([]*signerv1.BatchSignMqttConnectResult, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batchConcurrency)
	for i, item := range items {
		if s.authz.AuthorizeDevice(ctx, rpc, auth.Device{ProductKey: item.GetProductKey(), DeviceName: item.GetDeviceName()}) != nil {
			results[i] = itemError(status.Error(codes.PermissionDenied, "permission denied"))
			continue
		}
		g.Go(func() error {
			resp, err := s.signConnect(gctx, item)
			if err != nil {
				results[i] = itemError(err)
			} else {
				results[i] = &signerv1.BatchSignMqttConnectResult{Response: resp}
			}
			return nil // one item's failure is that item's result
		})
	}
	_ = g.Wait()
	return results
}

func itemError(err error) *signerv1.BatchSignMqttConnectResult {
	return &signerv1.BatchSignMqttConnectResult{Error: status.Convert(err).Proto()}
}

// MaxStream is the most devices one StreamSignMqttConnect may name.
const MaxStream = 100_000

// StreamSignMqttConnect implements signerv1.SignerServiceServer: the batch
// in chunks, each chunk signed concurrently and sent in request order.
func (s *Server) StreamSignMqttConnect(req *signerv1.StreamSignMqttConnectRequest, stream signerv1.SignerService_StreamSignMqttConnectServer) error {
	ctx := stream.Context()
	if err := s.authz.AuthorizeCall(ctx, "StreamSignMqttConnect"); err != nil {
		return deny("permission denied", err)
	}
	items := req.GetRequests()
	if len(items) == 0 || len(items) > MaxStream {
		return invalidArgument([]violation{{field: "requests",
			reason: fmt.Sprintf("must hold 1–%d requests, not %d", MaxStream, len(items))}})
	}
	for start := 0; start < len(items); start += MaxBatch {
		end := min(start+MaxBatch, len(items))
		results := s.signBatch(ctx, "StreamSignMqttConnect", items[start:end])
		if err := ctx.Err(); err != nil {
			return toStatus(ctx, s.log, err)
		}
		for i, r := range results {
			if err := stream.Send(&signerv1.StreamSignMqttConnectResponse{
				Index: int32(start + i), Response: r.GetResponse(), Error: r.GetError(),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
