// Package platform is the home of the IoT platforms' endpoint clients: one
// package per platform below it, each with the client for that platform's
// device endpoints (pre-verification, registration) and, below that, the
// emulator its tests run against. The Alibaba Cloud IoT Platform's client
// is [github.com/signerd/signerd/platform/aliyun], its emulator
// [github.com/signerd/signerd/platform/aliyun/aliyuntest].
//
// This package itself holds no code. A platform's client reports its
// outcomes to an observer interface of its own that package metrics
// satisfies, so neither imports the other.
package platform
