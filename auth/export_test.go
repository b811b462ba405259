package auth

import (
	"context"
	"encoding/json"

	"github.com/MicahParks/keyfunc/v3"
)

// SetJWKS replaces the verifier's key set as a JWKS URL refresh does.
func SetJWKS(v *JWTVerifier, raw json.RawMessage) error {
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return err
	}
	keys, err := kf.Storage().KeyReadAll(context.Background())
	if err != nil {
		return err
	}
	return v.keys.Storage().KeyReplaceAll(context.Background(), keys)
}
