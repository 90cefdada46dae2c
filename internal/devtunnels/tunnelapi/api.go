package tunnelapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/auth"
	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
)

// Defaults of Config.
const (
	DefaultTokenTTL = time.Hour
	DefaultNode     = "local"
)

// MaxBodyBytes bounds a request body; larger bodies get 413. The biggest
// legitimate body, a tunnel with its ports, is a few KiB.
const MaxBodyBytes = 1 << 20

// Authenticator identifies the caller of a request; *auth.Authenticator is
// the implementation. Its errors must wrap auth.ErrNoCredentials or
// auth.ErrBadCredentials (answered 401); any other error is answered 500.
type Authenticator interface {
	Authenticate(r *http.Request) (*auth.Principal, error)
}

var (
	_ Authenticator = (*auth.Authenticator)(nil)
	_ http.Handler  = (*API)(nil)
)

// Config configures an API. Store, Tokens, Auth and PublicURL are required;
// zero values of the others mean the documented default.
type Config struct {
	// Store holds tunnels, ports and endpoints.
	Store store.Store
	// Tokens mints the tokens handed out through tokenScopes.
	Tokens *token.Issuer
	// Auth identifies callers.
	Auth Authenticator
	// PublicURL is the relay's base URL as clients reach it, e.g.
	// "http://127.0.0.1:8080" or "https://relay.example/warren". Relay
	// URIs are derived from it: http becomes ws, https becomes wss, and any
	// path prefix is kept.
	PublicURL string
	// TokenTTL is the lifetime of tokens issued through tokenScopes.
	// Default DefaultTokenTTL. It must not exceed the issuer's MaxTTL: New
	// fails otherwise (token.Issuer does not expose MaxTTL to cap against).
	TokenTTL time.Duration
	// Node names this relay node; it is stored on the endpoints registered
	// here. Default DefaultNode.
	Node string
	// HostConnected reports whether a host session for the endpoint is live
	// on this relay. nil means every stored endpoint counts as connected.
	// It is called on every tunnel read, so it must be cheap and safe for
	// concurrent use.
	HostConnected func(tunnelID, endpointID string) bool
	// PortURIs lists the URIs a port is reachable at without tunnel-client
	// (web forwarding, raw TCP exposure), for portForwardingUris. nil means
	// none: the list is [].
	PortURIs func(tunnelID string, port uint16) []string
	// PortURIFormat is the endpoint's portUriFormat for a tunnel, a URI
	// with a literal "{port}" token; nil or "" leaves it out.
	PortURIFormat func(tunnelID string) string
	// ClusterID is the clusterId every tunnel, port and list region
	// carries, and the one GET /clusters/recommendations recommends.
	// Default DefaultClusterID(PublicURL). It must be non-empty for the TS
	// SDK, which refuses every call but create on a tunnel without one.
	ClusterID string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// API serves the management API. It is safe for concurrent use.
type API struct {
	store         store.Store
	tokens        *token.Issuer
	auth          Authenticator
	relayBase     string // ws(s)://host[/prefix], no trailing slash
	publicURL     string // http(s)://host[/prefix], no trailing slash
	tokenTTL      time.Duration
	node          string
	clusterID     string
	hostConnected func(tunnelID, endpointID string) bool
	portURIs      func(tunnelID string, port uint16) []string
	portURIFormat func(tunnelID string) string
	now           func() time.Time
	log           *slog.Logger
}

// New returns an API for cfg. logger receives server-side failures (5xx)
// and an audit line per tunnel created or deleted; nil discards them.
// Credentials are never logged.
func New(cfg Config, logger *slog.Logger) (*API, error) {
	if cfg.Store == nil {
		return nil, errors.New("tunnelapi: Config.Store is required")
	}
	if cfg.Tokens == nil {
		return nil, errors.New("tunnelapi: Config.Tokens is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("tunnelapi: Config.Auth is required")
	}
	base, err := relayBase(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	a := &API{
		store:         cfg.Store,
		tokens:        cfg.Tokens,
		auth:          cfg.Auth,
		relayBase:     base,
		publicURL:     strings.TrimRight(cfg.PublicURL, "/"),
		tokenTTL:      cfg.TokenTTL,
		node:          cfg.Node,
		clusterID:     cfg.ClusterID,
		hostConnected: cfg.HostConnected,
		portURIs:      cfg.PortURIs,
		portURIFormat: cfg.PortURIFormat,
		now:           cfg.Now,
		log:           logger,
	}
	if a.tokenTTL < 0 {
		return nil, fmt.Errorf("tunnelapi: negative TokenTTL %v", a.tokenTTL)
	}
	if a.tokenTTL == 0 {
		a.tokenTTL = DefaultTokenTTL
	}
	// Issue checks the TTL before it looks for a key, so this probe fails
	// only on a TTL above the issuer's MaxTTL, even with an empty keyring.
	probe := token.Grant{TunnelID: "probe", TunnelCreated: time.Unix(0, 0), Scopes: []string{token.ScopeConnect}, TTL: a.tokenTTL}
	if _, _, err := a.tokens.Issue(probe); err != nil && !errors.Is(err, token.ErrNoKey) {
		return nil, fmt.Errorf("tunnelapi: TokenTTL %v is not accepted by the token issuer: %w", a.tokenTTL, err)
	}
	if a.node == "" {
		a.node = DefaultNode
	}
	if a.clusterID == "" {
		a.clusterID = DefaultClusterID(cfg.PublicURL)
	}
	if err := ValidClusterID(a.clusterID); err != nil {
		return nil, fmt.Errorf("tunnelapi: Config.ClusterID: %w", err)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// relayBase turns the public HTTP(S) base URL into the WebSocket base of the
// relay URIs. The SDK rejects anything but ws:// and wss:// there.
func relayBase(public string) (string, error) {
	if public == "" {
		return "", errors.New("tunnelapi: Config.PublicURL is required")
	}
	u, err := url.Parse(public)
	if err != nil {
		return "", fmt.Errorf("tunnelapi: Config.PublicURL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("tunnelapi: Config.PublicURL %q: scheme must be http or https", public)
	}
	if u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("tunnelapi: Config.PublicURL %q: want scheme://host[:port][/prefix]", public)
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = "", "", "", false
	return strings.TrimRight(u.String(), "/"), nil
}

// HostRelayURI is the hostRelayUri of tunnelID's endpoints.
func (a *API) HostRelayURI(tunnelID string) string {
	return a.relayBase + "/relay/host/" + url.PathEscape(tunnelID)
}

// ClientRelayURI is the clientRelayUri of tunnelID's endpoints.
func (a *API) ClientRelayURI(tunnelID string) string {
	return a.relayBase + "/relay/client/" + url.PathEscape(tunnelID)
}

// call is one request in flight.
type call struct {
	w http.ResponseWriter
	r *http.Request
	q url.Values
	p *auth.Principal // set by authenticate
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, q: r.URL.Query()}
	if err := a.serve(c); err != nil {
		a.writeError(c, err)
	}
}

func (a *API) serve(c *call) error {
	if v := c.q.Get("api-version"); v != tunnelproto.APIVersion {
		return &apiError{
			status: http.StatusBadRequest,
			detail: fmt.Sprintf("query parameter api-version must be %q", tunnelproto.APIVersion),
			fields: map[string][]string{"api-version": {fmt.Sprintf("unsupported api-version %q", v)}},
		}
	}
	segs := splitPath(c.r.URL.Path)
	switch {
	case len(segs) == 2 && segs[0] == "clusters" && segs[1] == "recommendations":
		return a.methods(c, handlers{http.MethodGet: func() error { return a.recommendClusters(c) }})
	case len(segs) == 0 || segs[0] != "tunnels":
	case len(segs) == 1:
		return a.methods(c, handlers{http.MethodGet: func() error { return a.listTunnels(c) }})
	case len(segs) == 2:
		ref := segs[1]
		return a.methods(c, handlers{
			http.MethodGet:    func() error { return a.getTunnel(c, ref) },
			http.MethodPut:    func() error { return a.putTunnel(c, ref) },
			http.MethodDelete: func() error { return a.deleteTunnel(c, ref) },
		})
	case len(segs) == 3 && segs[2] == "ports":
		return a.methods(c, handlers{http.MethodGet: func() error { return a.listPorts(c, segs[1]) }})
	case len(segs) == 3 && segs[2] == "events":
		return a.methods(c, handlers{http.MethodPost: func() error { return a.postEvents(c, segs[1]) }})
	case len(segs) == 4 && segs[2] == "ports":
		ref, n := segs[1], segs[3]
		return a.methods(c, handlers{
			http.MethodGet:    func() error { return a.getPort(c, ref, n) },
			http.MethodPut:    func() error { return a.putPort(c, ref, n) },
			http.MethodDelete: func() error { return a.deletePort(c, ref, n) },
		})
	case len(segs) == 4 && segs[2] == "endpoints":
		ref, id := segs[1], segs[3]
		return a.methods(c, handlers{
			http.MethodPut:    func() error { return a.putEndpoint(c, ref, id) },
			http.MethodDelete: func() error { return a.deleteEndpoint(c, ref, id) },
		})
	}
	return notFound(fmt.Sprintf("no route for %s %s", c.r.Method, c.r.URL.Path))
}

type handlers map[string]func() error

// methods runs the handler of the request's method, or answers 405.
func (a *API) methods(c *call, hs handlers) error {
	if h, ok := hs[c.r.Method]; ok {
		return h()
	}
	allow := make([]string, 0, len(hs))
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		if _, ok := hs[m]; ok {
			allow = append(allow, m)
		}
	}
	c.w.Header().Set("Allow", strings.Join(allow, ", "))
	return &apiError{status: http.StatusMethodNotAllowed, detail: fmt.Sprintf("%s is not allowed here", c.r.Method)}
}

// splitPath splits "/a/b/" into [a b]; an empty inner segment yields nil,
// which routes nowhere.
func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil
	}
	segs := strings.Split(p, "/")
	for _, s := range segs {
		if s == "" {
			return nil
		}
	}
	return segs
}

// readBody reads the request body, bounded by MaxBodyBytes.
func readBody(c *call) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, detail: "reading the request body: " + err.Error()}
	}
	return b, nil
}
