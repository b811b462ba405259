package service_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"testing/quick"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
)

// wantGRPC is what a caller sees for each platform code, for PreVerify and
// for RegisterDevice. Every code of platform.Codes must be here, so that a
// code added to the table cannot go unchecked.
var wantGRPC = map[int][2]codes.Code{
	400:   {codes.FailedPrecondition, codes.FailedPrecondition}, // a sign the platform rejects
	401:   {codes.FailedPrecondition, codes.FailedPrecondition}, // sign mismatch
	429:   {codes.Unavailable, codes.Unavailable},               // throttled, after retries
	460:   {codes.InvalidArgument, codes.InvalidArgument},       // a bad parameter
	500:   {codes.Unavailable, codes.Aborted},                   // the platform failed; a registration may have happened
	5001:  {codes.NotFound, codes.NotFound},
	5005:  {codes.NotFound, codes.NotFound},
	6100:  {codes.NotFound, codes.NotFound},
	6200:  {codes.FailedPrecondition, codes.FailedPrecondition},
	6204:  {codes.FailedPrecondition, codes.FailedPrecondition}, // device disabled
	6250:  {codes.NotFound, codes.NotFound},
	6289:  {codes.FailedPrecondition, codes.FailedPrecondition}, // already activated: reset it on the platform
	6760:  {codes.Unavailable, codes.Aborted},
	40000: {codes.Unavailable, codes.Unavailable}, // throttled
}

// codeResult calls PreVerify (or RegisterDevice) through the strict
// emulator answering code, with one retry allowed, and returns the error
// the number of requests the emulator saw and the error.
func codeResult(t *testing.T, register bool, code int) (*regFixture, int, error) {
	t.Helper()
	f := newReg(t, service.RegistrationConfig{}) // Retries 1
	ctx := context.Background()
	var err error
	if register {
		f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: code, Message: "msg of " + strconv.Itoa(code)})
		_, err = f.register(regDN)
	} else {
		const devSecret = "0123456789abcdef0123456789abcdef"
		f.reg.devices[secrets.DeviceID{ProductKey: regPK, DeviceName: regDN}] = devSecret
		f.emu.AddDevice(regPK, regDN, devSecret)
		f.emu.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: code, Message: "msg of " + strconv.Itoa(code)})
		_, err = f.svc.PreVerify(ctx, &signerv1.PreVerifyRequest{ProductKey: regPK, DeviceName: regDN})
	}
	return f, f.emu.Calls(), err
}

// errorInfo returns the google.rpc.ErrorInfo of err, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

// TestPlatformCodes: every code of the table, and codes signerd does not
// know, through the strict emulator for both RPCs: the gRPC code, the
// number of requests (retries), and a message and details that carry the
// platform's code and message.
func TestPlatformCodes(t *testing.T) {
	infos := append(platform.Codes(), platform.LookupCode(6288), platform.LookupCode(99999))
	for _, info := range infos {
		if info.Class == platform.ClassSuccess {
			continue
		}
		want, ok := wantGRPC[info.Code]
		if !ok && info.Class != platform.ClassUnknown {
			t.Errorf("code %d is in the table but not in wantGRPC", info.Code)
			continue
		}
		if info.Class == platform.ClassUnknown {
			want = [2]codes.Code{codes.Unknown, codes.Unknown}
		}
		for i, rpc := range []string{"PreVerify", "RegisterDevice"} {
			register := i == 1
			t.Run(rpc+"/"+strconv.Itoa(info.Code), func(t *testing.T) {
				f, calls, err := codeResult(t, register, info.Code)
				wantCalls := 1
				if info.Class == platform.ClassThrottled || (info.Class == platform.ClassServerError && !register) {
					wantCalls = 2
				}
				st := status.Convert(err)
				if st.Code() != want[i] || calls != wantCalls {
					t.Errorf("%v after %d requests; want %v after %d", err, calls, want[i], wantCalls)
				}
				msg := "msg of " + strconv.Itoa(info.Code)
				if !strings.Contains(st.Message(), msg) {
					t.Errorf("message %q lacks the platform's message %q", st.Message(), msg)
				}
				ei := errorInfo(err)
				if ei == nil || ei.GetReason() == "" || ei.GetMetadata()["platform_code"] != strconv.Itoa(info.Code) ||
					ei.GetMetadata()["platform_message"] != msg {
					t.Errorf("ErrorInfo %v, want a reason, the platform's code %d and message", ei, info.Code)
				}
				if info.Class == platform.ClassUnknown {
					if !strings.Contains(st.Message(), strconv.Itoa(info.Code)) || !strings.Contains(f.logs.String(), `"platform_code":`+strconv.Itoa(info.Code)) {
						t.Errorf("unknown code %d: not in the message %q or the log:\n%s", info.Code, st.Message(), f.logs)
					}
				}
				if register && (f.reg.creates != 0 || len(f.reg.devices) != 0) {
					t.Error("a failed registration wrote to the registry")
				}
			})
		}
	}
}

// TestRefusalsNeverUnavailable is the property over any code: a refusal a
// retry cannot fix (and a code signerd does not know) is sent once and is
// never answered UNAVAILABLE, for either RPC.
func TestRefusalsNeverUnavailable(t *testing.T) {
	prop := func(raw uint16, register bool) bool {
		code := int(raw)
		if raw%2 == 0 {
			known := platform.Codes()
			code = known[rand.N(len(known))].Code + int(raw%5) - 2
		}
		info := platform.LookupCode(code)
		if info.Class != platform.ClassPermanent && info.Class != platform.ClassUnknown {
			return true
		}
		_, calls, err := codeResult(t, register, code)
		if c := status.Code(err); c == codes.Unavailable || c == codes.OK || c == codes.Aborted || calls != 1 {
			t.Logf("code %d (register %v): %v after %d requests", code, register, err, calls)
			return false
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 60}); err != nil {
		t.Error(err)
	}
}
