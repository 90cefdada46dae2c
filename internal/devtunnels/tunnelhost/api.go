package tunnelhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// StatusError is an unexpected HTTP status from the management API or from
// the relay WebSocket upgrade.
type StatusError struct {
	Op     string // what was attempted, e.g. "GET tunnel" or "relay upgrade"
	Status int
	Body   string // the start of the response body, if any
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("tunnelhost: %s: HTTP %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// apiAuth is the Authorization header for management API calls: the
// operator key when there is one, else the host token.
func (h *Host) apiAuth() string {
	if h.cfg.APIKey != "" {
		return "Bearer " + h.cfg.APIKey
	}
	if t := h.token(); t != "" {
		return "Tunnel " + t
	}
	return ""
}

func (h *Host) apiURL(path string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", tunnelproto.APIVersion)
	return strings.TrimRight(h.cfg.RelayURL, "/") + path + "?" + q.Encode()
}

// call performs one management API request. ok lists statuses (besides
// 2xx) that are not errors. out, if non-nil, receives the JSON body.
func (h *Host) call(ctx context.Context, op, method, u string, body, out any, ok ...int) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	if a := h.apiAuth(); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := h.httpc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("tunnelhost: %s: %w", op, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return resp.StatusCode, fmt.Errorf("tunnelhost: %s: decode response: %w", op, err)
			}
		}
		return resp.StatusCode, nil
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp.StatusCode, nil
		}
	}
	b := string(data)
	if len(b) > 200 {
		b = b[:200]
	}
	return resp.StatusCode, &StatusError{Op: op, Status: resp.StatusCode, Body: strings.TrimSpace(b)}
}

// getTunnel reads the tunnel with its ports; withHostToken asks for a fresh
// host token too (operator key only).
func (h *Host) getTunnel(ctx context.Context, withHostToken bool) (*tunnelproto.Tunnel, error) {
	q := url.Values{"includePorts": {"true"}}
	if withHostToken {
		q.Set("tokenScopes", tunnelproto.ScopeHost)
	}
	var t tunnelproto.Tunnel
	if _, err := h.call(ctx, "GET tunnel", http.MethodGet, h.apiURL("/tunnels/"+url.PathEscape(h.cfg.TunnelID), q), nil, &t); err != nil {
		return nil, err
	}
	if withHostToken {
		tok := hostTokenOf(t.AccessTokens)
		if tok == "" {
			return nil, errors.New("tunnelhost: GET tunnel: no host token in accessTokens")
		}
		h.setToken(tok)
	}
	return &t, nil
}

// hostTokenOf finds the host-scope token; keys may be space-separated
// scope lists.
func hostTokenOf(m map[string]string) string {
	for k, v := range m {
		for _, s := range strings.Fields(k) {
			if s == tunnelproto.ScopeHost {
				return v
			}
		}
	}
	return ""
}

func (h *Host) putPort(ctx context.Context, p Port) error {
	body := tunnelproto.TunnelPort{PortNumber: p.Number, Protocol: p.Protocol}
	_, err := h.call(ctx, "PUT port "+strconv.Itoa(int(p.Number)), http.MethodPut,
		h.apiURL("/tunnels/"+url.PathEscape(h.cfg.TunnelID)+"/ports/"+strconv.Itoa(int(p.Number)), nil),
		body, nil, http.StatusConflict)
	return err
}

func (h *Host) deletePort(ctx context.Context, n uint16) error {
	_, err := h.call(ctx, "DELETE port "+strconv.Itoa(int(n)), http.MethodDelete,
		h.apiURL("/tunnels/"+url.PathEscape(h.cfg.TunnelID)+"/ports/"+strconv.Itoa(int(n)), nil),
		nil, nil, http.StatusNotFound)
	return err
}

func (h *Host) endpointID() string { return h.hostID + "-relay" }

func (h *Host) putEndpoint(ctx context.Context) (*tunnelproto.TunnelEndpoint, error) {
	id := h.endpointID()
	body := tunnelproto.TunnelEndpoint{
		ID:             id,
		HostID:         h.hostID,
		ConnectionMode: tunnelproto.ConnectionModeTunnelRelay,
		HostPublicKeys: []string{h.pubKeyB64},
	}
	var out tunnelproto.TunnelEndpoint
	_, err := h.call(ctx, "PUT endpoint", http.MethodPut,
		h.apiURL("/tunnels/"+url.PathEscape(h.cfg.TunnelID)+"/endpoints/"+url.PathEscape(id),
			url.Values{"connectionMode": {tunnelproto.ConnectionModeTunnelRelay}}),
		body, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (h *Host) deleteEndpoint(ctx context.Context) error {
	_, err := h.call(ctx, "DELETE endpoint", http.MethodDelete,
		h.apiURL("/tunnels/"+url.PathEscape(h.cfg.TunnelID)+"/endpoints/"+url.PathEscape(h.endpointID()), nil),
		nil, nil, http.StatusNotFound)
	return err
}
