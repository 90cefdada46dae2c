package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// Config configures a Client.
type Config struct {
	// BaseURL is relay-server's base URL, e.g. https://relay.example or
	// http://127.0.0.1:8080. Required; a trailing slash is ignored.
	BaseURL string
	// Key is an API key or the admin key, sent as "Bearer <key>". Default
	// none.
	Key string
	// Token returns the current tunnel access token, sent as
	// "Tunnel <token>" when Key is empty; it is called on every request, so
	// a refreshed token is used at once. Default nil: with neither Key nor
	// a token, requests carry no Authorization header.
	Token func() string
	// HTTPClient sends the requests. Default http.DefaultClient, so a
	// call's only deadline is its context's.
	HTTPClient *http.Client
}

// maxBody bounds the answers read: a tunnel list with ports fits easily.
const maxBody = 8 << 20

// Client calls relay-server's APIs. It is safe for concurrent use.
type Client struct {
	base  string
	key   string
	token func() string
	hc    *http.Client
}

// New returns a Client for cfg. It does not contact the server.
func New(cfg Config) *Client {
	c := &Client{base: strings.TrimRight(cfg.BaseURL, "/"), key: cfg.Key, token: cfg.Token, hc: cfg.HTTPClient}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	return c
}

// BaseURL is the base URL the client sends to, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

func (c *Client) auth() string {
	if c.key != "" {
		return "Bearer " + c.key
	}
	if c.token != nil {
		if t := c.token(); t != "" {
			return "Tunnel " + t
		}
	}
	return ""
}

// Do sends one request to path (relative to the base URL, with its query)
// with in, if not nil, as the JSON body, and decodes a 2xx answer into out,
// if not nil. op names the call in errors, e.g. "create key". The typed
// methods below are Do with the management API's paths.
func (c *Client) Do(ctx context.Context, op, method, path string, in, out any) error {
	return c.do(ctx, op, method, path, nil, in, out)
}

func (c *Client) do(ctx context.Context, op, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return &urlError{err}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	if a := c.auth(); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return newStatusError(op, resp.StatusCode, data)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", op, err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: %w: %w", op, ErrBadResponse, err)
		}
	}
	return nil
}

// tunnelPath is a management API path with the api-version every call
// needs; parts are path-escaped.
func tunnelPath(q url.Values, parts ...string) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", tunnelproto.APIVersion)
	p := "/tunnels"
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p + "?" + q.Encode()
}

// Precondition says whether a PUT may create, update, or both.
type Precondition int

const (
	// CreateOrUpdate sends no precondition header.
	CreateOrUpdate Precondition = iota
	// CreateOnly sends "If-None-Match: *": an existing resource is a 409
	// (ErrConflict).
	CreateOnly
	// UpdateOnly sends "If-Match: *": a missing resource is a 404
	// (ErrNotFound).
	UpdateOnly
)

func (p Precondition) header() http.Header {
	switch p {
	case CreateOnly:
		return http.Header{"If-None-Match": {"*"}}
	case UpdateOnly:
		return http.Header{"If-Match": {"*"}}
	}
	return nil
}

// GetOptions are the query options of GetTunnel.
type GetOptions struct {
	// IncludePorts lists the tunnel's ports in the answer.
	IncludePorts bool
	// TokenScopes asks for a fresh access token per scope (read them with
	// AccessToken).
	TokenScopes []string
}

// GetTunnel reads tunnel id (an id, a name or name.domain).
func (c *Client) GetTunnel(ctx context.Context, id string, o GetOptions) (*tunnelproto.Tunnel, error) {
	q := url.Values{}
	if o.IncludePorts {
		q.Set("includePorts", "true")
	}
	if len(o.TokenScopes) > 0 {
		q["tokenScopes"] = o.TokenScopes
	}
	var t tunnelproto.Tunnel
	if err := c.do(ctx, "GET tunnel", http.MethodGet, tunnelPath(q, id), nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTunnels lists every tunnel (operator credentials only).
func (c *Client) ListTunnels(ctx context.Context) (*tunnelproto.TunnelListByRegionResponse, error) {
	var res tunnelproto.TunnelListByRegionResponse
	if err := c.do(ctx, "GET tunnels", http.MethodGet, "/tunnels?"+url.Values{"api-version": {tunnelproto.APIVersion}}.Encode(), nil, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// PutTunnel creates or updates tunnel t.TunnelID and returns it as stored.
func (c *Client) PutTunnel(ctx context.Context, t *tunnelproto.Tunnel, p Precondition) (*tunnelproto.Tunnel, error) {
	var out tunnelproto.Tunnel
	if err := c.do(ctx, "PUT tunnel", http.MethodPut, tunnelPath(nil, t.TunnelID), p.header(), t, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteTunnel deletes a tunnel with its ports and endpoints.
func (c *Client) DeleteTunnel(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE tunnel", http.MethodDelete, tunnelPath(nil, id), nil, nil, nil)
}

// ListPorts lists the ports of a tunnel.
func (c *Client) ListPorts(ctx context.Context, tunnelID string) (*tunnelproto.TunnelPortList, error) {
	var res tunnelproto.TunnelPortList
	if err := c.do(ctx, "GET ports", http.MethodGet, tunnelPath(nil, tunnelID, "ports"), nil, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// PutPort creates or updates port p.PortNumber of a tunnel and returns it
// as stored.
func (c *Client) PutPort(ctx context.Context, tunnelID string, port *tunnelproto.TunnelPort, p Precondition) (*tunnelproto.TunnelPort, error) {
	n := strconv.Itoa(int(port.PortNumber))
	var out tunnelproto.TunnelPort
	if err := c.do(ctx, "PUT port "+n, http.MethodPut, tunnelPath(nil, tunnelID, "ports", n), p.header(), port, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeletePort deletes a port of a tunnel.
func (c *Client) DeletePort(ctx context.Context, tunnelID string, port uint16) error {
	n := strconv.Itoa(int(port))
	return c.do(ctx, "DELETE port "+n, http.MethodDelete, tunnelPath(nil, tunnelID, "ports", n), nil, nil, nil)
}

// PutEndpoint registers a host endpoint (ep.ID, in ep.ConnectionMode) and
// returns it with the relay URIs filled in.
func (c *Client) PutEndpoint(ctx context.Context, tunnelID string, ep *tunnelproto.TunnelEndpoint) (*tunnelproto.TunnelEndpoint, error) {
	q := url.Values{}
	if ep.ConnectionMode != "" {
		q.Set("connectionMode", ep.ConnectionMode)
	}
	var out tunnelproto.TunnelEndpoint
	if err := c.do(ctx, "PUT endpoint", http.MethodPut, tunnelPath(q, tunnelID, "endpoints", ep.ID), nil, ep, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteEndpoint unregisters a host endpoint.
func (c *Client) DeleteEndpoint(ctx context.Context, tunnelID, endpointID string) error {
	return c.do(ctx, "DELETE endpoint", http.MethodDelete, tunnelPath(nil, tunnelID, "endpoints", endpointID), nil, nil, nil)
}
