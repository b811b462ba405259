package aliyun_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"testing/quick"

	platform "github.com/signerd/signerd/platform/aliyun"
	platformtest "github.com/signerd/signerd/platform/aliyun/aliyuntest"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// documented are the platform codes the table must hold: those of the
// platform's device error-code tables and the auth endpoint's own.
var documented = []int{200, 400, 401, 429, 460, 500, 5001, 5005, 6100, 6200, 6204, 6250, 6289, 6760, 40000}

func TestCodeTableHoldsTheDocumentedCodes(t *testing.T) {
	var got []int
	for _, info := range platform.Codes() {
		got = append(got, info.Code)
		if info.Meaning == "" || (info.Kind == nil) != (info.Code == platform.CodeSuccess) {
			t.Errorf("code %d: meaning %q, kind %v", info.Code, info.Meaning, info.Kind)
		}
		if platform.LookupCode(info.Code) != info {
			t.Errorf("LookupCode(%d) differs from the table", info.Code)
		}
	}
	if len(got) != len(documented) {
		t.Errorf("table holds %v, want %v", got, documented)
	}
	for _, c := range documented {
		if platform.LookupCode(c).Class == platform.ClassUnknown {
			t.Errorf("code %d is not in the table", c)
		}
	}
	if info := platform.LookupCode(6288); info.Class != platform.ClassUnknown || info.Kind != platform.ErrUnknownCode {
		t.Errorf("LookupCode(6288) = %+v, want an unknown code", info)
	}
}

// codeCall answers one call with code through the strict emulator and
// returns the error and the number of requests the emulator saw.
func codeCall(t *testing.T, register bool, code int) (*platform.Error, int) {
	t.Helper()
	e := regEnv(t, fastConfig()) // Retries 2
	e.srv.Inject(platformtest.Fault{Kind: platformtest.FaultCode, Code: code, Message: "msg of " + strconv.Itoa(code)})
	var err error
	if register {
		_, err = e.register(t, registerForm(t, productSecret, "r1", signing.MethodHMACSHA256))
	} else {
		_, err = e.call(t, signedForm(t, secret, signing.MethodHMACSHA256, ""))
	}
	var pe *platform.Error
	if !errors.As(err, &pe) {
		t.Fatalf("code %d: error %v is not a *platform.Error", code, err)
	}
	if pe.Code != code || pe.Message != "msg of "+strconv.Itoa(code) {
		t.Errorf("code %d: Code %d, Message %q; want the platform's", code, pe.Code, pe.Message)
	}
	return pe, e.srv.Calls()
}

// TestEveryCode runs every code of the table (and an unknown one) through
// the emulator, for both operations, and checks the kind and the number
// of requests: refusals and unknown codes are sent once; throttling is
// retried; a server error is retried where the operation can be repeated,
// and ends a registration as "outcome unknown" after one request.
func TestEveryCode(t *testing.T) {
	codes := append(platform.Codes(), platform.LookupCode(6288), platform.LookupCode(12345))
	for _, info := range codes {
		if info.Class == platform.ClassSuccess {
			continue
		}
		for _, register := range []bool{false, true} {
			op := "pre-verify"
			if register {
				op = "register"
			}
			t.Run(op+"/"+strconv.Itoa(info.Code), func(t *testing.T) {
				pe, calls := codeCall(t, register, info.Code)
				wantKind, wantCalls := info.Kind, 1
				switch {
				case info.Class == platform.ClassThrottled:
					wantCalls = 3
				case info.Class == platform.ClassServerError && !register:
					wantCalls = 3
				case info.Class == platform.ClassServerError && register:
					wantKind = platform.ErrOutcomeUnknown
				}
				if !errors.Is(pe, wantKind) || calls != wantCalls || pe.Attempts != wantCalls {
					t.Errorf("%v after %d requests (Attempts %d); want %v after %d", pe, calls, pe.Attempts, wantKind, wantCalls)
				}
			})
		}
	}
}

// TestRefusalsAreNeverRetried is the property: whatever the code, a
// refusal a retry cannot fix (and a code signerd does not know) is sent
// once and never reported as the platform being unavailable.
func TestRefusalsAreNeverRetried(t *testing.T) {
	prop := func(raw uint16, register bool) bool {
		// Codes near the known ones are likelier to matter.
		code := int(raw)
		if raw%2 == 0 {
			known := platform.Codes()
			code = known[rand.N(len(known))].Code + int(raw%5) - 2
		}
		info := platform.LookupCode(code)
		if info.Class != platform.ClassPermanent && info.Class != platform.ClassUnknown {
			return true
		}
		pe, calls := codeCall(t, register, code)
		if calls != 1 || pe.Attempts != 1 || errors.Is(pe, platform.ErrUnavailable) || errors.Is(pe, platform.ErrUpstream) ||
			errors.Is(pe, platform.ErrThrottled) || errors.Is(pe, platform.ErrOutcomeUnknown) {
			t.Logf("code %d (register %v): %v after %d requests", code, register, pe, calls)
			return false
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 150}); err != nil {
		t.Error(err)
	}
}
