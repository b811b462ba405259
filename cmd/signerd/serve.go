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
	"os"

	"github.com/signerd/signerd/metrics"
	"github.com/signerd/signerd/platform"
	"github.com/signerd/signerd/secrets"
	"github.com/signerd/signerd/server"
	"github.com/signerd/signerd/service"
	"github.com/signerd/signerd/signing"
)

// Demo device of -dev when no -dev-secrets file is given.
const (
	demoProductKey = "a1DemoProduct"
	demoDeviceName = "demo-device-01"
)

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	products := &service.Products{}
	if cfg.products != "" {
		data, err := os.ReadFile(cfg.products)
		if err != nil {
			return fmt.Errorf("-products: %w", err)
		}
		if products, err = service.ParseProducts(data); err != nil {
			return fmt.Errorf("-products %s: %w", cfg.products, err)
		}
	}

	m := metrics.New()
	var store secrets.Store
	var ready func(context.Context) error
	var svcOpts []service.Option
	var registry *secrets.Registry // RegisterDevice; Vault only
	var forget func(secrets.DeviceID)
	if cfg.dev {
		if products.AnyTransit() {
			return errors.New("-products: Transit mode needs Vault; -dev has no Vault (remove transit: true)")
		}
		dm, err := devStore(cfg.devSecrets, log)
		if err != nil {
			return err
		}
		store = dm
	} else {
		v, c, err := vaultStore(ctx, cfg, log, m)
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
			svcOpts = append(svcOpts, service.WithTransit(tr))
			log.Info("Transit mode enabled for some products: Vault computes their HMACs", "mount", cfg.vault.transitMount)
		}
	}

	pv, err := platformClient(cfg, products, log)
	if err != nil {
		return err
	}
	if registry != nil {
		svcOpts = append(svcOpts, service.WithRegistration(m.InstrumentRegistrar(pv), registry, service.RegistrationConfig{Forget: forget}))
	}
	scfg := server.Config{
		GRPCAddr:        cfg.grpcAddr,
		HTTPAddr:        cfg.httpAddr,
		MetricsAddr:     cfg.metricsAddr,
		Metrics:         m,
		Logger:          log,
		ShutdownTimeout: cfg.shutdownTimeout,
		Ready:           ready,
	}
	closer, err := security(ctx, cfg, log, &scfg)
	if err != nil {
		return err
	}
	defer closer.Close()
	svcOpts = append(svcOpts, service.WithProducts(products), service.WithLogger(log),
		service.WithAuthorizer(server.ItemAuthorizer(scfg.Policy)),
		service.WithSubDeviceAuthorizer(server.SubDeviceAuthorizer(scfg.Policy)),
		service.WithPreVerify(m.InstrumentPreVerifier(pv), service.TokenConfig{
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
			"/v1/products/" + demoProductKey + "/devices/" + demoDeviceName + ":signMqttConnect -d '{}'")
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
func devStore(path string, log *slog.Logger) (*secrets.Memory, error) {
	m := secrets.NewMemory()
	if path == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		m.Put(secrets.DeviceID{ProductKey: demoProductKey, DeviceName: demoDeviceName}, []byte(hex.EncodeToString(b)))
		log.Info("dev store: one demo device with a random secret", "productKey", demoProductKey, "deviceName", demoDeviceName)
		return m, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-dev-secrets: %w", err)
	}
	var list []devSecret
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("-dev-secrets %s: want a JSON array of {productKey, deviceName, deviceSecret}: %w", path, err)
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
		m.Put(secrets.DeviceID{ProductKey: d.ProductKey, DeviceName: d.DeviceName}, []byte(d.DeviceSecret))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("-dev-secrets %s:\n%w", path, err)
	}
	log.Info("dev store loaded", "file", path, "devices", m.Len())
	return m, nil
}

// platformClient is the client of the platform's auth endpoint for PreVerify.
func platformClient(cfg config, products *service.Products, log *slog.Logger) (*platform.Client, error) {
	byRegion, byProduct := products.AuthBaseURLs()
	pc := platform.Config{
		RegionBaseURLs:  byRegion,
		ProductBaseURLs: byProduct,
		AttemptTimeout:  cfg.platformTimeout,
		Logger:          log,
	}
	if cfg.platformCAFile != "" {
		pem, err := os.ReadFile(cfg.platformCAFile)
		if err != nil {
			return nil, fmt.Errorf("-platform-ca-file: %w", err)
		}
		pc.RootCAs = x509.NewCertPool()
		if !pc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-platform-ca-file %s: no PEM certificate found", cfg.platformCAFile)
		}
	}
	c, err := platform.New(pc)
	if err != nil {
		return nil, fmt.Errorf("platform client (-products authBaseUrl, -platform-*): %w", err)
	}
	return c, nil
}
