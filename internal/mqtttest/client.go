package mqtttest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Timeout bounds every wait of the client helpers.
const Timeout = 15 * time.Second

// Conn is what a device presents to connect: a broker URI (tcp://,
// mqtts:// or wss://) and the CONNECT fields.
type Conn struct {
	URI                          string
	ClientID, Username, Password string
	KeepAlive                    time.Duration // default 300 s
	CleanSession                 bool
	// TLS is the client TLS configuration for mqtts:// and wss://.
	TLS *tls.Config
	// OnLost, if set, is called when an established connection is lost.
	OnLost func(error)
}

// Connect connects a paho client (MQTT 3.1.1, no automatic reconnect) and
// returns it, or the CONNECT's error (such as paho's "bad user name or
// password" for a refused login).
func Connect(c Conn) (paho.Client, error) {
	if c.KeepAlive == 0 {
		c.KeepAlive = 300 * time.Second
	}
	opts := paho.NewClientOptions().
		AddBroker(c.URI).
		SetClientID(c.ClientID).
		SetUsername(c.Username).
		SetPassword(c.Password).
		SetProtocolVersion(4). // 3.1.1 only: no silent fallback to 3.1
		SetKeepAlive(c.KeepAlive).
		SetCleanSession(c.CleanSession).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(Timeout).
		SetTLSConfig(c.TLS)
	if c.OnLost != nil {
		opts.SetConnectionLostHandler(func(_ paho.Client, err error) { c.OnLost(err) })
	}
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(Timeout) {
		return nil, errors.New("mqtttest: CONNECT timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return cl, nil
}

// Refused reports whether err (from Connect) is the broker refusing the
// login in its CONNACK, as opposed to a network or TLS failure. The broker
// answers MQTT 3.1.1's "not authorized" (5) for a bad login.
func Refused(err error) bool {
	return errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword)
}

// RoundTrip subscribes cl to topic, publishes payload on it (QoS 1) and
// waits until the broker delivers it back.
func RoundTrip(cl paho.Client, topic string, payload []byte) error {
	got := make(chan []byte, 1)
	sub := cl.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})
	if err := wait(sub); err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	if codes := sub.(*paho.SubscribeToken).Result(); codes[topic] == 0x80 {
		return fmt.Errorf("subscribe %s: refused by the broker", topic)
	}
	if err := wait(cl.Publish(topic, 1, false, payload)); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	select {
	case p := <-got:
		if !bytes.Equal(p, payload) {
			return fmt.Errorf("received %q on %s, want %q", p, topic, payload)
		}
		return nil
	case <-time.After(Timeout):
		return fmt.Errorf("no message on %s within %v", topic, Timeout)
	}
}

// Request subscribes cl to replyTopic, publishes payload on topic (QoS 0,
// as the platform's session topics require) and returns the first reply.
func Request(cl paho.Client, topic, replyTopic string, payload []byte) ([]byte, error) {
	got := make(chan []byte, 1)
	if err := wait(cl.Subscribe(replyTopic, 0, func(_ paho.Client, m paho.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", replyTopic, err)
	}
	defer cl.Unsubscribe(replyTopic)
	if err := wait(cl.Publish(topic, 0, false, payload)); err != nil {
		return nil, fmt.Errorf("publish %s: %w", topic, err)
	}
	select {
	case p := <-got:
		return p, nil
	case <-time.After(Timeout):
		return nil, fmt.Errorf("no reply on %s within %v", replyTopic, Timeout)
	}
}

func wait(t paho.Token) error {
	if !t.WaitTimeout(Timeout) {
		return errors.New("timed out")
	}
	return t.Error()
}
