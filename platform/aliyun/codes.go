package aliyun

import (
	"maps"
	"slices"
)

// Class says what a platform code means for retrying: whether another
// attempt can succeed and whether the platform may have acted on the
// request.
type Class int

const (
	// ClassSuccess: the request succeeded (code 200).
	ClassSuccess Class = iota
	// ClassPermanent: a refusal that a retry cannot fix (a wrong sign,
	// an unknown or disabled device, an activated device, a bad
	// parameter). Never retried; the platform did not act on the request.
	ClassPermanent
	// ClassThrottled: the platform refused to process the request now.
	// Retried with backoff; safe for registrations too, because a
	// throttled request was not processed.
	ClassThrottled
	// ClassServerError: the platform failed while handling the request.
	// Retried with backoff where the operation can be repeated
	// (pre-verification); a registration may have been processed, so its
	// outcome is unknown.
	ClassServerError
	// ClassUnknown: a code signerd does not know. Never retried; its
	// number and message are relayed.
	ClassUnknown
)

func (c Class) String() string {
	switch c {
	case ClassSuccess:
		return "success"
	case ClassPermanent:
		return "permanent"
	case ClassThrottled:
		return "throttled"
	case ClassServerError:
		return "server-error"
	}
	return "unknown"
}

// CodeInfo is what signerd knows about one platform code.
type CodeInfo struct {
	Code int
	// Meaning is the platform's documented meaning, in short.
	Meaning string
	// Kind is the Err* kind of an [*Error] carrying the code (nil for 200).
	Kind  error
	Class Class
}

// codeTable is every platform code signerd interprets; any other code is
// ErrUnknownCode. The auth endpoint (/auth/devicename,
// /auth/register/device) answers HTTP 200 with a JSON {code, message},
// and its codes come from the platform's device error-code tables
// ("Error codes for devices": common codes 400, 429, 460, 500, 5005,
// 6100, 6204, 6250, 6760; the HTTPS connection topic: 40000) and from
// the behaviour of the endpoint itself (401 for a sign it rejects, 5001
// for an unknown device, 6289 for an activated device's registration).
// What the caller of signerd sees for each kind is mapped in one place,
// service/errors.go (the gRPC code is noted on each row).
var codeTable = map[int]CodeInfo{
	// Success. OK.
	CodeSuccess: {Meaning: "success", Class: ClassSuccess},
	// "An error occurred when the system processed the request": the auth
	// endpoint answers it for a sign it rejects, so a retry with the
	// same secret gets it again. FAILED_PRECONDITION.
	CodeRequestRefused: {Meaning: "request error: the platform could not process the request (a sign it rejects)", Kind: ErrRequestRefused, Class: ClassPermanent},
	// "request auth error": the sign does not match the platform's
	// secret. FAILED_PRECONDITION.
	CodeSignatureMismatch: {Meaning: "request auth error: the sign does not match", Kind: ErrSignatureMismatch, Class: ClassPermanent},
	// "too many requests": throttled. Retried; then UNAVAILABLE.
	CodeTooManyRequests: {Meaning: "too many requests: throttled", Kind: ErrThrottled, Class: ClassThrottled},
	// "request parameter error": a parameter is empty, malformed or too
	// long. INVALID_ARGUMENT.
	CodeBadParameter: {Meaning: "request parameter error", Kind: ErrBadParameter, Class: ClassPermanent},
	// "An unknown error occurred in IoT Platform". Retried where safe;
	// then UNAVAILABLE (registration: ABORTED, outcome unknown).
	CodeInternal: {Meaning: "an unknown error occurred in the platform", Kind: ErrUpstream, Class: ClassServerError},
	// The device does not exist. NOT_FOUND.
	CodeDeviceNotFound: {Meaning: "device not found", Kind: ErrDeviceNotFound, Class: ClassPermanent},
	// "An error occurred when the system queried the product
	// information": check the ProductKey. NOT_FOUND.
	CodeProductNotFound: {Meaning: "product information not found: check the ProductKey", Kind: ErrProductNotFound, Class: ClassPermanent},
	// "the system did not find the specified device". NOT_FOUND.
	CodeDeviceNotExist: {Meaning: "device information not found", Kind: ErrDeviceNotFound, Class: ClassPermanent},
	// The device may not authenticate this way (assumed; the platform's
	// tables do not list it). FAILED_PRECONDITION.
	CodeAuthTypeMismatch: {Meaning: "the device does not use this authentication type", Kind: ErrAuthTypeMismatch, Class: ClassPermanent},
	// "The specified device is disabled". FAILED_PRECONDITION.
	CodeDeviceDisabled: {Meaning: "the device is disabled", Kind: ErrDeviceDisabled, Class: ClassPermanent},
	// "An error occurred when the system queried the product
	// information" (as 5005). NOT_FOUND.
	CodeProductNotExist: {Meaning: "product information not found: check the ProductKey", Kind: ErrProductNotFound, Class: ClassPermanent},
	// The device has been activated and cannot register dynamically
	// again until it is reset on the platform (ResetThing).
	// FAILED_PRECONDITION.
	CodeAlreadyActivated: {Meaning: "the device is already activated: reset it on the platform to register it again", Kind: ErrAlreadyActivated, Class: ClassPermanent},
	// "A system exception occurred". Handled as code 500.
	CodeSystemException: {Meaning: "a system exception occurred in the platform", Kind: ErrUpstream, Class: ClassServerError},
	// "request too many" (HTTPS connection topic): throttled. As 429.
	CodeRequestTooMany: {Meaning: "request too many: throttled", Kind: ErrThrottled, Class: ClassThrottled},
}

func init() {
	for code, info := range codeTable {
		info.Code = code
		codeTable[code] = info
	}
}

// LookupCode returns what signerd knows about a platform code; for an
// unknown code, the result has Class ClassUnknown and Kind ErrUnknownCode.
func LookupCode(code int) CodeInfo {
	if info, ok := codeTable[code]; ok {
		return info
	}
	return CodeInfo{Code: code, Meaning: "a code signerd does not know", Kind: ErrUnknownCode, Class: ClassUnknown}
}

// Codes returns every platform code signerd interprets, in ascending
// order.
func Codes() []CodeInfo {
	out := make([]CodeInfo, 0, len(codeTable))
	for _, code := range slices.Sorted(maps.Keys(codeTable)) {
		out = append(out, codeTable[code])
	}
	return out
}
