package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/signerd/signerd/auth"
	"github.com/signerd/signerd/internal/settings"
	"github.com/signerd/signerd/internal/vaultflags"
	"github.com/signerd/signerd/secrets"
)

// config is everything signerd is told at start-up.
type config struct {
	grpcAddr        string
	httpAddr        string
	metricsAddr     string
	dev             bool
	devSecrets      string
	products        string
	platforms       string
	logLevel        string
	shutdownTimeout time.Duration
	version         bool
	readyNeedsVault bool
	checkConfig     bool
	configFile      string
	reflection      bool

	vault vaultFlags
	cache cacheFlags
	sec   securityFlags

	platformCAFile       string
	platformTimeout      time.Duration
	tokenRefreshMargin   time.Duration
	forceRefreshInterval time.Duration
	preVerifyTokenPath   string
}

type securityFlags struct {
	insecure                     bool
	tlsCert, tlsKey, clientCA    string
	deviceURIScheme, deviceCNSep string
	policyFile                   string
	jwksFile, jwksURL            string
	jwtIssuer, jwtAudience       string
	auditLog                     string
	rate                         float64
	burst                        int
	backendRate                  float64
	backendBurst                 int
	preVerifyRate                float64
	preVerifyBurst               int
	maxInFlight                  int
	rateLimitReplicas            int
}

type vaultFlags struct {
	vaultflags.Login
	vaultflags.Layout
	productPath, productField string
	timeout                   time.Duration
}

type cacheFlags struct {
	size                       int
	ttl, negativeTTL, maxStale time.Duration
}

const envPrefix = "SIGNERD_"

// command is how signerd's settings are named in the environment and the
// -config file.
var command = settings.Command{
	Name:      "signerd",
	EnvPrefix: envPrefix,
	// Variables of signerd's build and test scripts, not settings of
	// signerd; a developer's shell may well export them.
	Ignore:        map[string]bool{"SIGNERD_VAULT_BIN": true, "SIGNERD_CACHE_DIR": true},
	ConfigFlag:    "config",
	ConfigExample: "grpc-addr",
}

// envName is the environment variable of flag name.
func envName(name string) string { return command.EnvName(name) }

// parseConfig reads flags, then fills every flag not given on the command
// line from its environment variable (SIGNERD_ + upper-case name, dashes as
// underscores), then from the -config file: the command line wins, as
// operators expect. It reports every problem of every source at once; env
// holds the environment.
func parseConfig(args []string, env map[string]string, stderr io.Writer) (config, error) {
	var c config
	fs := newFlagSet(&c)
	usage := func() {
		fmt.Fprintf(stderr, "Usage: signerd [flags]\n\nEvery flag can also be set as %sNAME (e.g. %sGRPC_ADDR).\n\n", envPrefix, envPrefix)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
	}
	fs.Usage = usage
	res, err := command.Load(fs, args, env)
	if errors.Is(err, flag.ErrHelp) {
		return c, err
	}
	set := res.Set
	if c.version && err == nil {
		return c, nil
	}
	if !set["grpc-reflection"] {
		// A developer's grpcurl wants it; in production it would hand
		// every caller the API's full schema without being asked for.
		c.reflection = c.dev
	}
	// Flags that did not parse keep their defaults here, so that their
	// own error is not followed by a second one about the default.
	return c, errors.Join(err, c.validate())
}

func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("signerd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.grpcAddr, "grpc-addr", "", "gRPC listen address (default :9090; 127.0.0.1:9090 with -dev)")
	fs.StringVar(&c.httpAddr, "http-addr", "", "REST/HTTP listen address (default :8080; 127.0.0.1:8080 with -dev)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "Prometheus /metrics listen address (default :9100; 127.0.0.1:9100 with -dev; \"off\" disables)")
	fs.BoolVar(&c.dev, "dev", false, "insecure development mode: in-memory secret store, plaintext, loopback only")
	fs.StringVar(&c.devSecrets, "dev-secrets", "", "with -dev: JSON file of [{productKey, deviceName, deviceSecret}] (Alibaba) or [{platform, productKey, deviceName, module, key}] to load")
	fs.StringVar(&c.products, "products", "", "per-product settings file (YAML or JSON): endpoint, ports, keep-alive")
	fs.StringVar(&c.platforms, "platforms", "", "settings of the other platforms (YAML or JSON), one section each: azure, tencent, huawei, onenet (see docs/PLATFORMS.md)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to drain in-flight requests on SIGTERM")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	fs.BoolVar(&c.checkConfig, "check-config", false, "load the configuration as start-up would (flags, environment, every file it names, the Vault credentials' source) without dialing out, report every problem, say what was not checked, and exit")
	fs.StringVar(&c.configFile, "config", "", "YAML file of settings by flag name (e.g. grpc-addr: \":9090\"); flags and SIGNERD_* variables win over it")
	fs.BoolVar(&c.readyNeedsVault, "ready-requires-vault", true, "/readyz and gRPC health fail while Vault is unreachable; false keeps replicas in service during a Vault outage so cached devices are still served")
	fs.BoolVar(&c.reflection, "grpc-reflection", false, "serve gRPC server reflection (grpcurl list/describe) on the gRPC listener (default: true with -dev, false otherwise)")

	v := &c.vault
	v.Login.Register(fs)
	v.Layout.Register(fs, "Transit mount for products in Transit mode (products file: transit: true)")
	fs.StringVar(&v.productPath, "vault-product-path", "products/{productKey}", "RegisterDevice: path of a product's ProductSecret in the KV mount (needs deploy/vault/policy-registration.hcl)")
	fs.StringVar(&v.productField, "vault-product-field", "productSecret", "RegisterDevice: field of the secret holding the ProductSecret")
	fs.DurationVar(&v.timeout, "vault-timeout", 1500*time.Millisecond, "bound on one Vault request")

	fs.StringVar(&c.platformCAFile, "platform-ca-file", "", "CA bundle (PEM) for the platform's auth endpoint instead of the system roots (private deployments, tests)")
	fs.DurationVar(&c.platformTimeout, "platform-timeout", 5*time.Second, "bound on one attempt of a PreVerify call to the platform")
	fs.DurationVar(&c.tokenRefreshMargin, "token-refresh-margin", 24*time.Hour, "PreVerify: replace a cached iotToken this long before it expires (tokens live 7 days)")
	fs.DurationVar(&c.forceRefreshInterval, "force-refresh-interval", time.Minute, "PreVerify: honour force_refresh at most once per this interval per device (across the replicas sharing -preverify-token-path)")
	fs.StringVar(&c.preVerifyTokenPath, "preverify-token-path", "preverify-tokens/{productKey}/{deviceName}",
		"PreVerify: where in the KV mount the replicas share each device's iotToken (check-and-set; see deploy/vault/policy.hcl); \"off\": each replica keeps its own in memory")

	sf := &c.sec
	fs.BoolVar(&sf.insecure, "insecure", false, "serve plaintext outside -dev (only behind a TLS-terminating proxy you trust); callers must still authenticate")
	fs.StringVar(&sf.tlsCert, "tls-cert-file", "", "server certificate (PEM) for both listeners; reloaded when it changes")
	fs.StringVar(&sf.tlsKey, "tls-key-file", "", "server private key (PEM); reloaded when it changes")
	fs.StringVar(&sf.clientCA, "client-ca-file", "", "CA bundle (PEM) for device and backend client certificates; reloaded when it changes (removing a CA revokes its certificates)")
	fs.StringVar(&sf.deviceURIScheme, "device-uri-scheme", "aliyun-iot", "URI SAN scheme naming a device: {scheme}://{productKey}/{deviceName}")
	fs.StringVar(&sf.deviceCNSep, "device-cn-separator", "", "also accept device certificates whose CN is {productKey}{sep}{deviceName} (e.g. \".\"); off by default")
	fs.StringVar(&sf.policyFile, "policy-file", "", "authorization policy (YAML/JSON): backend identities with their products and RPCs")
	fs.StringVar(&sf.jwksFile, "jwks-file", "", "JWKS (JSON) with the public keys of backend bearer tokens")
	fs.StringVar(&sf.jwksURL, "jwks-url", "", "URL of the JWKS of backend bearer tokens (refreshed in the background)")
	fs.StringVar(&sf.jwtIssuer, "jwt-issuer", "", "required iss of backend bearer tokens")
	fs.StringVar(&sf.jwtAudience, "jwt-audience", "signerd", "required aud of backend bearer tokens")
	fs.StringVar(&sf.auditLog, "audit-log", "stdout", "audit record sink: stdout, stderr or a file path")
	fs.Float64Var(&sf.rate, "rate-limit", 1, "calls per second per device caller (0: unlimited); a device asks only when it connects")
	fs.IntVar(&sf.burst, "rate-burst", 10, "burst per device caller")
	fs.Float64Var(&sf.backendRate, "backend-rate-limit", 2000, "calls per second per backend caller (0: unlimited); a batch counts once")
	fs.IntVar(&sf.backendBurst, "backend-rate-burst", 4000, "burst per backend caller")
	fs.Float64Var(&sf.preVerifyRate, "preverify-rate-limit", 1, "PreVerify calls per second per caller identity (0: unlimited)")
	fs.IntVar(&sf.preVerifyBurst, "preverify-rate-burst", 5, "PreVerify burst per caller identity")
	fs.IntVar(&sf.maxInFlight, "max-in-flight", 1000, "signing calls in flight at once before shedding with RESOURCE_EXHAUSTED (0: no cap); per replica")
	fs.IntVar(&sf.rateLimitReplicas, "rate-limit-replicas", 1, "the replicas sharing the callers: every per-caller rate and burst is divided by it, so that the -rate-limit*/-rate-burst* values hold fleet-wide (the manifests set SIGNERD_RATE_LIMIT_REPLICAS to the replica count)")

	fs.IntVar(&c.cache.size, "cache-size", 100_000, "devices held in the secret cache")
	fs.DurationVar(&c.cache.ttl, "cache-ttl", 5*time.Minute, "how long a cached secret is used before Vault is asked again (a rotation takes effect after this)")
	fs.DurationVar(&c.cache.negativeTTL, "cache-negative-ttl", 10*time.Second, "how long an unknown device is remembered as unknown")
	fs.DurationVar(&c.cache.maxStale, "cache-max-stale", time.Hour, "how long past -cache-ttl a cached secret is still served while Vault is unavailable (0: never)")
	return fs
}

// validate applies the mode-dependent defaults and reports every problem.
func (c *config) validate() error {
	var errs []error
	if c.dev {
		if c.grpcAddr == "" {
			c.grpcAddr = "127.0.0.1:9090"
		}
		if c.httpAddr == "" {
			c.httpAddr = "127.0.0.1:8080"
		}
		if c.metricsAddr == "" {
			c.metricsAddr = "127.0.0.1:9100"
		}
		// Dev mode has no authentication and no TLS: it must not be
		// reachable from anywhere but this machine.
		for name, addr := range map[string]string{"-grpc-addr": c.grpcAddr, "-http-addr": c.httpAddr, "-metrics-addr": c.metricsAddr} {
			if name == "-metrics-addr" && addr == "off" {
				continue
			}
			if !isLoopback(addr) {
				errs = append(errs, fmt.Errorf("%s %q: -dev listens on loopback addresses only (e.g. 127.0.0.1:9090)", name, addr))
			}
		}
	} else {
		if c.grpcAddr == "" {
			c.grpcAddr = ":9090"
		}
		if c.httpAddr == "" {
			c.httpAddr = ":8080"
		}
		if c.metricsAddr == "" {
			c.metricsAddr = ":9100"
		}
		for _, a := range []struct{ name, addr string }{{"-grpc-addr", c.grpcAddr}, {"-http-addr", c.httpAddr}, {"-metrics-addr", c.metricsAddr}} {
			if _, _, err := net.SplitHostPort(a.addr); err != nil && a.addr != "off" {
				errs = append(errs, fmt.Errorf("%s %q: want host:port or :port (e.g. :9090)", a.name, a.addr))
			}
		}
		if c.devSecrets != "" {
			errs = append(errs, errors.New("-dev-secrets: only valid with -dev (outside -dev secrets come from Vault)"))
		}
	}
	if !c.dev {
		errs = append(errs, c.vault.validate()...)
		errs = append(errs, c.sec.validate()...)
		if c.preVerifyTokenPath != "off" {
			if err := secrets.CheckTokenTemplate(c.preVerifyTokenPath, c.vault.KVPath); err != nil {
				errs = append(errs, fmt.Errorf("-preverify-token-path: %w (or \"off\")", err))
			}
		}
	} else {
		if c.sec.tlsCert != "" || c.sec.clientCA != "" {
			errs = append(errs, errors.New("-tls-cert-file/-client-ca-file: -dev is plaintext on loopback only; drop -dev to serve TLS"))
		}
		// One developer on loopback: limits would only get in the way.
		c.sec.rate, c.sec.backendRate, c.sec.preVerifyRate, c.sec.maxInFlight = 0, 0, 0, 0
	}
	if c.cache.size < 1 {
		errs = append(errs, fmt.Errorf("-cache-size %d: must be at least 1", c.cache.size))
	}
	for name, d := range map[string]time.Duration{"-cache-ttl": c.cache.ttl, "-cache-negative-ttl": c.cache.negativeTTL, "-vault-timeout": c.vault.timeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	if c.platformTimeout <= 0 || c.forceRefreshInterval <= 0 {
		errs = append(errs, errors.New("-platform-timeout, -force-refresh-interval: must be positive"))
	}
	if c.tokenRefreshMargin < 0 || c.tokenRefreshMargin >= 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("-token-refresh-margin %s: must be between 0 and the token lifetime (7 days)", c.tokenRefreshMargin))
	}
	if c.cache.maxStale < 0 {
		errs = append(errs, fmt.Errorf("-cache-max-stale %s: must not be negative", c.cache.maxStale))
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		errs = append(errs, err)
	}
	if c.shutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-shutdown-timeout %s: must be positive", c.shutdownTimeout))
	}
	return errors.Join(errs...)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func (v *vaultFlags) validate() []error {
	var errs []error
	errs = append(errs, v.Layout.Validate()...)
	if err := secrets.CheckProductTemplate(v.productPath); err != nil {
		errs = append(errs, fmt.Errorf("-vault-product-path: %w", err))
	}
	if v.productField == "" {
		errs = append(errs, errors.New("-vault-product-field: must not be empty"))
	}
	errs = append(errs, v.Login.Validate()...)
	return errs
}

func (s *securityFlags) validate() []error {
	var errs []error
	if (s.tlsCert == "") != (s.tlsKey == "") {
		errs = append(errs, errors.New("-tls-cert-file and -tls-key-file: set both or neither"))
	}
	if s.tlsCert == "" && !s.insecure {
		errs = append(errs, errors.New("-tls-cert-file: required outside -dev (or -insecure to serve plaintext behind a trusted TLS proxy)"))
	}
	if s.clientCA != "" && s.tlsCert == "" {
		errs = append(errs, errors.New("-client-ca-file: client certificates need TLS (-tls-cert-file)"))
	}
	if s.jwksFile != "" && s.jwksURL != "" {
		errs = append(errs, errors.New("-jwks-file and -jwks-url: set one, not both"))
	}
	jwt := s.jwksFile != "" || s.jwksURL != ""
	if jwt && s.jwtIssuer == "" {
		errs = append(errs, errors.New("-jwt-issuer: required with -jwks-file/-jwks-url"))
	}
	if jwt && s.jwtAudience == "" {
		errs = append(errs, errors.New("-jwt-audience: required with -jwks-file/-jwks-url"))
	}
	if !jwt && s.clientCA == "" {
		errs = append(errs, errors.New("-client-ca-file or -jwks-file/-jwks-url: outside -dev callers must authenticate; configure at least one"))
	}
	if err := (auth.CertConfig{DeviceURIScheme: s.deviceURIScheme, DeviceCNSeparator: s.deviceCNSep}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("-device-uri-scheme/-device-cn-separator: %w", err))
	}
	if s.backendRate < 0 || s.backendBurst < 0 || (s.backendRate > 0 && s.backendBurst < 1) {
		errs = append(errs, errors.New("-backend-rate-limit/-backend-rate-burst: must not be negative; burst at least 1 when the limit is set"))
	}
	if s.rate < 0 || s.preVerifyRate < 0 || s.burst < 0 || s.preVerifyBurst < 0 || s.maxInFlight < 0 {
		errs = append(errs, errors.New("-rate-limit, -rate-burst, -preverify-rate-*, -max-in-flight: must not be negative"))
	}
	if s.rate > 0 && s.burst < 1 {
		errs = append(errs, errors.New("-rate-burst: must be at least 1 when -rate-limit is set"))
	}
	if s.rateLimitReplicas < 1 {
		errs = append(errs, fmt.Errorf("-rate-limit-replicas %d: must be at least 1 (the number of replicas)", s.rateLimitReplicas))
	}
	if s.preVerifyRate > 0 && s.preVerifyBurst < 1 {
		errs = append(errs, errors.New("-preverify-rate-burst: must be at least 1 when -preverify-rate-limit is set"))
	}
	return errs
}
