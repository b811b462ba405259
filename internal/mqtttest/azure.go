package mqtttest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

const sasPrefix = "SharedAccessSignature "

// sasToken is a parsed SharedAccessSignature: raw holds the fields as sent
// (sr still URL-encoded when the client encoded it), sr the decoded
// resource URI.
type sasToken struct {
	raw map[string]string
	sr  string
}

// parseSAS parses "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]" in any
// field order (the service does not care), checks se against now and
// returns the token.
func parseSAS(password string, now time.Time) (sasToken, error) {
	body, ok := strings.CutPrefix(password, sasPrefix)
	if !ok {
		return sasToken{}, errors.New("password is not a SharedAccessSignature token")
	}
	f, err := tokenFields(body, "sr", "sig", "se", "skn")
	if err != nil {
		return sasToken{}, fmt.Errorf("SharedAccessSignature: %w", err)
	}
	for _, k := range []string{"sr", "sig", "se"} {
		if f[k] == "" {
			return sasToken{}, fmt.Errorf("SharedAccessSignature has no %s", k)
		}
	}
	sr, err := unescape("sr", f["sr"])
	if err != nil {
		return sasToken{}, err
	}
	if err := expiry("se", f["se"], now); err != nil {
		return sasToken{}, err
	}
	return sasToken{raw: f, sr: sr}, nil
}

// verify checks sig against key. The string to sign is sr exactly as sent,
// "\n", se: IoT Hub signs URLENCODE(resourceUri), which is what a client
// following Microsoft's SDK sends as sr, and DPS signs the unencoded
// resource its Node client sends; the service computes the signature over
// the sr it received in both cases, so the broker does too, after
// checking that sr decodes to the expected resource.
func (t sasToken) verify(key []byte) error {
	sig, err := unescape("sig", t.raw["sig"])
	if err != nil {
		return err
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("sig is not base64 (a + or / left unencoded?): %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(t.raw["sr"] + "\n" + t.raw["se"]))
	if !hmac.Equal(got, m.Sum(nil)) {
		return errors.New("sig does not match the signature of sr and se with the device's key")
	}
	return nil
}

// apiVersion checks the api-version of a username's query part.
func apiVersion(query string) error {
	q, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("username query %q: %w", query, err)
	}
	v := q["api-version"]
	if len(v) != 1 {
		return errors.New("username has no single api-version")
	}
	if _, err := time.Parse("2006-01-02", v[0]); err != nil {
		return fmt.Errorf("api-version %q is not a YYYY-MM-DD version", v[0])
	}
	return nil
}

// checkAzure applies IoT Hub's rule: username
// {hubHost}/{deviceId}[/{moduleId}]/?api-version=…[&…], clientId
// {deviceId}[/{moduleId}], password a device (or module) SAS token whose
// sr is this identity's resource on this hub, signed with its key, not
// expired, and without skn (a token with skn is signed with a
// shared-access policy key, which the broker does not hold).
func (b *Broker) checkAzure(c packets.ConnectParams, now time.Time) (Device, error) {
	user := string(c.Username)
	path, query, ok := strings.Cut(user, "/?")
	if !ok {
		return Device{}, fmt.Errorf("username %q is not {hubHost}/{deviceId}[/{moduleId}]/?api-version=…", user)
	}
	if err := apiVersion(query); err != nil {
		return Device{}, err
	}
	parts := strings.Split(path, "/")
	if len(parts) != 2 && len(parts) != 3 || slices.Contains(parts, "") {
		return Device{}, fmt.Errorf("username %q is not {hubHost}/{deviceId}[/{moduleId}]/?api-version=…", user)
	}
	id := azureID{host: parts[0], device: parts[1]}
	name, resource := id.device, id.host+"/devices/"+id.device
	if len(parts) == 3 {
		id.module = parts[2]
		name += "/" + id.module
		resource += "/modules/" + id.module
	}
	if c.ClientIdentifier != name {
		return Device{}, fmt.Errorf("clientId %q is not %q, the identity the username names", c.ClientIdentifier, name)
	}
	b.mu.Lock()
	key, known := b.azure[id]
	b.mu.Unlock()
	if !known {
		return Device{}, fmt.Errorf("unknown device %s on hub %s", name, id.host)
	}
	tok, err := parseSAS(string(c.Password), now)
	if err != nil {
		return Device{}, err
	}
	if _, ok := tok.raw["skn"]; ok {
		return Device{}, errors.New("token has skn: it is signed with a shared access policy, not the device's key")
	}
	if tok.sr != resource {
		return Device{}, fmt.Errorf("token sr %q is not this identity's resource %q", tok.sr, resource)
	}
	if err := tok.verify(key); err != nil {
		return Device{}, err
	}
	return Device{ProductKey: id.host, DeviceName: name}, nil
}

// checkDPS applies DPS's registration rule: username
// {idScope}/registrations/{registrationId}/api-version=…[&…], clientId
// {registrationId}, password a SAS token with sr
// {idScope}/registrations/{registrationId}, skn=registration, signed with
// the key derived from the group the registration id belongs to.
func (b *Broker) checkDPS(c packets.ConnectParams, now time.Time) (Device, error) {
	user := string(c.Username)
	parts := strings.Split(user, "/")
	if len(parts) != 4 || parts[1] != "registrations" || slices.Contains(parts, "") {
		return Device{}, fmt.Errorf("username %q is not {idScope}/registrations/{registrationId}/api-version=…", user)
	}
	if err := apiVersion(parts[3]); err != nil {
		return Device{}, err
	}
	id := dpsID{idScope: parts[0], registrationID: parts[2]}
	if c.ClientIdentifier != id.registrationID {
		return Device{}, fmt.Errorf("clientId %q is not the registration id %q", c.ClientIdentifier, id.registrationID)
	}
	b.mu.Lock()
	key, known := b.dps[id]
	b.mu.Unlock()
	if !known {
		return Device{}, fmt.Errorf("registration id %s belongs to no enrollment group of id scope %s", id.registrationID, id.idScope)
	}
	tok, err := parseSAS(string(c.Password), now)
	if err != nil {
		return Device{}, err
	}
	if skn, err := unescape("skn", tok.raw["skn"]); err != nil || skn != "registration" {
		return Device{}, fmt.Errorf("skn %q, want registration", tok.raw["skn"])
	}
	if want := id.idScope + "/registrations/" + id.registrationID; tok.sr != want {
		return Device{}, fmt.Errorf("token sr %q is not this registration's resource %q", tok.sr, want)
	}
	if err := tok.verify(key); err != nil {
		return Device{}, err
	}
	return Device{ProductKey: id.idScope, DeviceName: id.registrationID}, nil
}
