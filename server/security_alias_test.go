package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/signerd/signerd/internal/pkitest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
)

// TestCertificateAliases presents client certificates from the trusted CA
// whose URI SANs spell a real device's name some other way (issue 12: the
// SAN aliyun-iot://{pk}/dev%2Db-0002 was decoded into device dev-b-0002 and
// got its credentials). Over gRPC and REST each is UNAUTHENTICATED, the
// audit record and the log say why, and the secret store is never asked;
// the device's own certificate, beside them, still works.
func TestCertificateAliases(t *testing.T) {
	s := startSecure(t, secOptions{})
	const victim = "dev-b-0002"
	s.putSecret(t, pkB, victim)
	own := s.ca.Device(t, pkB, victim)
	real := s.newCaller(t, "device:"+pkB+"/"+victim, &own, "")
	for _, tr := range []string{"grpc", "rest"} {
		s.do(t, real, attempt{what: "the device's own certificate", transport: tr, rpc: "SignMqttConnect", pk: pkB, dn: victim, want: codes.OK})
	}

	aliases := []struct {
		san    []string
		reason string // in the audit record and the log
	}{
		{[]string{"aliyun-iot://" + pkB + "/dev%2Db-0002"}, "percent-encoding"},
		{[]string{"aliyun-iot://" + pkB + "/dev%2db-0002"}, "percent-encoding"},
		{[]string{"aliyun-iot://" + pkB + "/%64%65%76%2D%62%2D%30%30%30%32"}, "percent-encoding"},
		{[]string{"ALIYUN-IOT://" + pkB + "/" + victim}, "scheme"},
		{[]string{"aliyun-iot://x@" + pkB + "/" + victim}, "user info"},
		{[]string{"aliyun-iot://" + pkB + ":8883/" + victim}, "port"},
		{[]string{"aliyun-iot://" + pkB + "/" + victim + "?"}, "query"},
		{[]string{"aliyun-iot://" + pkB + "/" + victim + "#"}, "fragment"},
		{[]string{"aliyun-iot://" + pkB + "/x/../" + victim}, "extra path segment"},
		{[]string{"aliyun-iot://" + pkB + "/dev-b-0001", "aliyun-iot://" + pkB + "/" + victim}, "identities"},
	}
	before, _ := s.store.snapshot()
	type call struct{ requestID, reason, san string }
	var calls []call
	for _, a := range aliases {
		cert := s.ca.Issue(t, pkitest.Options{CommonName: pkB + "." + victim, RawURIs: a.san})
		c := s.newCaller(t, "alias "+strings.Join(a.san, ","), &cert, "")
		for _, tr := range []string{"grpc", "rest"} {
			for _, rpc := range []string{"SignMqttConnect", "PreVerify"} {
				r := s.do(t, c, attempt{what: c.name, transport: tr, rpc: rpc, pk: pkB, dn: victim, want: codes.Unauthenticated})
				calls = append(calls, call{r.requestID, a.reason, a.san[len(a.san)-1]})
			}
			r := s.do(t, c, attempt{what: c.name + " batch", transport: tr, rpc: "BatchSignMqttConnect", want: codes.Unauthenticated,
				batch: []*signerv1.SignMqttConnectRequest{{ProductKey: pkB, DeviceName: victim}}})
			calls = append(calls, call{r.requestID, a.reason, a.san[len(a.san)-1]})
		}
	}
	after, byID := s.store.snapshot()
	if after != before {
		t.Errorf("alias certificates reached the secret store %d times (device %s/%s: %d lookups in all)",
			after-before, pkB, victim, byID[secrets.DeviceID{ProductKey: pkB, DeviceName: victim}])
	}

	// Every refusal's audit record and log line name the cause, and no
	// record names the victim as the caller.
	auditByID := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(s.audit.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line is not JSON: %q", line)
		}
		if id, _ := m["request_id"].(string); id != "" {
			auditByID[id] = m
		}
	}
	logs := s.logs.String()
	for _, c := range calls {
		rec := auditByID[c.requestID]
		if rec == nil {
			t.Errorf("request %s (SAN %q): no audit record", c.requestID, c.san)
			continue
		}
		reason, _ := rec["reason"].(string)
		if rec["caller"] != "unauthenticated" || rec["outcome"] != "denied" || !strings.Contains(reason, c.reason) {
			t.Errorf("request %s (SAN %q): audit caller %v, outcome %v, reason %q; want unauthenticated, denied, a reason naming %q",
				c.requestID, c.san, rec["caller"], rec["outcome"], reason, c.reason)
		}
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `"request_id":"`+c.requestID+`"`) && strings.Contains(line, c.reason) && strings.Contains(line, "Unauthenticated") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("request %s (SAN %q): no log line with the request id, Unauthenticated and %q", c.requestID, c.san, c.reason)
		}
	}
	if strings.Count(s.audit.String(), `"caller":"device:`+pkB+`/`+victim+`"`) != 2 {
		t.Errorf("audit records naming device:%s/%s as the caller: want only its own two calls", pkB, victim)
	}
	t.Run("audit", func(t *testing.T) { s.verifyAudit(t) })
}
