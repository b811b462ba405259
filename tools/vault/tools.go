//go:build tools

// Package tools pins the Vault server build used by scripts/vault.sh.
package tools

import _ "github.com/hashicorp/vault"
