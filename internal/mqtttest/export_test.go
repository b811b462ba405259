package mqtttest

import mqtt "github.com/mochi-mqtt/server/v2"

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
