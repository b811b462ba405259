// Package vaultflags holds the Vault flags that signerd and signerctl
// share (where Vault is, how to log in, where device secrets are in it), so
// that both commands are configured, and their settings checked, the same
// way.
package vaultflags

import (
	"errors"
	"flag"
	"fmt"

	"github.com/signerd/signerd/secrets"
)

// Login says where Vault is and how to log in to it.
type Login struct {
	Addr, Namespace, Auth, TokenFile                 string
	AppRoleRoleID, AppRoleSecretIDFile, AppRoleMount string
	K8sRole, K8sTokenFile, K8sMount                  string
}

// Register defines the -vault-addr, -vault-namespace and -vault-auth flags
// and those of each auth method.
func (l *Login) Register(fs *flag.FlagSet) {
	fs.StringVar(&l.Addr, "vault-addr", "", "Vault address (default: VAULT_ADDR); VAULT_CACERT, VAULT_CLIENT_CERT etc. apply as usual")
	fs.StringVar(&l.Namespace, "vault-namespace", "", "Vault Enterprise namespace (default: VAULT_NAMESPACE)")
	fs.StringVar(&l.Auth, "vault-auth", "token", "Vault auth method: token, approle or kubernetes")
	fs.StringVar(&l.TokenFile, "vault-token-file", "", "with -vault-auth=token: file holding the token (default: VAULT_TOKEN)")
	fs.StringVar(&l.AppRoleRoleID, "vault-approle-role-id", "", "with -vault-auth=approle: the role id")
	fs.StringVar(&l.AppRoleSecretIDFile, "vault-approle-secret-id-file", "", "with -vault-auth=approle: file holding the secret id")
	fs.StringVar(&l.AppRoleMount, "vault-approle-mount", "approle", "with -vault-auth=approle: the auth mount path")
	fs.StringVar(&l.K8sRole, "vault-k8s-role", "", "with -vault-auth=kubernetes: the Vault role")
	fs.StringVar(&l.K8sTokenFile, "vault-k8s-token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "with -vault-auth=kubernetes: the service-account token file")
	fs.StringVar(&l.K8sMount, "vault-k8s-mount", "kubernetes", "with -vault-auth=kubernetes: the auth mount path")
}

// Validate reports every missing or bad login setting, naming its flag.
func (l Login) Validate() []error {
	var errs []error
	switch l.Auth {
	case "token":
	case "approle":
		if l.AppRoleRoleID == "" {
			errs = append(errs, errors.New("-vault-approle-role-id: required with -vault-auth=approle"))
		}
		if l.AppRoleSecretIDFile == "" {
			errs = append(errs, errors.New("-vault-approle-secret-id-file: required with -vault-auth=approle"))
		}
	case "kubernetes":
		if l.K8sRole == "" {
			errs = append(errs, errors.New("-vault-k8s-role: required with -vault-auth=kubernetes"))
		}
	default:
		errs = append(errs, fmt.Errorf("-vault-auth %q: want token, approle or kubernetes", l.Auth))
	}
	return errs
}

// AuthConfig is the login as secrets.AuthConfig.
func (l Login) AuthConfig() secrets.AuthConfig {
	return secrets.AuthConfig{
		Method:        l.Auth,
		AppRoleRoleID: l.AppRoleRoleID, AppRoleSecretIDFile: l.AppRoleSecretIDFile, AppRoleMount: l.AppRoleMount,
		KubernetesRole: l.K8sRole, KubernetesTokenFile: l.K8sTokenFile, KubernetesMount: l.K8sMount,
	}
}

// Layout says where device secrets are in Vault.
type Layout struct {
	KVMount, KVPath, KVField string
	TransitMount             string
}

// Register defines -vault-kv-mount, -vault-kv-path, -vault-kv-field and
// -vault-transit-mount; transitUsage says what the command uses Transit for.
func (l *Layout) Register(fs *flag.FlagSet, transitUsage string) {
	fs.StringVar(&l.KVMount, "vault-kv-mount", "iot", "KV v2 mount holding device secrets")
	fs.StringVar(&l.KVPath, "vault-kv-path", "devices/{productKey}/{deviceName}", "path of a device's secret in the mount")
	fs.StringVar(&l.KVField, "vault-kv-field", "deviceSecret", "field of the secret holding the DeviceSecret")
	fs.StringVar(&l.TransitMount, "vault-transit-mount", "transit", transitUsage)
}

// Validate reports every bad layout setting, naming its flag.
func (l Layout) Validate() []error {
	var errs []error
	if err := secrets.CheckPathTemplate(l.KVPath); err != nil {
		errs = append(errs, fmt.Errorf("-vault-kv-path: %w", err))
	}
	if l.KVField == "" || l.KVMount == "" || l.TransitMount == "" {
		errs = append(errs, errors.New("-vault-kv-mount, -vault-kv-field, -vault-transit-mount: must not be empty"))
	}
	return errs
}
