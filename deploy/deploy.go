// Package deploy holds signerd's deployment artefacts: Kubernetes manifests
// (k8s/, a kustomize base with dev and prod overlays), the Vault side
// (vault/: policy, roles and apply.sh) and their tests. The Go code only
// embeds what other packages' tests must share with the real deployment.
package deploy

import _ "embed"

// VaultPolicy is signerd's Vault policy as shipped in vault/policy.hcl (and
// applied by vault/apply.sh): read device secrets in the KV v2 mount "iot",
// nothing else.
//
//go:embed vault/policy.hcl
var VaultPolicy string

// VaultTransitPolicy is the optional policy for products in Transit mode as
// shipped in vault/policy-transit.hcl (apply.sh TRANSIT=true): update on
// the Transit mount's hmac endpoint, nothing else.
//
//go:embed vault/policy-transit.hcl
var VaultTransitPolicy string
