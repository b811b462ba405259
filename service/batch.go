package service

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/audit"
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
	items := req.GetRequests()
	// A batch is for callers granted it by name (or "*"); each item is then
	// authorized as this RPC before its lookup.
	if err := s.authz.AuthorizeCall(ctx, "BatchSignMqttConnect"); err != nil {
		err = deny("permission denied", err)
		reportRefused(ctx, items, err)
		return nil, err
	}
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, invalidArgument([]violation{{field: "requests",
			reason: fmt.Sprintf("must hold 1–%d requests, not %d", MaxBatch, len(items))}})
	}
	results, errs := s.signBatch(ctx, "BatchSignMqttConnect", items)
	if err := ctx.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	outs := make([]audit.Outcome, len(items))
	for i, item := range items {
		outs[i] = audit.Outcome{Device: deviceOf(item), Err: errs[i]}
	}
	audit.Report(ctx, outs...)
	return &signerv1.BatchSignMqttConnectResponse{Results: results}, nil
}

func deviceOf(item *signerv1.SignMqttConnectRequest) auth.Device {
	return auth.Device{ProductKey: item.GetProductKey(), DeviceName: item.GetDeviceName()}
}

// reportRefused reports every device of a batch or stream refused as a
// whole as refused with it; a request beyond any valid size is recorded
// once, as a call, so that one refusal cannot flood the audit.
func reportRefused(ctx context.Context, items []*signerv1.SignMqttConnectRequest, err error) {
	if len(items) > MaxStream {
		return
	}
	outs := make([]audit.Outcome, len(items))
	for i, item := range items {
		outs[i] = audit.Outcome{Device: deviceOf(item), Err: err}
	}
	audit.Report(ctx, outs...)
}

// signBatch authorizes each item as rpc (before its lookup) and signs the
// allowed ones concurrently; one result per item, in order, and each
// item's error as the service decided it.
func (s *Server) signBatch(ctx context.Context, rpc string, items []*signerv1.SignMqttConnectRequest) ([]*signerv1.BatchSignMqttConnectResult, []error) {
	results := make([]*signerv1.BatchSignMqttConnectResult, len(items))
	errs := make([]error, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batchConcurrency)
	for i, item := range items {
		if err := s.authz.AuthorizeDevice(ctx, rpc, deviceOf(item)); err != nil {
			errs[i] = deny("permission denied", err)
			results[i] = itemError(errs[i])
			continue
		}
		g.Go(func() error {
			resp, err := s.signConnect(gctx, item)
			if err != nil {
				errs[i], results[i] = err, itemError(err)
			} else {
				results[i] = &signerv1.BatchSignMqttConnectResult{Response: resp}
			}
			return nil // one item's failure is that item's result
		})
	}
	_ = g.Wait()
	return results, errs
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
	items := req.GetRequests()
	if err := s.authz.AuthorizeCall(ctx, "StreamSignMqttConnect"); err != nil {
		err = deny("permission denied", err)
		reportRefused(ctx, items, err)
		return err
	}
	if len(items) == 0 || len(items) > MaxStream {
		return invalidArgument([]violation{{field: "requests",
			reason: fmt.Sprintf("must hold 1–%d requests, not %d", MaxStream, len(items))}})
	}
	sent := 0
	err := s.streamChunks(ctx, items, stream, &sent)
	if err != nil && sent > 0 {
		// The items answered are reported; the failure that ended the
		// stream is the call's.
		audit.Report(ctx, audit.Outcome{Err: err})
	}
	return err
}

// streamChunks signs and sends items in chunks, reporting each item once it
// was sent.
func (s *Server) streamChunks(ctx context.Context, items []*signerv1.SignMqttConnectRequest, stream signerv1.SignerService_StreamSignMqttConnectServer, sent *int) error {
	for start := 0; start < len(items); start += MaxBatch {
		end := min(start+MaxBatch, len(items))
		results, errs := s.signBatch(ctx, "StreamSignMqttConnect", items[start:end])
		if err := ctx.Err(); err != nil {
			return toStatus(ctx, s.log, err)
		}
		for i, r := range results {
			if err := stream.Send(&signerv1.StreamSignMqttConnectResponse{
				Index: int32(start + i), Response: r.GetResponse(), Error: r.GetError(),
			}); err != nil {
				return err
			}
			*sent++
			audit.Report(ctx, audit.Outcome{Device: deviceOf(items[start+i]), Err: errs[i]})
		}
	}
	return nil
}
