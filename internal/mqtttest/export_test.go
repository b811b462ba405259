package mqtttest

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// WithHooks adds hooks that mochi calls before and after the broker's own,
// so a test can hold a connection at a chosen point of mochi's connect
// sequence and observe when the broker's hook is done with it. Either may
// be nil.
func WithHooks(before, after mqtt.Hook) Option {
	return func(c *config) {
		if before != nil {
			c.before = append(c.before, before)
		}
		if after != nil {
			c.after = append(c.after, after)
		}
	}
}

// CheckConnect runs the broker's login check on an MQTT 3.1.1 CONNECT
// with these fields, without a connection, for property and fuzz tests
// that try many more logins than a client could make.
func (b *Broker) CheckConnect(listener, clientID, username, password string, keepAlive uint16) Login {
	return b.checkConnect(listener, packets.Packet{ProtocolVersion: 4, Connect: packets.ConnectParams{
		ClientIdentifier: clientID,
		Username:         []byte(username), UsernameFlag: true,
		Password: []byte(password), PasswordFlag: true,
		Keepalive: keepAlive,
	}})
}
