package server_test

import (
	"context"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
)

// TestReflectionIsASetting: reflection hands any caller the API's schema,
// so it is served only when Config.Reflection asks for it.
func TestReflectionIsASetting(t *testing.T) {
	for _, on := range []bool{false, true} {
		ts := start(t, server.Config{Service: service.New(secrets.NewMemory(), service.WithAuthorizer(auth.AllowAll())), Reflection: on})
		stream, err := rpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// With reflection off the server may end the stream before Send:
		// gRPC then returns io.EOF from Send and the status from Recv.
		if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if !on {
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("Reflection off: ListServices = %v, %v; want UNIMPLEMENTED", resp, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Reflection on: ListServices: %v", err)
		}
		found := false
		for _, s := range resp.GetListServicesResponse().GetService() {
			found = found || s.GetName() == signerv1.SignerService_ServiceDesc.ServiceName
		}
		if !found {
			t.Errorf("Reflection on: ListServices = %v, lacks %s", resp, signerv1.SignerService_ServiceDesc.ServiceName)
		}
	}
}
