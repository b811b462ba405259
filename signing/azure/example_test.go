package azure_test

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/signerd/signerd/signing/azure"
)

func ExampleSignHub() {
	// The device's primaryKey as the portal shows it; the service's MAC
	// may instead be Vault Transit's, holding the key.
	key, _ := base64.StdEncoding.DecodeString("IX9g2Sc2bSF16HrUHZnaAfyWhAfpOxnkXGwj8YOl5DU=")
	login, err := azure.SignHub(azure.HubRequest{
		Hub:      "myhub",
		DeviceID: "dev-001",
		IssuedAt: time.Unix(1700000000, 0),
	}, azure.KeyMAC(key))
	if err != nil {
		fmt.Println(err)
		return
	}
	ep, _ := azure.HubEndpoint(azure.HubHost("myhub"), azure.TransportWebSocketTLS)
	fmt.Println("uri:", ep.URI)
	fmt.Println("clientId:", login.ClientID)
	fmt.Println("username:", login.Username)
	fmt.Println("password:", login.Password)
	fmt.Println("expiresAt:", login.ExpiresAt)

	// Invalid input is refused, naming the field, before the key is used.
	_, err = azure.SignHub(azure.HubRequest{Hub: "myhub", DeviceID: "dev#1", IssuedAt: time.Unix(1700000000, 0)}, azure.KeyMAC(key))
	fmt.Println(err)
	// Output:
	// uri: wss://myhub.azure-devices.net:443/$iothub/websocket
	// clientId: dev-001
	// username: myhub.azure-devices.net/dev-001/?api-version=2021-04-12
	// password: SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev-001&sig=LTXROPHu5%2BFOll8c7J%2FatBD%2FdfAXvOIuE%2B4VRBQww7U%3D&se=1700003600
	// expiresAt: 1700003600
	// deviceId: must be 1–128 characters of ASCII letters, digits and -.%_*?!(),:=@$'
}

func ExampleSignDPS() {
	// An enrollment group's key (Microsoft's documentation example). The
	// service passes a MAC that holds it, such as Vault Transit's, and
	// never sees it.
	groupKey, _ := base64.StdEncoding.DecodeString("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")
	groupMAC := azure.KeyMAC(groupKey)
	const regID = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"

	deviceMAC, err := azure.DerivedMAC(groupMAC, regID)
	if err != nil {
		fmt.Println(err)
		return
	}
	login, err := azure.SignDPS(azure.DPSRequest{
		IDScope:        "0ne00000A0A",
		RegistrationID: regID,
		IssuedAt:       time.Unix(1700000000, 0),
	}, deviceMAC)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("uri:", azure.DPSEndpoint().URI)
	fmt.Println("clientId:", login.ClientID)
	fmt.Println("username:", login.Username)
	fmt.Println("password:", login.Password)
	// Output:
	// uri: mqtts://global.azure-devices-provisioning.net:8883
	// clientId: sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6
	// username: 0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6/api-version=2019-03-31
	// password: SharedAccessSignature sr=0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6&sig=zC%2FjsSbyMCw4dE4%2ByBjyLqzf%2Bhoi0dJox%2BqEXMcB4nk%3D&skn=registration&se=1700003600
}

func ExampleDeriveDeviceKey() {
	groupKey, _ := base64.StdEncoding.DecodeString("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")
	key, err := azure.DeriveDeviceKey(azure.KeyMAC(groupKey), "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if err != nil {
		fmt.Println(err)
		return
	}
	// What `az iot dps enrollment-group compute-device-key` prints.
	fmt.Println(base64.StdEncoding.EncodeToString(key))
	// Output:
	// Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=
}
