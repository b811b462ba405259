package mqtttest

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wssListener serves MQTT over WebSocket over TLS (subprotocol "mqtt", at
// path, or at any path when path is empty) on a listener bound at creation, so its ephemeral port is known
// before the broker starts. mochi's own WebSocket listener binds only when
// it starts serving.
type wssListener struct {
	id        string
	ln        net.Listener
	srv       *http.Server
	establish listeners.EstablishFn
	log       *slog.Logger
	upgrader  websocket.Upgrader
	path      string
}

func newWSSListener(id string, cfg *tls.Config, path string) (*wssListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &wssListener{
		id:   id,
		path: path,
		ln:   tls.NewListener(ln, cfg),
		upgrader: websocket.Upgrader{
			Subprotocols: []string{"mqtt"},
			CheckOrigin:  func(*http.Request) bool { return true },
		},
	}
	l.srv = &http.Server{Handler: http.HandlerFunc(l.handle), ReadHeaderTimeout: 10 * time.Second}
	return l, nil
}

func (l *wssListener) ID() string       { return l.id }
func (l *wssListener) Address() string  { return l.ln.Addr().String() }
func (l *wssListener) Protocol() string { return "wss" }

func (l *wssListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *wssListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("wss listener stopped", "error", err)
	}
}

func (l *wssListener) Close(closeClients listeners.CloseFn) {
	_ = l.srv.Close()
	closeClients(l.id)
}

func (l *wssListener) handle(w http.ResponseWriter, r *http.Request) {
	if l.path != "" && r.URL.Path != l.path {
		http.NotFound(w, r)
		return
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	if err := l.establish(l.id, &wsConn{Conn: c.NetConn(), ws: c}); err != nil {
		l.log.Debug("wss client ended", "error", err)
	}
}

// wsConn carries the MQTT byte stream in binary WebSocket messages.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read, if any
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("mqtttest: MQTT over WebSocket needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // next message
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
