package azure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signerd/signerd/device"
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/secrets"
	azuresign "github.com/signerd/signerd/signing/azure"
)

// MQTT session settings of the logins, as Microsoft's Node.js device SDK
// connects (the SDK the signing rules follow; see package signing/azure).
const (
	// keepAliveSeconds: azure-iot-mqtt-base (mqtt_base.js, requirement
	// SRS_NODE_COMMON_MQTT_BASE_16_016) pings every 3 minutes "since the
	// Azure Load Balancer TCP Idle timeout default is 4 minutes"; it is
	// the MQTT base of both the hub and the provisioning client.
	keepAliveSeconds = 180
	// hubCleanSession: azure-iot-mqtt-base connects with
	// clean: config.clean || false and azure-iot-device-mqtt never sets
	// it, so a device keeps its session (subscriptions, queued
	// cloud-to-device messages) across connections.
	hubCleanSession = false
	// dpsCleanSession: azure-iot-provisioning-device-mqtt (mqtt.js,
	// SRS_NODE_PROVISIONING_MQTT_18_036) sets clean to true: a
	// registration is a single exchange.
	dpsCleanSession = true
	// protocolVersion: IoT Hub and DPS speak MQTT 3.1.1.
	protocolVersion = "3.1.1"
)

// Field names and reasons this package states itself (the others are
// signing/azure's).
const (
	fieldDeviceID   = "deviceId"
	fieldTransport  = "transport"
	reasonTransport = "must be TLS (8883) or WEBSOCKET_TLS (443): IoT Hub accepts MQTT over TLS only"
	reasonDerived   = "must also be a DPS registration id (1–128 characters of ASCII letters, digits and -._:, ending with a letter, digit or '-'): this hub's device keys derive from a DPS enrollment group"
)

// ttl returns the token lifetime a request's ttl_seconds asks for: 0 is
// the default; anything outside signing/azure's limits is a *FieldError
// for ttlSeconds.
func ttl(seconds int32) (time.Duration, error) {
	return azuresign.ResolveTTL(time.Duration(seconds) * time.Second)
}

// groupMAC is the MAC keyed with an enrollment group's key.
func groupMAC(ctx context.Context, keys platform.Keys, idScope, group string) azuresign.MAC {
	return keyMAC(ctx, keys, device.ID{Platform: azuresign.PlatformDPSGroup, ProductKey: idScope, DeviceName: group})
}

// keyMAC is the MAC keyed with id's key, which stays wherever keys
// computes its MACs.
func keyMAC(ctx context.Context, keys platform.Keys, id device.ID) azuresign.MAC {
	return func(content []byte) ([]byte, error) {
		return keys.MAC(ctx, id, secrets.HMACSHA256, content)
	}
}

// errRequestType is a programming error: the service hands each Signer
// the request of its own RPC.
func errRequestType(rpc string, req any) error {
	return fmt.Errorf("%s: unexpected request type %T", rpc, req)
}

// fieldErrors joins the non-nil errors, all *device.FieldError values, so
// that the service reports each as a violation.
func fieldErrors(errs ...error) error { return errors.Join(errs...) }
