package secrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// ProductPathTemplate locates a product's ProductSecret in the Vault
	// store's KV v2 mount; default "products/{productKey}". It must
	// contain {productKey} and must not contain {deviceName}.
	ProductPathTemplate string
	// ProductField is the secret's key holding the ProductSecret; default
	// "productSecret".
	ProductField string
}

// Defaults of RegistryConfig.
const (
	DefaultProductPathTemplate = "products/{productKey}"
	DefaultProductField        = "productSecret"
)

// Registry is the Vault side of dynamic registration: it reads a
// product's ProductSecret and creates a device's secret, never replacing
// one (KV v2 check-and-set with cas=0). It uses the Vault store's client,
// token, mount, device path template, field and timeout.
//
// signerd's default Vault policy allows neither: the registration policy
// (deploy/vault/policy-registration.hcl) adds read on the products' path
// and create (not update) on the devices' path.
type Registry struct {
	v     *Vault
	tmpl  string
	field string
}

// NewRegistry returns a Registry on v's mount.
func NewRegistry(v *Vault, cfg RegistryConfig) (*Registry, error) {
	if cfg.ProductPathTemplate == "" {
		cfg.ProductPathTemplate = DefaultProductPathTemplate
	}
	if cfg.ProductField == "" {
		cfg.ProductField = DefaultProductField
	}
	if err := CheckProductTemplate(cfg.ProductPathTemplate); err != nil {
		return nil, err
	}
	return &Registry{v: v, tmpl: cfg.ProductPathTemplate, field: cfg.ProductField}, nil
}

// CheckProductTemplate checks a ProductSecret path template.
func CheckProductTemplate(t string) error {
	switch {
	case !strings.Contains(t, "{productKey}"):
		return fmt.Errorf("vault product path template %q: must contain {productKey}", t)
	case strings.Contains(t, "{deviceName}"):
		return fmt.Errorf("vault product path template %q: must not contain {deviceName} (one ProductSecret per product)", t)
	case strings.HasPrefix(t, "/") || strings.Contains(t, ".."):
		return fmt.Errorf("vault product path template %q: must be relative to the mount, without '..'", t)
	}
	return nil
}

// ProductLocation names where the ProductSecret of productKey is kept,
// such as "vault iot/data/products/a1PK field productSecret", for
// messages. It never contains a secret.
func (r *Registry) ProductLocation(productKey string) string {
	return fmt.Sprintf("vault %s/data/%s field %s", r.v.cfg.Mount, r.productPath(productKey), r.field)
}

// DeviceLocation names where the secret of id is kept, for messages.
func (r *Registry) DeviceLocation(id DeviceID) string {
	return fmt.Sprintf("vault %s/data/%s", r.v.cfg.Mount, r.v.path(id))
}

func (r *Registry) productPath(productKey string) string {
	return strings.ReplaceAll(r.tmpl, "{productKey}", productKey)
}

// ProductSecret returns the ProductSecret of productKey. It returns an
// error wrapping ErrNotFound when there is none (or its latest version is
// deleted), ErrUnusable when the field is missing, empty or not a string,
// and ErrUnavailable or ErrPermission as Lookup does. Errors name the
// location, never the value.
func (r *Registry) ProductSecret(ctx context.Context, productKey string) (Secret, error) {
	if productKey == "" || strings.ContainsAny(productKey, "/?#%") {
		return Secret{}, fmt.Errorf("product %q: invalid name: %w", productKey, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, r.v.cfg.Timeout)
	defer cancel()
	s, err := r.v.kv.Get(ctx, r.productPath(productKey))
	loc := fmt.Sprintf("product %s: ProductSecret (%s)", productKey, r.ProductLocation(productKey))
	if err != nil {
		return Secret{}, wrapRequestError("product "+productKey+": ProductSecret", loc, err)
	}
	if s == nil || s.Data == nil {
		return Secret{}, fmt.Errorf("%s: %w", loc, ErrNotFound)
	}
	str, ok := s.Data[r.field].(string)
	if !ok || str == "" {
		return Secret{}, fmt.Errorf("%s: missing, empty or not a string: %w", loc, ErrUnusable)
	}
	return NewSecret([]byte(str)), nil
}

// CheckAbsent returns nil if Vault has no secret for id, or an error
// wrapping ErrExists naming the location if it has one, even one whose
// latest version is deleted or destroyed (Create could not write there
// either: its check-and-set only creates keys that do not exist). Other
// errors wrap ErrUnavailable or ErrPermission.
func (r *Registry) CheckAbsent(ctx context.Context, id DeviceID) error {
	if err := checkDeviceID(id); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.v.cfg.Timeout)
	defer cancel()
	s, err := r.v.kv.Get(ctx, r.v.path(id))
	switch {
	case errors.Is(err, vault.ErrSecretNotFound):
		return nil
	case err != nil:
		cerr := classify(err)
		if errors.Is(cerr, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("device %s: %w", id, cerr) // cerr names the request's path
	case s == nil:
		return nil
	case s.Data == nil:
		return fmt.Errorf("device %s: its secret at %s is deleted, but its versions remain: "+
			"delete its metadata to register it again: %w", id, r.DeviceLocation(id), ErrExists)
	}
	return fmt.Errorf("device %s already has a secret at %s: %w", id, r.DeviceLocation(id), ErrExists)
}

// Create writes secret as the secret of id, only if id has none: KV v2
// check-and-set with cas=0. It returns the new version (1), or an error
// wrapping ErrExists if the key exists (a concurrent writer was first), or
// ErrUnavailable or ErrPermission. With a create-only policy, Vault
// answers a write to an existing key with 403; Create then reads the key
// and reports ErrExists if it is there. Errors never contain the secret.
func (r *Registry) Create(ctx context.Context, id DeviceID, secret Secret) (int, error) {
	if err := checkDeviceID(id); err != nil {
		return 0, err
	}
	if secret.IsZero() {
		return 0, fmt.Errorf("device %s: refusing to store an empty secret: %w", id, ErrUnusable)
	}
	wctx, cancel := context.WithTimeout(ctx, r.v.cfg.Timeout)
	defer cancel()
	s, err := r.v.kv.Put(wctx, r.v.path(id), map[string]any{r.v.cfg.Field: string(secret.Bytes())}, vault.WithCheckAndSet(0))
	if err == nil {
		if s == nil || s.VersionMetadata == nil {
			return 0, nil
		}
		return s.VersionMetadata.Version, nil
	}
	exists := fmt.Errorf("device %s: a secret appeared at %s before this one could be stored: %w", id, r.DeviceLocation(id), ErrExists)
	var re *vault.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set"):
			return 0, exists
		case re.StatusCode == http.StatusForbidden:
			// Create-only policy: an existing key makes the write an
			// update, which is denied. Tell that apart from a policy
			// that does not allow creating either.
			if cerr := r.CheckAbsent(ctx, id); errors.Is(cerr, ErrExists) {
				return 0, exists
			}
		}
	}
	// classify names the request's path.
	return 0, fmt.Errorf("device %s: storing the secret: %w", id, classify(err))
}

// checkDeviceID guards direct users of the package against walking the
// mount with a crafted name; the service validates names.
func checkDeviceID(id DeviceID) error {
	if strings.ContainsAny(id.ProductKey+id.DeviceName, "/?#%") || id.ProductKey == "" || id.DeviceName == "" {
		return fmt.Errorf("device %q/%q: invalid name: %w", id.ProductKey, id.DeviceName, ErrNotFound)
	}
	return nil
}

// Forget drops the cached entry of id, found or not found, so that the
// next lookup asks the backend: for a device whose secret was just
// created. A fetch already under way may still store what it read.
func (c *Cache) Forget(id DeviceID) {
	c.lru.Remove(id)
}
