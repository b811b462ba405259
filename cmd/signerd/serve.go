package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/signerd/signerd/auth"
	platform "github.com/signerd/signerd/platform/aliyun"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// serve starts signerd from the loaded assets and serves until ctx ends.
func serve(ctx context.Context, cfg config, a *assets, log *slog.Logger) error {
	products := a.products
	m := a.metrics
	var store secrets.Store
	var ready func(context.Context) error
	var svcOpts []service.Option
	var registry *secrets.Registry // RegisterDevice; Vault only
	var forget func(secrets.DeviceID)
	var tokens service.TokenStore // nil: each replica its own, in memory
	if cfg.dev {
		store = a.devStore
	} else {
		v, c, err := vaultStore(ctx, cfg, a.vaultAuth, a.platforms.locations, log, m)
		if err != nil {
			return err
		}
		defer v.Close()
		store = c
		if registry, err = secrets.NewRegistry(v, secrets.RegistryConfig{
			ProductPathTemplate: cfg.vault.productPath, ProductField: cfg.vault.productField,
		}); err != nil {
			return fmt.Errorf("-vault-product-path: %w", err)
		}
		forget = c.Forget
		if cfg.preVerifyTokenPath != "off" {
			vt, err := secrets.NewVaultTokens(v, cfg.preVerifyTokenPath)
			if err != nil {
				return fmt.Errorf("-preverify-token-path: %w", err)
			}
			// Fail fast, as for the device secrets, when signerd's policy
			// predates the shared tokens: otherwise every PreVerify would
			// answer UNAVAILABLE.
			probe := secrets.DeviceID{ProductKey: "signerd-start-check", DeviceName: "signerd-start-check"}
			if _, err := vt.Get(ctx, probe); errors.Is(err, secrets.ErrPermission) {
				return fmt.Errorf("-preverify-token-path: Vault refuses signerd's token the PreVerify token records (%s): "+
					"grant signerd's policy create, read and update there (deploy/vault/policy.hcl; re-run deploy/vault/apply.sh), "+
					"or set -preverify-token-path off to keep the tokens per replica: %w", vt.Location(probe), err)
			} else if err != nil {
				log.Warn("PreVerify token records could not be read at start; PreVerify answers UNAVAILABLE until they can", "error", err)
			}
			tokens = vt
			log.Info("PreVerify tokens shared by the replicas in Vault", "mount", cfg.vault.KVMount, "path", cfg.preVerifyTokenPath)
		} else {
			log.Warn("PreVerify tokens kept per replica (-preverify-token-path off): N replicas make N platform calls per device and hand out different tokens")
		}
		if cfg.readyNeedsVault {
			ready = v.Ready
		}
		if products.AnyTransit() {
			tr, err := secrets.NewTransit(v.Client(), secrets.TransitConfig{
				Mount: cfg.vault.TransitMount, Timeout: cfg.vault.timeout,
			})
			if err != nil {
				return fmt.Errorf("-vault-transit-mount: %w", err)
			}
			svcOpts = append(svcOpts, service.WithKeys(secrets.NewRouter(secrets.NewLocalMACer(store), tr, products.InTransit)))
			log.Info("Transit mode enabled for some products: Vault computes their HMACs", "mount", cfg.vault.TransitMount)
		}
	}

	pv := a.platform
	if registry != nil {
		svcOpts = append(svcOpts, service.WithRegistration(pv, registry, service.RegistrationConfig{Forget: forget}))
	}
	scfg := server.Config{
		GRPCAddr:        cfg.grpcAddr,
		HTTPAddr:        cfg.httpAddr,
		MetricsAddr:     cfg.metricsAddr,
		Metrics:         m,
		Logger:          log,
		ShutdownTimeout: cfg.shutdownTimeout,
		Ready:           ready,
		Reflection:      cfg.reflection,
	}
	closer, err := security(ctx, cfg, a, log, &scfg)
	if err != nil {
		return err
	}
	defer closer.Close()
	if len(a.platforms.enabled) > 0 {
		log.Info("platforms served besides Alibaba", "platforms", a.platforms.enabled)
	}
	svcOpts = append(svcOpts, service.WithProducts(products), service.WithLogger(log),
		service.WithSigners(a.platforms.signers...),
		service.WithAuthorizer(auth.NewAuthorizer(a.policy)),
		service.WithPreVerify(pv, service.TokenConfig{
			RefreshMargin:        cfg.tokenRefreshMargin,
			ForceRefreshInterval: cfg.forceRefreshInterval,
			Store:                tokens,
			// The claim must outlive the owner's platform call (bounded to
			// 4/5 of it), one attempt and a retry at least.
			ClaimTTL: max(10*time.Second, 2*cfg.platformTimeout+2*time.Second),
		}))
	scfg.Service = service.New(store, svcOpts...)
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	log.Info("listening", "grpc", srv.GRPCAddr().String(), "http", srv.HTTPAddr().String(),
		"metrics", srv.MetricsAddr(), "version", versionString())
	if cfg.dev {
		log.Warn("INSECURE DEV MODE: in-memory secrets, no TLS, no caller authentication; never use it for real devices")
		route, body := tryRoute(a.devDevice)
		log.Info("try: curl -s -X POST http://" + srv.HTTPAddr().String() + route + " -d '" + body + "'")
	}
	err = srv.Serve(ctx)
	log.Info("stopped")
	return err
}

// devStore builds the in-memory store of -dev: from a file, or one demo
// device with a random secret (its identity is logged, its secret is not).
// It also returns the first device, which the "try" log line names.
func devStore(path string, encodings map[string]secrets.Encoding, log *slog.Logger) (*secrets.Memory, secrets.DeviceID, error) {
	if path == "" {
		m, err := secrets.NewDemo()
		if err != nil {
			return nil, secrets.DeviceID{}, err
		}
		d := secrets.DemoDevice
		log.Info("dev store: one demo device with a random secret", "productKey", d.ProductKey, "deviceName", d.DeviceName)
		return m, d, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, secrets.DeviceID{}, fmt.Errorf("-dev-secrets: %w", err)
	}
	m, first, err := secrets.ParseDevFile(data, encodings)
	if err != nil {
		return nil, first, fmt.Errorf("-dev-secrets %s: %w", path, err)
	}
	log.Info("dev store loaded", "file", path, "devices", m.Len())
	return m, first, nil
}

// platformClient is the client of the platform's auth endpoint for PreVerify.
func platformClient(cfg config, products *signing.Products, roots *x509.CertPool, log *slog.Logger, obs platform.Observer) (*platform.Client, error) {
	byRegion, byProduct := products.AuthBaseURLs()
	pc := platform.Config{
		RegionBaseURLs:  byRegion,
		ProductBaseURLs: byProduct,
		AttemptTimeout:  cfg.platformTimeout,
		Logger:          log,
		RootCAs:         roots,
		Observer:        obs,
	}
	c, err := platform.New(pc)
	if err != nil {
		return nil, fmt.Errorf("platform client (-products authBaseUrl, -platform-*): %w", err)
	}
	return c, nil
}

// tryRoute is the REST route and body that sign for d, for the -dev "try"
// line: each platform's route as proto/signer/v1 declares it.
func tryRoute(d secrets.DeviceID) (route, body string) {
	pk, dn := url.PathEscape(d.ProductKey), url.PathEscape(d.DeviceName)
	body = "{}"
	switch d.Platform {
	case "azure":
		if d.Module != "" {
			m, _ := json.Marshal(map[string]string{"moduleId": d.Module})
			body = string(m)
		}
		return "/v1/azure/hubs/" + pk + "/devices/" + dn + ":signMqttConnect", body
	case "azure-dps":
		return "/v1/azure/dps/" + pk + "/registrations/" + dn + ":signMqttConnect", body
	case "tencent", "onenet":
		return "/v1/" + d.Platform + "/products/" + pk + "/devices/" + dn + ":signMqttConnect", body
	case "huawei":
		return "/v1/huawei/devices/" + dn + ":signMqttConnect", body
	}
	return "/v1/products/" + pk + "/devices/" + dn + ":signMqttConnect", body
}
