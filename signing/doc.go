// Package signing is the home of the IoT platforms' sign rules: one
// package per platform below it, each holding that platform's rules for
// the credentials and forms its devices and its endpoints take. The
// Alibaba Cloud IoT Platform's are in [github.com/signerd/signerd/signing/aliyun],
// Azure IoT Hub's and its Device Provisioning Service's in
// [github.com/signerd/signerd/signing/azure].
//
// This package itself holds no code: no rule is shared by every platform,
// and the identity they share (product key, device name and their checks)
// is package device's. A platform's rules stay pure (no I/O, no clock, no
// keys held; each sign function takes a MAC), so that they can be tested
// against fixed vectors and fuzzed.
package signing
