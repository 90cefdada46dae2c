package wingclient

import (
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// ErrTunnelTimeout is returned when a tunnel request gets no reply in time.
var ErrTunnelTimeout = errors.New("the wing did not answer the request in time")

// Tunnel sends encrypted requests to one wing over /ws/relay (docs/protocols/wing.md §2.8).
// Requests on one Tunnel run one at a time.
type Tunnel struct {
	c      *Client
	wingID string
	key    *ecdh.PrivateKey
	cipher *wp.Cipher

	mu sync.Mutex
	ws *websocket.Conn
	// AuthToken, when set, is sent with every request (the passkey gate).
	AuthToken string
}

// OpenTunnel looks the wing's public key up and dials /ws/relay. An empty
// wingID picks the only wing the token reaches.
func (c *Client) OpenTunnel(ctx context.Context, wingID string) (*Tunnel, error) {
	wings, err := c.Wings(ctx)
	if err != nil {
		return nil, err
	}
	var pub string
	switch {
	case wingID == "" && len(wings) == 1:
		wingID, pub = wings[0].WingID, wings[0].PublicKey
	case wingID == "" && len(wings) == 0:
		return nil, &RemoteError{Msg: "no wing of yours is connected to the relay", Code: 1}
	case wingID == "":
		ids := make([]string, len(wings))
		for i, w := range wings {
			ids[i] = w.WingID
		}
		return nil, &RemoteError{Msg: "several wings; name one: " + strings.Join(ids, ", "), Code: 2}
	default:
		for _, w := range wings {
			if w.WingID == wingID {
				pub = w.PublicKey
			}
		}
	}
	if pub == "" {
		return nil, &RemoteError{Msg: "no wing connected: " + wingID, Code: 1}
	}
	if err := c.verifyKey(wingID, pub); err != nil {
		return nil, err
	}
	key, err := wp.GenerateKey()
	if err != nil {
		return nil, err
	}
	ci, err := wp.NewCipher(key, pub, wp.InfoTunnel)
	if err != nil {
		return nil, fmt.Errorf("wing %s public key: %w", wingID, err)
	}
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+c.Token)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	u := strings.Replace(c.ptyURL(wingID), "/ws/pty?", "/ws/relay?", 1)
	ws, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: c.HTTPClient})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, ErrUnauthorized
		}
		return nil, fmt.Errorf("dial relay %s: %w", c.base(), err)
	}
	ws.SetReadLimit(wp.MaxFrame)
	return &Tunnel{c: c, wingID: wingID, key: key, cipher: ci, ws: ws}, nil
}

// WingID is the wing this tunnel talks to.
func (t *Tunnel) WingID() string { return t.wingID }

// Close drops the connection.
func (t *Tunnel) Close() { t.ws.Close(websocket.StatusNormalClosure, "") }

// Request sends req (a JSON object with a "type") and decodes the reply
// into out. A reply {"error":...} is returned as a *RemoteError.
func (t *Tunnel) Request(ctx context.Context, req map[string]any, out any) error {
	var last []byte
	err := t.Stream(ctx, req, func(p []byte) error { last = p; return nil })
	if err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(last, out)
	}
	return nil
}

// Stream sends req and calls fn with each decrypted reply payload: one for
// tunnel.res, several for tunnel.stream until done. The timeout between
// frames is 2 minutes, the relay's.
func (t *Tunnel) Stream(ctx context.Context, req map[string]any, fn func([]byte) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.AuthToken != "" {
		if _, ok := req["auth_token"]; !ok {
			req["auth_token"] = t.AuthToken
		}
	}
	plain, err := json.Marshal(req)
	if err != nil {
		return err
	}
	rid := uuid.NewString()
	msg := wp.TunnelReq{Type: wp.TypeTunnelReq, WingID: t.wingID, RequestID: rid, SenderPub: wp.PublicKeyString(t.key), Payload: t.cipher.Seal(plain)}
	b, _ := wp.Encode(msg)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = t.ws.Write(wctx, websocket.MessageText, b)
	cancel()
	if err != nil {
		return fmt.Errorf("send tunnel request: %w", err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, data, err := t.ws.Read(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return ErrTunnelTimeout
			}
			return fmt.Errorf("relay connection: %w", err)
		}
		var f struct {
			Type      string `json:"type"`
			RequestID string `json:"request_id"`
			Payload   string `json:"payload"`
			Done      bool   `json:"done"`
			Message   string `json:"message"`
		}
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch f.Type {
		case wp.TypeError:
			return &RemoteError{Msg: f.Message, Code: 1}
		case wp.TypeRelayRestart:
			return errors.New("relay restarting")
		case wp.TypeTunnelRes, wp.TypeTunnelStream:
			if f.RequestID != rid {
				continue
			}
			p, err := t.cipher.Open(f.Payload)
			if err != nil {
				return fmt.Errorf("tunnel reply does not decrypt: %w", err)
			}
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(p, &e) == nil && e.Error != "" {
				return &RemoteError{Msg: e.Error, Code: 1}
			}
			if err := fn(p); err != nil {
				return err
			}
			if f.Type == wp.TypeTunnelRes || f.Done {
				return nil
			}
		}
	}
}
