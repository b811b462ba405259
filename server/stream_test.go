package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/proto/signer/v1"
)

// TestStreamSignMqttConnect streams 2,500 items (three chunks) with good,
// unknown and bad items, checks order, indexes and per-item codes, that the
// stream is authorized per item like a batch, refused to devices, and that
// every item leaves one audit record.
func TestStreamSignMqttConnect(t *testing.T) {
	ctx := context.Background()
	s := startSecure(t, secOptions{})
	var reqs []*signerv1.SignMqttConnectRequest
	var want []codes.Code
	for i := 0; i < 2500; i++ {
		dn := fmt.Sprintf("strm-%04d", i)
		switch {
		case i%50 == 7:
			reqs = append(reqs, &signerv1.SignMqttConnectRequest{ProductKey: pkA, DeviceName: "bad|" + dn})
			want = append(want, codes.InvalidArgument)
		case i%50 == 9:
			reqs = append(reqs, &signerv1.SignMqttConnectRequest{ProductKey: pkA, DeviceName: "nobody-" + dn})
			want = append(want, codes.NotFound)
		default:
			s.putSecret(t, pkA, dn)
			reqs = append(reqs, &signerv1.SignMqttConnectRequest{ProductKey: pkA, DeviceName: dn})
			want = append(want, codes.OK)
		}
	}
	collect := func(c signerv1.SignerServiceClient) ([]*signerv1.StreamSignMqttConnectResponse, error) {
		st, err := c.StreamSignMqttConnect(ctx, &signerv1.StreamSignMqttConnectRequest{Requests: reqs})
		if err != nil {
			return nil, err
		}
		var out []*signerv1.StreamSignMqttConnectResponse
		for {
			r, err := st.Recv()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}

	adminCert := s.ca.Backend(t, admin)
	got, err := collect(s.newCaller(t, "backend:"+admin, &adminCert, "").grpc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(got), len(reqs))
	}
	for i, r := range got {
		if int(r.GetIndex()) != i {
			t.Fatalf("result %d has index %d: out of order", i, r.GetIndex())
		}
		if c := codes.Code(r.GetError().GetCode()); c != want[i] {
			t.Errorf("item %d: %v, want %v", i, c, want[i])
		}
		if want[i] == codes.OK && !strings.HasPrefix(r.GetResponse().GetClientId(), pkA+".") {
			t.Errorf("item %d: answer %v", i, r.GetResponse())
		}
	}

	// A backend without StreamSignMqttConnect in its grant is refused the
	// stream, before any lookup.
	before, _ := s.store.snapshot()
	provCert := s.ca.Backend(t, provA)
	got, err = collect(s.newCaller(t, "backend:"+provA, &provCert, "").grpc)
	if status.Code(err) != codes.PermissionDenied || len(got) != 0 {
		t.Errorf("ungranted backend: %d results, %v; want PERMISSION_DENIED and none", len(got), err)
	}
	if after, _ := s.store.snapshot(); after != before {
		t.Errorf("store looked up %d times for an ungranted backend", after-before)
	}

	// Devices may not stream.
	devCert := s.ca.Device(t, pkA, "strm-0000")
	if _, err := collect(s.newCaller(t, "device:"+pkA+"/strm-0000", &devCert, "").grpc); status.Code(err) != codes.PermissionDenied {
		t.Errorf("device stream = %v, want PERMISSION_DENIED", err)
	}

	// One audit record per item, for each of the three streams: the
	// refused streams (the ungranted backend's and the device's) too name
	// every device they asked for, each denied with the reason.
	n := 0
	deviceDenials := map[string]bool{}
	for _, line := range strings.Split(s.audit.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["rpc"] != "StreamSignMqttConnect" {
			continue
		}
		n++
		if m["caller"] == "device:"+pkA+"/strm-0000" {
			if m["outcome"] != "denied" || m["code"] != "PermissionDenied" || !strings.Contains(fmt.Sprint(m["reason"]), "may not call StreamSignMqttConnect") {
				t.Errorf("record of the refused device stream: %s", line)
			}
			deviceDenials[fmt.Sprint(m["product_key"], "/", m["device_name"])] = true
		}
	}
	if want := 3 * len(reqs); n != want {
		t.Errorf("audit records for the streams = %d, want %d", n, want)
	}
	for _, r := range reqs {
		if !deviceDenials[r.GetProductKey()+"/"+r.GetDeviceName()] {
			t.Errorf("no denial record naming %s/%s for the device's stream", r.GetProductKey(), r.GetDeviceName())
			break
		}
	}
}
