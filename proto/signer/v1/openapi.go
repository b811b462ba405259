package signerv1

import _ "embed"

// OpenAPI is the OpenAPI v2 document generated from signer.proto, served by
// signerd at /openapi.json.
//
//go:embed signer.swagger.json
var OpenAPI []byte
