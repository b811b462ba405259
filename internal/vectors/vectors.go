// Package vectors loads the known-answer vectors of the platform's MQTT
// signing (signing/aliyun/testdata/mqtt_sign.json, made by an independent
// implementation) for tests in every package: the signing rules, the
// service, both transports and the real Vault backend must all reproduce
// them byte for byte.
package vectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
)

// Case is one known answer.
type Case struct {
	Input  Input  `json:"input"`
	Expect Expect `json:"expect"`
}

// Input is what the vector signs.
type Input struct {
	ProductKey   string `json:"productKey"`
	DeviceName   string `json:"deviceName"`
	DeviceSecret string `json:"deviceSecret"`
	ClientID     string `json:"clientId"`
	// Timestamp is empty when the case signs without one.
	Timestamp  string `json:"timestamp"`
	SignMethod string `json:"signMethod"`
	SecureMode int    `json:"secureMode"`
}

// Expect is the platform-accepted answer.
type Expect struct {
	ClientID    string `json:"clientId"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	SignContent string `json:"signContent"`
}

// Path is the vectors file in the repository.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "signing", "aliyun", "testdata", "mqtt_sign.json")
}

// Load reads every case. It fails loudly rather than returning an empty list,
// so a test over the vectors can never pass by testing nothing.
func Load() ([]Case, error) {
	data, err := os.ReadFile(Path())
	if err != nil {
		return nil, err
	}
	var cs []Case
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, os.ErrNotExist
	}
	return cs, nil
}

// MustLoad is Load for tests and benchmarks.
func MustLoad() []Case {
	cs, err := Load()
	if err != nil {
		panic("vectors: " + err.Error())
	}
	return cs
}
