package azure

import (
	"strconv"
	"time"
)

// Device Provisioning Service endpoint defaults.
const (
	// DPSHost is the global device endpoint of DPS.
	DPSHost = "global.azure-devices-provisioning.net"
	// DPSPort is its MQTT-over-TLS port.
	DPSPort = 8883
	// DPSAPIVersion is the api-version of the MQTT username, the one
	// Microsoft's provisioning SDK sends
	// (azure-iot-provisioning-device ProvisioningDeviceConstants.apiVersion).
	DPSAPIVersion = "2019-03-31"
	// dpsKeyName is the skn of a registration token.
	dpsKeyName = "registration"
)

// DPSEndpoint returns the DPS global endpoint over MQTT over TLS.
func DPSEndpoint() Endpoint {
	return Endpoint{Host: DPSHost, Port: DPSPort, URI: "mqtts://" + DPSHost + ":" + strconv.Itoa(DPSPort)}
}

// DPSRequest identifies a DPS registration login to sign.
type DPSRequest struct {
	// IDScope is the DPS instance's ID scope ([ValidateIDScope]).
	IDScope string
	// RegistrationID is the device's registration id
	// ([ValidateRegistrationID]).
	RegistrationID string
	// IssuedAt is the issue time; the token expires TTL after it.
	IssuedAt time.Time
	// TTL is the token's lifetime; 0 means [DefaultTTL] ([ResolveTTL]).
	TTL time.Duration
}

// Validate checks every field of r and returns a *FieldError for the first
// invalid one, in the order idScope, registrationId, ttlSeconds; or nil if
// r is valid.
func (r DPSRequest) Validate() error {
	if err := ValidateIDScope(r.IDScope); err != nil {
		return err
	}
	if err := ValidateRegistrationID(r.RegistrationID); err != nil {
		return err
	}
	_, err := ResolveTTL(r.TTL)
	return err
}

// SignDPS validates req and returns the device's MQTT registration login to
// DPS ([DPSEndpoint]): clientId "{registrationId}", username
// "{idScope}/registrations/{registrationId}/api-version=2019-03-31", and as
// password the SAS token
//
//	SharedAccessSignature sr={idScope}/registrations/{registrationId}&sig={enc(base64(mac))}&skn=registration&se={expiry}
//
// where mac is HMAC-SHA256 by the device's key of
// "{idScope}/registrations/{registrationId}\n{expiry}". Unlike IoT Hub's,
// the resource URI is neither encoded in the token nor before signing:
// Microsoft's Node client (azure-iot-security-symmetric-key) signs and
// sends it as it is, and DPS checks the signature over sr as sent. For a
// group enrollment, mac is [DerivedMAC] of the group key's MAC.
//
// Errors are *FieldError values naming the first invalid field (see
// [DPSRequest.Validate]), mac's errors as they are, or an error if the MAC
// is not 32 bytes. mac is not called for an invalid req.
func SignDPS(req DPSRequest, mac MAC) (Login, error) {
	if err := req.Validate(); err != nil {
		return Login{}, err
	}
	se, err := expiry(req.IssuedAt, req.TTL)
	if err != nil {
		return Login{}, err
	}
	resource := req.IDScope + "/registrations/" + req.RegistrationID
	token, err := signToken(mac, resource, se, dpsKeyName)
	if err != nil {
		return Login{}, err
	}
	return Login{
		ClientID:  req.RegistrationID,
		Username:  resource + "/api-version=" + DPSAPIVersion,
		Password:  token,
		ExpiresAt: se,
	}, nil
}

// DeriveContent validates registrationID and returns the bytes DPS MACs
// with an enrollment group's key to derive the device's key: the
// registration id itself. The derived key, in the base64 form the portal
// and `az iot dps enrollment-group compute-device-key` show, is
// base64(HMAC-SHA256(groupKey, DeriveContent(registrationId))). It returns
// a *FieldError for the registrationId field.
func DeriveContent(registrationID string) ([]byte, error) {
	if err := ValidateRegistrationID(registrationID); err != nil {
		return nil, err
	}
	return []byte(registrationID), nil
}

// DeriveDeviceKey returns the raw (decoded) key of the device registered as
// registrationID in the enrollment group whose key groupMAC uses: the
// 32-byte HMAC-SHA256 of the registration id. Its base64 standard encoding
// is the derived key as Microsoft shows it. The caller never needs the
// group key: groupMAC may be Vault Transit's.
//
// Errors are a *FieldError for the registrationId field, groupMAC's errors
// as they are, or an error if the MAC is not 32 bytes; groupMAC is not
// called for an invalid registrationID.
func DeriveDeviceKey(groupMAC MAC, registrationID string) ([]byte, error) {
	content, err := DeriveContent(registrationID)
	if err != nil {
		return nil, err
	}
	return callMAC(groupMAC, content)
}

// DerivedMAC returns the MAC keyed with the device key derived for
// registrationID from the group key that groupMAC uses: the MAC that
// [SignDPS] takes for a group-enrolled device, and [SignHub] once DPS has
// assigned the device to a hub (its device id is its registration id).
// The derived key stays inside the returned MAC. Errors are those of
// [DeriveDeviceKey].
func DerivedMAC(groupMAC MAC, registrationID string) (MAC, error) {
	key, err := DeriveDeviceKey(groupMAC, registrationID)
	if err != nil {
		return nil, err
	}
	return KeyMAC(key), nil
}
