package aliyun_test

import (
	"testing"

	signing "github.com/signerd/signerd/signing/aliyun"
)

var benchMethods = []signing.Method{signing.MethodHMACSHA256, signing.MethodHMACSHA1, signing.MethodHMACMD5}

func benchRequest(m signing.Method) signing.ConnectRequest {
	return signing.ConnectRequest{
		ProductKey: "a1FakePK01",
		DeviceName: "dev-001",
		ClientID:   "dev-001",
		Timestamp:  "1700000000000",
		Method:     m,
		Transport:  signing.TransportTLS,
	}
}

func BenchmarkSignConnect(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, m := range benchMethods {
		b.Run(m.String(), func(b *testing.B) {
			req := benchRequest(m)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := signing.SignConnect(req, signing.DeviceSecretMAC(secret)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHMACHex(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, m := range benchMethods {
		b.Run(m.String(), func(b *testing.B) {
			content := signing.ConnectSignContent(benchRequest(m))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := signing.HMACHex(m, secret, content); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkConnectSignContent(b *testing.B) {
	req := benchRequest(signing.MethodHMACSHA256)
	b.ReportAllocs()
	for b.Loop() {
		_ = signing.ConnectSignContent(req)
	}
}

func BenchmarkValidate(b *testing.B) {
	req := benchRequest(signing.MethodHMACSHA256)
	b.ReportAllocs()
	for b.Loop() {
		if err := req.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
