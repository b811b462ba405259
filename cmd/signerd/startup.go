package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/metrics"
	platform "github.com/signerd/signerd/platform/aliyun"
	"github.com/signerd/signerd/secrets"
	signing "github.com/signerd/signerd/signing/aliyun"
	"github.com/signerd/signerd/tlsreload"
)

// assets is everything start-up makes from the configuration before it
// dials anything: build makes them, serve starts from them, and
// -check-config stops after build, so that a check that passes has done
// exactly what a start does first; what is left can only fail on the
// network or in the running process (notChecked). A start-up step that can
// fail without the network belongs in build, not in serve.
type assets struct {
	products  *signing.Products
	platforms platformSet
	metrics   *metrics.Metrics
	platform  *platform.Client // the platform's auth endpoints (PreVerify, RegisterDevice)
	policy    *auth.Policy
	keyPair   *tlsreload.KeyPair
	clientCAs *tlsreload.CAPool
	jwksFile  *auth.JWTVerifier // from -jwks-file; -jwks-url is fetched by serve
	vaultAuth func() (vault.AuthMethod, error)
	devStore  *secrets.Memory
	devDevice secrets.DeviceID // one device of devStore, for the "try" log line
}

// build loads every file the configuration names and the Vault
// credentials' source, makes what start-up makes from them without dialing
// out, and reports every problem at once. It does not stop at settings that
// validate already refused: each file is still read, so that one run lists
// everything to fix.
func build(cfg config, env map[string]string, log *slog.Logger) (*assets, error) {
	a := &assets{products: &signing.Products{}}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.products != "" {
		data, err := os.ReadFile(cfg.products)
		if err == nil {
			a.products, err = signing.ParseProducts(data)
		}
		if err != nil {
			a.products = &signing.Products{}
			add(fmt.Errorf("-products %s: %w", cfg.products, err))
		}
	}
	var err error
	a.platforms, err = loadPlatforms(cfg.platforms, platformModules)
	add(err)
	if cfg.dev && a.products.AnyTransit() {
		add(errors.New("-products: Transit mode needs Vault; -dev has no Vault (remove transit: true)"))
	}
	var platformCAs *x509.CertPool // nil: the system roots
	if cfg.platformCAFile != "" {
		pem, err := os.ReadFile(cfg.platformCAFile)
		switch {
		case err != nil:
			add(fmt.Errorf("-platform-ca-file: %w", err))
		default:
			platformCAs = x509.NewCertPool()
			if !platformCAs.AppendCertsFromPEM(pem) {
				add(fmt.Errorf("-platform-ca-file %s: no PEM certificate found (want a PEM bundle of CA certificates)", cfg.platformCAFile))
			}
		}
	}
	// The platform client reports to the metrics registry serving will
	// expose, so both are made here, once.
	a.metrics = metrics.New()
	a.platform, err = platformClient(cfg, a.products, platformCAs, log, a.metrics)
	add(err)
	s := cfg.sec
	if s.policyFile != "" {
		data, rerr := os.ReadFile(s.policyFile)
		if rerr == nil {
			a.policy, err = auth.ParsePolicy(data)
		} else {
			err = rerr
		}
		if err != nil {
			add(fmt.Errorf("-policy-file %s: %w", s.policyFile, err))
		}
	} else if a.policy, err = auth.NewPolicy(); err != nil {
		add(err)
	}
	add(checkAuditSink(s.auditLog))

	if cfg.dev {
		a.devStore, a.devDevice, err = devStore(cfg.devSecrets, a.platforms.encodings(), log)
		add(err)
		return a, errors.Join(errs...)
	}
	if s.tlsCert != "" && s.tlsKey != "" {
		if a.keyPair, err = tlsreload.NewKeyPair(s.tlsCert, s.tlsKey); err != nil {
			add(fmt.Errorf("-tls-cert-file/-tls-key-file: %w", err))
		}
	}
	if s.clientCA != "" {
		if a.clientCAs, err = tlsreload.NewCAPool(s.clientCA); err != nil {
			add(fmt.Errorf("-client-ca-file: %w", err))
		}
	}
	if s.jwksFile != "" {
		// A missing issuer or audience is validate's to report; the file
		// is still read, so that its own problems show up in the same run.
		v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{
			JWKSFile: s.jwksFile, Issuer: cmp.Or(s.jwtIssuer, "unset"), Audience: cmp.Or(s.jwtAudience, "unset"),
		})
		if err != nil {
			add(fmt.Errorf("-jwks-file: %w", err))
		} else if s.jwtIssuer != "" && s.jwtAudience != "" {
			a.jwksFile = v
		}
	}
	a.vaultAuth, err = vaultCredentials(cfg.vault, env)
	add(err)
	return a, errors.Join(errs...)
}

// vaultCredentials checks that the Vault login's credentials are where the
// settings say (they are read again at every login) and builds the auth
// method. It also reads vault/api's own environment (VAULT_CACERT etc.).
func vaultCredentials(f vaultFlags, env map[string]string) (func() (vault.AuthMethod, error), error) {
	var errs []error
	if vc := vault.DefaultConfig(); vc.Error != nil {
		errs = append(errs, fmt.Errorf("vault client configuration (VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_SKIP_VERIFY…): %w", vc.Error))
	}
	switch f.Auth {
	case "token":
		switch {
		case f.TokenFile != "":
			errs = append(errs, nonEmptyFile("-vault-token-file", f.TokenFile))
		case env["VAULT_TOKEN"] == "":
			errs = append(errs, errors.New("-vault-auth=token: no Vault token: set -vault-token-file (SIGNERD_VAULT_TOKEN_FILE) or VAULT_TOKEN, or use -vault-auth=approle or kubernetes"))
		}
	case "approle":
		if f.AppRoleSecretIDFile != "" {
			errs = append(errs, nonEmptyFile("-vault-approle-secret-id-file", f.AppRoleSecretIDFile))
		}
	case "kubernetes":
		errs = append(errs, nonEmptyFile("-vault-k8s-token-file", f.K8sTokenFile))
	default:
		return nil, errors.Join(errs...) // validate names the bad -vault-auth
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	build, err := f.AuthConfig().Builder()
	if err != nil {
		return nil, fmt.Errorf("-vault-auth=%s: %w", f.Auth, err)
	}
	return build, nil
}

func nonEmptyFile(flagName, path string) error {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", flagName, err)
	case strings.TrimSpace(string(b)) == "":
		return fmt.Errorf("%s %s: file is empty", flagName, path)
	}
	return nil
}

// checkAuditSink checks that a file audit sink can be appended to, without
// creating it: serve opens (and creates) it.
func checkAuditSink(dest string) error {
	switch dest {
	case "", "stdout", "stderr":
		return nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("-audit-log: %w", err)
	}
	dir := filepath.Dir(dest)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("-audit-log %s: directory %s does not exist", dest, dir)
	}
	return nil
}

// notChecked lists what -check-config cannot check without dialing out or
// running: start-up does these and fails fast, naming the setting.
func notChecked(cfg config, env map[string]string) []string {
	out := []string{"the listen addresses are free (bound at start)"}
	if cfg.dev {
		return out
	}
	addr := cmp.Or(cfg.vault.Addr, env["VAULT_ADDR"], "https://127.0.0.1:8200")
	out = append(out,
		fmt.Sprintf("Vault at %s: reachable, its TLS certificate trusted, and the login (-vault-auth=%s) accepted", addr, cfg.vault.Auth),
		fmt.Sprintf("the Vault token may read the KV mount %q (and Transit %q for Transit products)", cfg.vault.KVMount, cfg.vault.TransitMount))
	if cfg.preVerifyTokenPath != "off" {
		out = append(out, fmt.Sprintf("the Vault token may create, read and update the PreVerify token records at %s/data/%s (checked on the first PreVerify)",
			cfg.vault.KVMount, cfg.preVerifyTokenPath))
	}
	out = append(out,
		"the platform's auth endpoints (reached on the first PreVerify or RegisterDevice call)")
	if cfg.sec.jwksURL != "" {
		out = append(out, fmt.Sprintf("-jwks-url %s: reachable and a valid JWKS", cfg.sec.jwksURL))
	}
	return out
}
