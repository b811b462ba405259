package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// TestDeniedDevicesAudited reads the audit output: every device a refused
// call named has its own record, with the device and the reason, for a
// device calling a batch RPC (over both transports) and for a gateway's
// sub-device login with several forbidden sub-devices.
func TestDeniedDevicesAudited(t *testing.T) {
	s := startSecure(t, secOptions{policy: `
deviceRpcs: [SignMqttConnect, SignSubDeviceLogin]
backends:
  - identity: ` + admin + `
    products: ["*"]
    rpcs: ["*"]
gateways:
  - gateway: ` + pkA + `/gw-0001
    subDevices: ["` + pkA + `/sub-ok-1", "` + pkA + `/sub-ok-2"]
`})
	gwCert := s.ca.Device(t, pkA, "gw-0001")
	gw := s.newCaller(t, "device:"+pkA+"/gw-0001", &gwCert, "")
	ctxWithID := func(id string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-request-id", id)
	}
	// recordsOf returns the audit records of request id, by device.
	recordsOf := func(id string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, r := range records(t, s.audit, id) {
			dev, _ := r["product_key"].(string)
			name, _ := r["device_name"].(string)
			if _, dup := out[dev+"/"+name]; dup {
				t.Errorf("request %s: two records for %s/%s", id, dev, name)
			}
			out[dev+"/"+name] = r
		}
		return out
	}
	wantDenied := func(id, device string, recs map[string]map[string]any, reasonHas ...string) {
		t.Helper()
		r, ok := recs[device]
		if !ok {
			t.Errorf("request %s: no audit record for %s; have %v", id, device, recs)
			return
		}
		if r["outcome"] != "denied" || r["code"] != "PermissionDenied" || r["caller"] != gw.name {
			t.Errorf("request %s, %s: record %v, want denied PermissionDenied by %s", id, device, r, gw.name)
		}
		reason, _ := r["reason"].(string)
		for _, want := range reasonHas {
			if !strings.Contains(reason, want) {
				t.Errorf("request %s, %s: reason %q does not say %q", id, device, reason, want)
			}
		}
	}

	t.Run("sub-devices", func(t *testing.T) {
		subs := []string{"sub-ok-1", "sub-no-1", "sub-ok-2", "sub-no-2"}
		req := &signerv1.SignSubDeviceLoginRequest{ProductKey: pkA, DeviceName: "gw-0001"}
		for _, dn := range subs {
			req.SubDevices = append(req.SubDevices, &signerv1.SubDevice{ProductKey: pkA, DeviceName: dn})
		}
		_, err := gw.grpc.SignSubDeviceLogin(ctxWithID("subs-1"), req)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("SignSubDeviceLogin = %v, want PERMISSION_DENIED", err)
		}
		// The answer names every refused sub-device, not only the first.
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "sub_devices[1]") || !strings.Contains(msg, "sub_devices[3]") {
			t.Errorf("message %q does not name sub_devices[1] and sub_devices[3]", msg)
		}
		recs := recordsOf("subs-1")
		if len(recs) != 1+len(subs) {
			t.Errorf("%d audit records, want the gateway's and one per sub-device: %v", len(recs), recs)
		}
		wantDenied("subs-1", pkA+"/gw-0001", recs, pkA+"/sub-no-1", pkA+"/sub-no-2")
		wantDenied("subs-1", pkA+"/sub-no-1", recs, "sub-device "+pkA+"/sub-no-1", "gateway "+pkA+"/gw-0001")
		wantDenied("subs-1", pkA+"/sub-no-2", recs, "sub-device "+pkA+"/sub-no-2", "gateway "+pkA+"/gw-0001")
		wantDenied("subs-1", pkA+"/sub-ok-1", recs, "policy:")
		wantDenied("subs-1", pkA+"/sub-ok-2", recs, "policy:")
	})

	batch := []*signerv1.SignMqttConnectRequest{
		{ProductKey: pkA, DeviceName: "gw-0001"},
		{ProductKey: pkA, DeviceName: "other-0001"},
		{ProductKey: "b2ProdB", DeviceName: "other-0002"},
	}
	t.Run("device calls a batch over gRPC", func(t *testing.T) {
		_, err := gw.grpc.BatchSignMqttConnect(ctxWithID("batch-grpc"), &signerv1.BatchSignMqttConnectRequest{Requests: batch})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("BatchSignMqttConnect = %v, want PERMISSION_DENIED", err)
		}
		recs := recordsOf("batch-grpc")
		if len(recs) != len(batch) {
			t.Errorf("%d audit records for %d items: %v", len(recs), len(batch), recs)
		}
		for _, it := range batch {
			wantDenied("batch-grpc", it.GetProductKey()+"/"+it.GetDeviceName(), recs, gw.name, "may not call BatchSignMqttConnect")
		}
	})
	t.Run("device calls a batch over REST", func(t *testing.T) {
		a := s.do(t, gw, attempt{what: "device batch", transport: "rest", rpc: "BatchSignMqttConnect", batch: batch, want: codes.PermissionDenied})
		recs := recordsOf(a.requestID)
		if len(recs) != len(batch) {
			t.Errorf("%d audit records for %d items: %v", len(recs), len(batch), recs)
		}
		for _, it := range batch {
			wantDenied(a.requestID, it.GetProductKey()+"/"+it.GetDeviceName(), recs, gw.name, "may not call BatchSignMqttConnect")
		}
	})
}
