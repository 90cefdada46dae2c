package checks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/redact"
)

type relayWSParams struct {
	URL    string       `yaml:"url"`     // relay-server base URL (required)
	CAFile string       `yaml:"ca_file"` // PEM bundle to trust; default the system roots
	Tunnel string       `yaml:"tunnel"`  // tunnel id or name (required)
	Token  probe.Secret `yaml:"token"`   // connect-scope tunnel token; or api_key
	APIKey probe.Secret `yaml:"api_key"` // API key with the tunnels scope, used to get a fresh connect token
	Mode   string       `yaml:"mode"`    // subprotocols offered: auto (V2 then V1), v2 or v1; default auto
}

func relayWSKind() probe.Kind {
	return probe.Kind{
		Name:    "relay_ws",
		Summary: "WebSocket upgrade of a tunnel's client relay socket with a connect token (or one fetched with an API key)",
		Example: `- name: relay-ws
  kind: relay_ws
  url: https://relay.example
  tunnel: my-tunnel
  api_key_file: /etc/warren/probe-api-key   # or token_file: a connect token
  mode: auto             # subprotocols offered: auto, v2 or v1
  critical: 2s`,
		Params: func() any { return &relayWSParams{Mode: "auto"} },
		New: func(p any, env probe.Env) (probe.Check, error) {
			c := &relayWS{p: *p.(*relayWSParams), red: env.Redactor}
			u, err := relayTarget{URL: c.p.URL, CAFile: c.p.CAFile}.validate()
			if err != nil {
				return nil, err
			}
			c.base = strings.TrimRight(u.String(), "/")
			if c.p.Tunnel == "" {
				return nil, probe.ParamErrorf("tunnel", "missing: the tunnel id or name")
			}
			if !c.p.Token.IsSet() && !c.p.APIKey.IsSet() {
				return nil, probe.ParamErrorf("token", "no credential: set token (token_file, token_env) or api_key (api_key_file, api_key_env)")
			}
			if _, err = subprotocols(c.p.Mode); err != nil {
				return nil, err
			}
			if c.hc, err = httpClient(c.p.CAFile); err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

func subprotocols(mode string) ([]string, error) {
	protos, err := tunnelrelay.Subprotocols(tunnelrelay.ClientSide, mode)
	if err != nil {
		return nil, probe.ParamErrorf("mode", "expected auto, v2 or v1, got %q", mode)
	}
	return protos, nil
}

type relayWS struct {
	p    relayWSParams
	base string
	hc   *http.Client
	red  *redact.Redactor
}

func (c *relayWS) Run(ctx context.Context) probe.Result {
	var res probe.Result
	token := c.p.Token.Value
	wsURL := c.base + "/relay/client/" + url.PathEscape(c.p.Tunnel)
	if c.p.APIKey.IsSet() {
		end := res.Begin("token")
		t, err := getTunnel(ctx, apiclient.Config{BaseURL: c.base, Key: c.p.APIKey.Value, HTTPClient: c.hc}, c.p.Tunnel)
		end()
		if err != nil {
			return res.Fail(stageOf(err, "token"), err)
		}
		tok := apiclient.AccessToken(t, tunnelproto.ScopeConnect)
		if tok == "" {
			return res.Failf("token", "the relay returned no connect token for tunnel %s", c.p.Tunnel)
		}
		c.red.Add("connect_token", tok)
		token = tok
		for _, ep := range t.Endpoints {
			if ep.ClientRelayURI != "" {
				wsURL = ep.ClientRelayURI
			}
		}
	}
	wsURL = strings.Replace(strings.Replace(wsURL, "https://", "wss://", 1), "http://", "ws://", 1)
	end := res.Begin("upgrade")
	conn, err := tunnelrelay.Dial(ctx, tunnelrelay.DialConfig{
		URL: wsURL, Side: tunnelrelay.ClientSide, Mode: c.p.Mode, Token: token, HTTPClient: c.hc,
	})
	end()
	var refused *tunnelrelay.RefusedError
	var badProto *tunnelrelay.SubprotocolError
	switch {
	case errors.As(err, &refused):
		return res.Fail("upgrade", upgradeError(refused.Status, refused.Body))
	case errors.As(err, &badProto):
		return res.Failf("upgrade", "the relay accepted the upgrade without a subprotocol (offered %s)", strings.Join(badProto.Offered, ", "))
	case err != nil:
		return res.Fail(stageOf(err, "upgrade"), fmt.Errorf("upgrade %s: %w", wsURL, err))
	}
	proto := conn.Subprotocol()
	_ = conn.Close()
	res.Detail("subprotocol", proto)
	res.Message = fmt.Sprintf("tunnel %s: client relay socket upgraded (%s) in %s", c.p.Tunnel, proto, ms(total(res.Stages)))
	return res
}

// upgradeError says what a refused upgrade means for an operator.
func upgradeError(code int, body []byte) error {
	hint := ""
	switch code {
	case http.StatusUnauthorized:
		hint = " (the token is missing, malformed, expired or signed by another relay)"
	case http.StatusForbidden:
		hint = " (the token is for another tunnel or lacks the connect scope)"
	case http.StatusNotFound:
		hint = " (unknown tunnel, or no host connected to it)"
	}
	return fmt.Errorf("relay refused the WebSocket upgrade: %s%s", statusText(code, body), hint)
}

// getTunnel reads a tunnel with a connect token through the management
// API, authorised by cfg's API key or tunnel token, and says what a refusal
// means for an operator.
func getTunnel(ctx context.Context, cfg apiclient.Config, tunnel string) (*tunnelproto.Tunnel, error) {
	t, err := apiclient.New(cfg).GetTunnel(ctx, tunnel, apiclient.GetOptions{TokenScopes: []string{tunnelproto.ScopeConnect}})
	var se *apiclient.StatusError
	switch {
	case err == nil:
		return t, nil
	case !errors.As(err, &se):
		if errors.Is(err, apiclient.ErrBadResponse) {
			return nil, fmt.Errorf("GET tunnel %s: %w", tunnel, err)
		}
		return nil, unwrapURLError(err)
	case errors.Is(err, apiclient.ErrUnauthorized), errors.Is(err, apiclient.ErrForbidden):
		return nil, fmt.Errorf("GET tunnel %s: credentials refused (wrong, revoked or expired API key or token?): %s", tunnel, statusText(se.Status, []byte(se.Body)))
	case errors.Is(err, apiclient.ErrNotFound):
		return nil, fmt.Errorf("GET tunnel %s: no such tunnel: %s", tunnel, statusText(se.Status, []byte(se.Body)))
	}
	return nil, fmt.Errorf("GET tunnel %s: %s", tunnel, statusText(se.Status, []byte(se.Body)))
}
