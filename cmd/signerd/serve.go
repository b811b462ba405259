package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/metrics"
	platform "github.com/signerd/signerd/platform/aliyun"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// Demo device of -dev when no -dev-secrets file is given.
const (
	demoProductKey = "a1DemoProduct"
	demoDeviceName = "demo-device-01"
)

// serve starts signerd from the loaded assets and serves until ctx ends.
func serve(ctx context.Context, cfg config, a *assets, log *slog.Logger) error {
	products := a.products
	m := metrics.New()
	var store secrets.Store
	var ready func(context.Context) error
	var svcOpts []service.Option
	var registry *secrets.Registry // RegisterDevice; Vault only
	var forget func(secrets.DeviceID)
	if cfg.dev {
		store = a.devStore
	} else {
		v, c, err := vaultStore(ctx, cfg, a.vaultAuth, log, m)
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
		if cfg.readyNeedsVault {
			ready = v.Ready
		}
		if products.AnyTransit() {
			tr, err := secrets.NewTransit(v.Client(), secrets.TransitConfig{
				Mount: cfg.vault.transitMount, Timeout: cfg.vault.timeout,
			})
			if err != nil {
				return fmt.Errorf("-vault-transit-mount: %w", err)
			}
			svcOpts = append(svcOpts, service.WithKeys(secrets.NewRouter(secrets.NewLocalMACer(store), tr, products.InTransit)))
			log.Info("Transit mode enabled for some products: Vault computes their HMACs", "mount", cfg.vault.transitMount)
		}
	}

	pv, err := platformClient(cfg, products, a.platformCAs, log, m)
	if err != nil {
		return err
	}
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
	svcOpts = append(svcOpts, service.WithProducts(products), service.WithLogger(log),
		service.WithAuthorizer(auth.NewAuthorizer(a.policy)),
		service.WithPreVerify(pv, service.TokenConfig{
			RefreshMargin:        cfg.tokenRefreshMargin,
			ForceRefreshInterval: cfg.forceRefreshInterval,
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
		log.Info("try: curl -s -X POST http://" + srv.HTTPAddr().String() +
			"/v1/products/" + url.PathEscape(a.devDevice.ProductKey) + "/devices/" + url.PathEscape(a.devDevice.DeviceName) + ":signMqttConnect -d '{}'")
	}
	err = srv.Serve(ctx)
	log.Info("stopped")
	return err
}

type devSecret struct {
	ProductKey   string `json:"productKey"`
	DeviceName   string `json:"deviceName"`
	DeviceSecret string `json:"deviceSecret"`
}

// devStore builds the in-memory store of -dev: from a file, or one demo
// device with a random secret (its identity is logged, its secret is not).
// It also returns the first device, which the "try" log line names.
func devStore(path string, log *slog.Logger) (*secrets.Memory, secrets.DeviceID, error) {
	m := secrets.NewMemory()
	if path == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, secrets.DeviceID{}, err
		}
		demo := secrets.DeviceID{ProductKey: demoProductKey, DeviceName: demoDeviceName}
		m.Put(demo, []byte(hex.EncodeToString(b)))
		log.Info("dev store: one demo device with a random secret", "productKey", demoProductKey, "deviceName", demoDeviceName)
		return m, demo, nil
	}
	var first secrets.DeviceID
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, first, fmt.Errorf("-dev-secrets: %w", err)
	}
	var list []devSecret
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, first, fmt.Errorf("-dev-secrets %s: want a JSON array of {productKey, deviceName, deviceSecret}: %w", path, err)
	}
	if len(list) == 0 {
		return nil, first, fmt.Errorf("-dev-secrets %s: no devices (want a JSON array of {productKey, deviceName, deviceSecret})", path)
	}
	var errs []error
	for i, d := range list {
		if err := errors.Join(signing.ValidateProductKey(d.ProductKey), signing.ValidateDeviceName(d.DeviceName)); err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		if d.DeviceSecret == "" {
			errs = append(errs, fmt.Errorf("entry %d (%s/%s): deviceSecret is empty", i, d.ProductKey, d.DeviceName))
			continue
		}
		id := secrets.DeviceID{ProductKey: d.ProductKey, DeviceName: d.DeviceName}
		if m.Len() == 0 {
			first = id
		}
		m.Put(id, []byte(d.DeviceSecret))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, first, fmt.Errorf("-dev-secrets %s:\n%w", path, err)
	}
	log.Info("dev store loaded", "file", path, "devices", m.Len())
	return m, first, nil
}

// platformClient is the client of the platform's auth endpoint for PreVerify.
func platformClient(cfg config, products *service.Products, roots *x509.CertPool, log *slog.Logger, obs platform.Observer) (*platform.Client, error) {
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
