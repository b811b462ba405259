package service

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/audit"
	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/device"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// MaxSubDevices is the most sub-devices one SignSubDeviceLogin may name
// (the platform's batch_login limit).
const MaxSubDevices = signing.MaxSubDeviceLogin

// SignSubDeviceLogin implements signerv1.SignerServiceServer. The answer is
// all or nothing: one invalid, forbidden or failing sub-device fails the
// call, so that a gateway never publishes a partial login.
func (s *Server) SignSubDeviceLogin(ctx context.Context, req *signerv1.SignSubDeviceLoginRequest) (_ *signerv1.SignSubDeviceLoginResponse, err error) {
	defer func() { reportSubDevices(ctx, req, err) }()
	if err := s.authorizeDevice(ctx, "SignSubDeviceLogin", req.GetProductKey(), req.GetDeviceName()); err != nil {
		return nil, err
	}
	subs, err := s.subDeviceRequests(req, s.now())
	if err != nil {
		return nil, err
	}
	gwPK, gwDN := req.GetProductKey(), req.GetDeviceName()

	// Every sub-device is authorized before the store is asked about any
	// of them: a refused caller learns nothing about which devices exist.
	// All of them are asked, not just up to the first refusal, so that the
	// answer and the audit name every refused one.
	gw := auth.Device{ProductKey: gwPK, DeviceName: gwDN}
	var refused []string
	var denials []error
	for i, sub := range subs {
		if err := s.authz.AuthorizeSubDevice(ctx, gw, auth.Device{ProductKey: sub.ProductKey, DeviceName: sub.DeviceName}); err != nil {
			refused = append(refused, fmt.Sprintf("sub_devices[%d]", i))
			denials = append(denials, err)
		}
	}
	if len(refused) > 0 {
		return nil, deny(fmt.Sprintf("permission denied: %s not assigned to gateway %s/%s for this caller",
			strings.Join(refused, ", "), gwPK, gwDN), denials...)
	}
	// A method a sub-device's key home cannot compute fails the call
	// before any key is looked up.
	for i, sub := range subs {
		if err := s.keys.Check(sub.ProductKey, algorithm(sub.Method)); err != nil {
			st := status.Convert(toStatus(ctx, s.log, err))
			return nil, status.Errorf(st.Code(), "sub_devices[%d]: %s", i, st.Message())
		}
	}

	params := make([]signing.SubDeviceLoginParams, len(subs))
	errs := make([]error, len(subs))
	var g errgroup.Group
	g.SetLimit(batchConcurrency)
	for i, sub := range subs {
		g.Go(func() error {
			params[i], errs[i] = s.signSubDevice(ctx, sub)
			return nil // every item runs; the first failure by index is reported
		})
	}
	_ = g.Wait()
	for i, err := range errs {
		if err != nil {
			st := status.Convert(toStatus(ctx, s.log, err))
			return nil, status.Errorf(st.Code(), "sub_devices[%d]: %s", i, st.Message())
		}
	}

	topic, reply, err := signing.SubDeviceLoginTopic(gwPK, gwDN, len(params))
	if err != nil {
		return nil, toStatus(ctx, s.log, err) // validated above; a bug
	}
	payload, err := signing.SubDeviceLoginPayload(strconv.FormatUint(uint64(rand.Uint32()), 10), params)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &signerv1.SignSubDeviceLoginResponse{Topic: topic, ReplyTopic: reply, Payload: payload}
	for _, p := range params {
		resp.Params = append(resp.Params, &signerv1.SubDeviceLoginParams{
			ProductKey:   p.ProductKey,
			DeviceName:   p.DeviceName,
			ClientId:     p.ClientID,
			Timestamp:    p.Timestamp,
			SignMethod:   p.SignMethod,
			Sign:         p.Sign,
			CleanSession: p.CleanSession,
		})
	}
	return resp, nil
}

// reportSubDevices reports a SignSubDeviceLogin: each sub-device signed for
// when it succeeded; otherwise the gateway and, when refused, every
// sub-device it named with the refusal (which carries each denial).
func reportSubDevices(ctx context.Context, req *signerv1.SignSubDeviceLoginRequest, err error) {
	gw := auth.Device{ProductKey: req.GetProductKey(), DeviceName: req.GetDeviceName()}
	subs := req.GetSubDevices()
	var outs []audit.Outcome
	if err != nil {
		outs = append(outs, audit.Outcome{Device: gw, Err: err})
		if !errors.Is(err, auth.ErrDenied) || len(subs) > MaxStream {
			audit.Report(ctx, outs...)
			return
		}
	}
	for _, sub := range subs {
		o := audit.Outcome{Device: auth.Device{ProductKey: sub.GetProductKey(), DeviceName: sub.GetDeviceName()}, Err: err}
		if err == nil {
			o.Reason = "sub-device of gateway " + gw.String()
		}
		outs = append(outs, o)
	}
	audit.Report(ctx, outs...)
}

// signSubDevice signs one validated, authorized sub-device with its key,
// wherever that lives.
func (s *Server) signSubDevice(ctx context.Context, r signing.SubDeviceLoginRequest) (signing.SubDeviceLoginParams, error) {
	id := secrets.DeviceID{ProductKey: r.ProductKey, DeviceName: r.DeviceName}
	return signing.SignSubDeviceLogin(r, s.mac(ctx, id))
}

// subDeviceRequests validates req, applies the defaults and returns one
// request per sub-device for package signing. Violations name the field
// by its proto path, such as sub_devices[3].device_name.
func (s *Server) subDeviceRequests(req *signerv1.SignSubDeviceLoginRequest, now time.Time) ([]signing.SubDeviceLoginRequest, error) {
	var vs violations
	vs.add("product_key", device.ValidateProductKey(req.GetProductKey()))
	vs.add("device_name", device.ValidateDeviceName(req.GetDeviceName()))
	method, err := signMethod(req.GetSignMethod())
	vs.add("sign_method", err)
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	if req.TimestampMs != nil {
		if req.GetTimestampMs() < 0 {
			vs = append(vs, violation{field: "timestamp_ms", reason: "must not be negative"})
		}
		ts = strconv.FormatInt(req.GetTimestampMs(), 10)
	}
	clean := true
	if req.CleanSession != nil {
		clean = req.GetCleanSession()
	}

	items := req.GetSubDevices()
	if len(items) == 0 || len(items) > MaxSubDevices {
		vs = append(vs, violation{field: "sub_devices",
			reason: fmt.Sprintf("must hold 1–%d sub-devices, not %d", MaxSubDevices, len(items))})
		return nil, invalidArgument(vs)
	}
	out := make([]signing.SubDeviceLoginRequest, len(items))
	seen := make(map[[2]string]int, len(items))
	for i, sub := range items {
		f := fmt.Sprintf("sub_devices[%d].", i)
		clientID, namesOK := vs.device(f, sub.GetProductKey(), sub.GetDeviceName(), sub.GetClientId())
		if namesOK {
			key := [2]string{sub.GetProductKey(), sub.GetDeviceName()}
			switch j, dup := seen[key]; {
			case dup:
				vs = append(vs, violation{field: fmt.Sprintf("sub_devices[%d]", i),
					reason: fmt.Sprintf("names the same device as sub_devices[%d]", j)})
			case key == [2]string{req.GetProductKey(), req.GetDeviceName()}:
				vs = append(vs, violation{field: fmt.Sprintf("sub_devices[%d]", i),
					reason: "is the gateway itself"})
			default:
				seen[key] = i
			}
		}
		out[i] = signing.SubDeviceLoginRequest{
			ProductKey:   sub.GetProductKey(),
			DeviceName:   sub.GetDeviceName(),
			ClientID:     clientID,
			Timestamp:    ts,
			Method:       method,
			CleanSession: clean,
		}
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	return out, nil
}
