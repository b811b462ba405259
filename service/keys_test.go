package service_test

import (
	"context"
	"crypto/sha256"
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signerd/signerd/auth"
	platform "github.com/signerd/signerd/platform/aliyun"
	signerv1 "github.com/signerd/signerd/proto/signer/v1"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/service"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// refusingPlatform fails the test if a request reaches the platform.
type refusingPlatform struct{ t *testing.T }

func (p refusingPlatform) PreVerify(context.Context, string, url.Values) (platform.Result, error) {
	p.t.Error("PreVerify reached the platform for a request the key home cannot sign")
	return platform.Result{}, nil
}

// TestKeyHomeRefusals runs the key-home refusals through every RPC that
// signs: a Transit product asked for a method Transit has not, and a
// Transit product on a server without Transit. The answers are the ones
// signerd gave before keys were routed in package secrets, word for word,
// and no key is looked up for them.
func TestKeyHomeRefusals(t *testing.T) {
	const pk = "a1TransitPK"
	products, err := signing.ParseProducts([]byte("products:\n  " + pk + ":\n    transit: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		noSHA1  = "product a1TransitPK keeps its device secrets in Vault Transit, whose HMAC has SHA-2/SHA-3 only: use SIGN_METHOD_HMAC_SHA256, not hmacsha1"
		noMD5   = "product a1TransitPK keeps its device secrets in Vault Transit, whose HMAC has SHA-2/SHA-3 only: use SIGN_METHOD_HMAC_SHA256, not hmacmd5"
		noHome  = "product a1TransitPK is in Transit mode, but this server has no Vault Transit configured"
		mSHA1   = signerv1.SignMethod_SIGN_METHOD_HMAC_SHA1
		mMD5    = signerv1.SignMethod_SIGN_METHOD_HMAC_MD5
		mSHA256 = signerv1.SignMethod_SIGN_METHOD_HMAC_SHA256
		mUnspec = signerv1.SignMethod_SIGN_METHOD_UNSPECIFIED
		subItem = "sub_devices[1]: "
	)
	type rpc func(svc *service.Server, m signerv1.SignMethod) error
	connect := func(svc *service.Server, m signerv1.SignMethod) error {
		_, err := svc.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{ProductKey: pk, DeviceName: "vault-0001", SignMethod: m})
		return err
	}
	preVerify := func(svc *service.Server, m signerv1.SignMethod) error {
		_, err := svc.PreVerify(context.Background(), &signerv1.PreVerifyRequest{ProductKey: pk, DeviceName: "vault-0001", SignMethod: m})
		return err
	}
	subDevices := func(svc *service.Server, m signerv1.SignMethod) error {
		_, err := svc.SignSubDeviceLogin(context.Background(), &signerv1.SignSubDeviceLoginRequest{ProductKey: gwPK, DeviceName: gwDN, SignMethod: m,
			SubDevices: append(subs(1), &signerv1.SubDevice{ProductKey: pk, DeviceName: "vault-0001"}, subs(3)[2])})
		return err
	}
	tests := []struct {
		name    string
		transit bool
		call    rpc
		method  signerv1.SignMethod
		wantMsg string
	}{
		{"connect sha1", true, connect, mSHA1, noSHA1},
		{"connect md5", true, connect, mMD5, noMD5},
		{"connect without Transit", false, connect, mSHA256, noHome},
		{"connect without Transit, default method", false, connect, mUnspec, noHome},
		{"pre-verify sha1", true, preVerify, mSHA1, noSHA1},
		{"pre-verify md5", true, preVerify, mMD5, noMD5},
		{"pre-verify without Transit", false, preVerify, mSHA256, noHome},
		{"sub-devices sha1", true, subDevices, mSHA1, subItem + noSHA1},
		{"sub-devices md5", true, subDevices, mMD5, subItem + noMD5},
		{"sub-devices without Transit", false, subDevices, mSHA256, subItem + noHome},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := subStore()
			tr := &fakeTransit{keys: map[secrets.DeviceID]string{{ProductKey: pk, DeviceName: "vault-0001"}: "transit-key-0123456789"}}
			opts := []service.Option{service.WithAuthorizer(auth.AllowAll()), service.WithProducts(products), service.WithClock(fixedClock),
				service.WithPreVerify(refusingPlatform{t}, service.TokenConfig{})}
			if tc.transit {
				opts = append(opts, withTransit(store, products, tr))
			}
			err := tc.call(service.New(store, opts...), tc.method)
			if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != tc.wantMsg {
				t.Errorf("%v, want FAILED_PRECONDITION %q", err, tc.wantMsg)
			}
			if store.n.Load() != 0 || tr.calls != 0 {
				t.Errorf("store asked %d times, Transit %d times; want neither", store.n.Load(), tr.calls)
			}
		})
	}
}

// TestKeyRouting checks which key home signs for which product: a Transit
// product in Transit, any other in the store, per call.
func TestKeyRouting(t *testing.T) {
	const pk = "a1TransitPK"
	products, err := signing.ParseProducts([]byte("products:\n  " + pk + ":\n    transit: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := subStore()
	tr := &fakeTransit{keys: map[secrets.DeviceID]string{{ProductKey: pk, DeviceName: "vault-0001"}: "transit-key-0123456789"}}
	svc := service.New(store, service.WithAuthorizer(auth.AllowAll()), service.WithProducts(products), withTransit(store, products, tr), service.WithClock(fixedClock))
	tests := []struct {
		pk, dn, secret    string
		wantStore, wantTr int64
	}{
		{pk, "vault-0001", "transit-key-0123456789", 0, 1},
		{subP, "sub-0001", subSecret("sub-0001"), 1, 0},
	}
	ts := int64(1700000000000)
	for _, tc := range tests {
		store.n.Store(0)
		tr.calls = 0
		resp, err := svc.SignMqttConnect(context.Background(), &signerv1.SignMqttConnectRequest{ProductKey: tc.pk, DeviceName: tc.dn,
			ClientId: "c1", TimestampMs: &ts})
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.pk, tc.dn, err)
		}
		if want := refSign(sha256.New, tc.secret, tc.pk, tc.dn, "c1", "1700000000000"); resp.GetPassword() != want {
			t.Errorf("%s/%s: password %q, want %q", tc.pk, tc.dn, resp.GetPassword(), want)
		}
		if store.n.Load() != tc.wantStore || int64(tr.calls) != tc.wantTr {
			t.Errorf("%s/%s: store asked %d times, Transit %d; want %d, %d", tc.pk, tc.dn, store.n.Load(), tr.calls, tc.wantStore, tc.wantTr)
		}
	}
}
