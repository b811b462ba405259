// Command device plays a constrained IoT device that keeps no
// DeviceSecret: it holds only its client certificate, asks signerd over
// REST for MQTT CONNECT parameters, connects to the broker with them,
// publishes a message every -interval, and whenever the broker drops the
// connection it asks signerd again for fresh parameters and reconnects.
//
//	device -signerd https://signerd.example:8080 \
//	       -cert device.crt -key device.key -ca signerd-ca.pem
//
// The device's productKey and deviceName are read from its certificate
// (URI SAN aliyun-iot://{productKey}/{deviceName}), the identity signerd
// authorizes it by; -product-key and -device-name override them.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/signerd/signerd/auth"
)

type config struct {
	signerd    string
	cert, key  string
	ca         string
	brokerCA   string
	productKey string
	deviceName string
	transport  string
	signMethod string
	topic      string
	interval   time.Duration
	count      int
}

func main() {
	var c config
	flag.StringVar(&c.signerd, "signerd", "", "signerd's REST base URL, e.g. https://signerd.example:8080 (required)")
	flag.StringVar(&c.cert, "cert", "", "the device's client certificate, PEM (required)")
	flag.StringVar(&c.key, "key", "", "the device's private key, PEM (required)")
	flag.StringVar(&c.ca, "ca", "", "CA bundle that signed signerd's server certificate (default: system roots)")
	flag.StringVar(&c.brokerCA, "broker-ca", "", "CA bundle of the MQTT broker (default: system roots)")
	flag.StringVar(&c.productKey, "product-key", "", "productKey (default: from the certificate)")
	flag.StringVar(&c.deviceName, "device-name", "", "deviceName (default: from the certificate)")
	flag.StringVar(&c.transport, "transport", "tls", "tls, tcp or wss")
	flag.StringVar(&c.signMethod, "sign-method", "hmacsha256", "hmacsha256, hmacsha1 or hmacmd5")
	flag.StringVar(&c.topic, "topic", "", "topic to publish on (default: /{productKey}/{deviceName}/user/update)")
	flag.DurationVar(&c.interval, "interval", 10*time.Second, "time between messages")
	flag.IntVar(&c.count, "count", 0, "stop after this many messages (0: run until interrupted)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmsgprefix)
	log.SetPrefix("device: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := newDevice(c)
	if err != nil {
		log.Fatal(err)
	}
	if err := d.run(ctx); err != nil {
		log.Fatal(err)
	}
}

// device is the state of the running device: no secret anywhere.
type device struct {
	config
	signerdClient *http.Client // presents the client certificate
	brokerTLS     *tls.Config
}

func newDevice(c config) (*device, error) {
	if c.signerd == "" || c.cert == "" || c.key == "" {
		return nil, errors.New("-signerd, -cert and -key are required")
	}
	transports := map[string]string{"tls": "TRANSPORT_TLS", "tcp": "TRANSPORT_TCP", "wss": "TRANSPORT_WEBSOCKET_TLS"}
	methods := map[string]string{"hmacsha256": "SIGN_METHOD_HMAC_SHA256", "hmacsha1": "SIGN_METHOD_HMAC_SHA1", "hmacmd5": "SIGN_METHOD_HMAC_MD5"}
	var ok bool
	if c.transport, ok = transports[c.transport]; !ok {
		return nil, errors.New("-transport: want tls, tcp or wss")
	}
	if c.signMethod, ok = methods[c.signMethod]; !ok {
		return nil, errors.New("-sign-method: want hmacsha256, hmacsha1 or hmacmd5")
	}
	cert, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("-cert/-key: %w", err)
	}
	if c.productKey == "" || c.deviceName == "" {
		pk, dn, err := identity(cert)
		if err != nil {
			return nil, err
		}
		if c.productKey == "" {
			c.productKey = pk
		}
		if c.deviceName == "" {
			c.deviceName = dn
		}
	}
	if c.topic == "" {
		c.topic = "/" + c.productKey + "/" + c.deviceName + "/user/update"
	}
	signerdRoots, err := loadPool(c.ca)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	brokerRoots, err := loadPool(c.brokerCA)
	if err != nil {
		return nil, fmt.Errorf("-broker-ca: %w", err)
	}
	return &device{
		config: c,
		signerdClient: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{
				Certificates: []tls.Certificate{cert}, RootCAs: signerdRoots, MinVersion: tls.VersionTLS12,
			}},
		},
		brokerTLS: &tls.Config{RootCAs: brokerRoots, MinVersion: tls.VersionTLS12},
	}, nil
}

// identity reads productKey/deviceName from the certificate's URI SAN
// aliyun-iot://{productKey}/{deviceName} with signerd's own reader, so that
// the device asks for exactly the name signerd will grant it (a
// percent-encoded or otherwise misspelt SAN is refused here too, with the
// reason).
func identity(cert tls.Certificate) (string, string, error) {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return "", "", err
	}
	id, err := auth.CertConfig{}.IdentityFromCert(leaf)
	if err != nil {
		return "", "", fmt.Errorf("the certificate names no device as signerd reads it (%w); use -product-key and -device-name if signerd reads the CN", err)
	}
	if id.Kind != auth.KindDevice {
		return "", "", fmt.Errorf("the certificate names %s, not a device", id)
	}
	return id.ProductKey, id.DeviceName, nil
}

// loadPool reads a PEM bundle; "" means the system roots.
func loadPool(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, errors.New(file + ": no PEM certificate")
	}
	return p, nil
}

// connectParams is the part of signerd's SignMqttConnect answer a device
// needs.
type connectParams struct {
	URI              string `json:"uri"`
	ClientID         string `json:"clientId"`
	Username         string `json:"username"`
	Password         string `json:"password"`
	KeepAliveSeconds int    `json:"keepAliveSeconds"`
	CleanSession     bool   `json:"cleanSession"`
}

// fetch asks signerd for fresh CONNECT parameters.
func (d *device) fetch(ctx context.Context) (connectParams, error) {
	u := strings.TrimSuffix(d.signerd, "/") + "/v1/products/" + url.PathEscape(d.productKey) +
		"/devices/" + url.PathEscape(d.deviceName) + ":signMqttConnect"
	body, _ := json.Marshal(map[string]string{"transport": d.transport, "signMethod": d.signMethod})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return connectParams{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.signerdClient.Do(req)
	if err != nil {
		return connectParams{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return connectParams{}, err
	}
	if resp.StatusCode != http.StatusOK {
		// signerd's errors never contain a secret: safe to log.
		return connectParams{}, fmt.Errorf("signerd: HTTP %d: %s", resp.StatusCode, data)
	}
	var p connectParams
	if err := json.Unmarshal(data, &p); err != nil {
		return connectParams{}, fmt.Errorf("signerd's answer: %w", err)
	}
	return p, nil
}

// connect logs in with p; lost receives the error when the broker drops
// the connection later.
func (d *device) connect(p connectParams, lost chan<- error) (paho.Client, error) {
	opts := paho.NewClientOptions().
		AddBroker(p.URI).
		SetClientID(p.ClientID).
		SetUsername(p.Username).
		SetPassword(p.Password).
		SetProtocolVersion(4). // MQTT 3.1.1, as the platform speaks
		SetKeepAlive(time.Duration(p.KeepAliveSeconds) * time.Second).
		SetCleanSession(p.CleanSession).
		SetTLSConfig(d.brokerTLS).
		SetConnectTimeout(30 * time.Second).
		// No automatic reconnect: a reconnect gets fresh parameters
		// from signerd instead of replaying the old ones.
		SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	c := paho.NewClient(opts)
	t := c.Connect()
	if !t.WaitTimeout(45 * time.Second) {
		return nil, errors.New("CONNECT timed out")
	}
	return c, t.Error()
}

// run connects, publishes and reconnects until ctx ends or -count
// messages are out.
func (d *device) run(ctx context.Context) error {
	const minBackoff, maxBackoff = time.Second, time.Minute
	backoff := minBackoff
	sent := 0
	for {
		p, err := d.fetch(ctx)
		var c paho.Client
		lost := make(chan error, 1)
		if err == nil {
			c, err = d.connect(p, lost)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Jittered exponential backoff, so a fleet that lost its
			// broker does not come back in lockstep.
			wait := backoff/2 + rand.N(backoff/2+1)
			log.Printf("not connected (%v); retrying in %v", err, wait.Round(time.Millisecond))
			if !sleep(ctx, wait) {
				return nil
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		log.Printf("connected to %s as %s", p.URI, p.Username)

		for done := false; !done; {
			sent++
			msg := fmt.Sprintf(`{"seq":%d,"time":%q}`, sent, time.Now().UTC().Format(time.RFC3339Nano))
			if t := c.Publish(d.topic, 1, false, msg); t.WaitTimeout(30*time.Second) && t.Error() == nil {
				log.Printf("published #%d on %s", sent, d.topic)
			} else {
				sent-- // not acknowledged: send it again after reconnecting
				log.Printf("publish #%d failed: %v", sent+1, t.Error())
			}
			if d.count > 0 && sent >= d.count {
				c.Disconnect(250)
				return nil
			}
			select {
			case <-time.After(d.interval):
			case err := <-lost:
				log.Printf("connection lost (%v); fetching fresh parameters", err)
				done = true
			case <-ctx.Done():
				c.Disconnect(250)
				return nil
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
