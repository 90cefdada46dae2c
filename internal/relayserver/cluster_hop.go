package relayserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

// The node-to-node hop of a clustered relay (docs/architecture.md,
// "Scale-out"). A request that reaches a node other than the one holding
// what it addresses (a tunnel's host, a wing, a ticket) is carried to the
// owner's internal URL: HTTP requests and WebSocket upgrades by a reverse
// proxy that splices bytes, relay-side port connections by a WebSocket
// dial of /internal/cluster/dial. Every hop request carries the cluster
// secret in HopHeader; a node refuses any request naming HopHeader or
// /internal/cluster/ without the right secret, and serves a hop request
// only from what it holds itself, so a request is carried at most once.

// HopHeader carries the cluster secret on node-to-node requests.
const HopHeader = "X-Warren-Cluster-Hop"

// hopProtoHeader carries the protocol of the request as the client sent
// it: the hop itself is always HTTP/1.1, and the ticket relay's HTTP/1.0
// rule depends on the downloader's protocol.
const hopProtoHeader = "X-Warren-Cluster-Proto"

// internalPrefix is where the node-to-node endpoints live.
const internalPrefix = "/internal/cluster/"

// ErrNodeUnreachable: the node holding what a request addresses is dead,
// has no internal URL, or did not answer.
var ErrNodeUnreachable = errors.New("relay: owner node unreachable")

type hopKey struct{}

// isHop reports whether r came over the node-to-node hop (and was
// authenticated as such).
func isHop(r *http.Request) bool {
	v, _ := r.Context().Value(hopKey{}).(bool)
	return v
}

// clustered reports whether requests may be carried to other nodes: a
// cluster secret is configured.
func (s *Server) clustered() bool { return len(s.cfg.ClusterSecret) > 0 }

// hopGate authenticates hop requests before anything else sees them.
func (s *Server) hopGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals, present := r.Header[http.CanonicalHeaderKey(HopHeader)]
		internal := strings.HasPrefix(r.URL.Path, internalPrefix)
		if !present && !internal {
			next.ServeHTTP(w, r)
			return
		}
		if !present || len(vals) != 1 || !s.hopSecretOK(vals[0]) {
			s.cm.hopRefused.Inc()
			s.log.Warn("cluster hop refused: missing or wrong cluster secret", "remote", r.RemoteAddr, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, "cluster hop refused: missing or wrong cluster secret")
			return
		}
		proto := r.Header.Get(hopProtoHeader)
		r.Header.Del(HopHeader)
		r.Header.Del(hopProtoHeader)
		// A shallow copy: the server keeps answering the hop in HTTP/1.1
		// (chunked, so a cut stream stays visible as cut), while the
		// handler sees the client's protocol.
		r = r.WithContext(context.WithValue(r.Context(), hopKey{}, true))
		if proto == "HTTP/1.0" {
			r.Proto, r.ProtoMajor, r.ProtoMinor = proto, 1, 0
		}
		next.ServeHTTP(w, r)
	})
}

// hopSecretOK compares in constant time (hashes first, so the length of
// the secret does not show either).
func (s *Server) hopSecretOK(v string) bool {
	if !s.clustered() {
		return false
	}
	a := sha256.Sum256([]byte(v))
	b := sha256.Sum256(s.cfg.ClusterSecret)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// nodes caches the node registry for a moment: every routed request
// needs it, and it changes on the scale of leases.
type nodeCache struct {
	mu      sync.Mutex
	fetched time.Time
	nodes   map[string]*store.Node
}

const nodeCacheTTL = time.Second

// liveNode returns the registered, unexpired node id with an internal
// URL, or an error wrapping ErrNodeUnreachable.
func (s *Server) liveNode(ctx context.Context, id string) (*store.Node, error) {
	nodes, err := s.nodeMap(ctx)
	if err != nil {
		return nil, err
	}
	n := nodes[id]
	switch {
	case n == nil:
		return nil, fmt.Errorf("%w: node %q is not registered", ErrNodeUnreachable, id)
	case !n.Expires.After(s.now()):
		return nil, fmt.Errorf("%w: node %q is dead (lease ended %s)", ErrNodeUnreachable, id, n.Expires.UTC().Format(time.RFC3339))
	case n.InternalURL == "":
		return nil, fmt.Errorf("%w: node %q has no internal URL (cluster.internal_url)", ErrNodeUnreachable, id)
	}
	return n, nil
}

func (s *Server) nodeMap(ctx context.Context) (map[string]*store.Node, error) {
	c := &s.nodes
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes != nil && s.now().Sub(c.fetched) < nodeCacheTTL {
		return c.nodes, nil
	}
	list, err := s.cfg.Store.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list relay nodes: %w", err)
	}
	m := make(map[string]*store.Node, len(list))
	for _, n := range list {
		m[n.ID] = n
	}
	c.nodes, c.fetched = m, s.now()
	return m, nil
}

// liveNodes returns the other live nodes with an internal URL.
func (s *Server) otherLiveNodes(ctx context.Context) ([]*store.Node, error) {
	m, err := s.nodeMap(ctx)
	if err != nil {
		return nil, err
	}
	var out []*store.Node
	for _, n := range m {
		if n.ID != s.cfg.Node && n.Expires.After(s.now()) && n.InternalURL != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

// hops tracks the requests being carried to other nodes, so that Close
// can end the spliced WebSockets (which http.Server.Shutdown does not
// see) and wait for them.
type hops struct {
	mu     sync.Mutex
	closed bool
	active map[*context.CancelFunc]struct{}
	wg     sync.WaitGroup
}

// begin registers a carried request; its context ends with Close.
func (h *hops) begin(ctx context.Context) (context.Context, func(), bool) {
	ctx, cancel := context.WithCancel(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		cancel()
		return nil, nil, false
	}
	if h.active == nil {
		h.active = map[*context.CancelFunc]struct{}{}
	}
	key := &cancel
	h.active[key] = struct{}{}
	h.wg.Add(1)
	return ctx, func() {
		cancel()
		h.mu.Lock()
		delete(h.active, key)
		h.mu.Unlock()
		h.wg.Done()
	}, true
}

func (h *hops) close() {
	h.mu.Lock()
	h.closed = true
	for c := range h.active {
		(*c)()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// newHopTransport is the HTTP transport of the hop: no proxy from the
// environment, and no response-header timeout (a ticket GET waits for its
// PUT for up to the ticket's TTL).
func newHopTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
}

// proxyTo carries r to node n and splices the answer back: a plain
// response streamed as it comes (trailers included; a cut upstream body
// aborts this response too), or an upgraded WebSocket byte for byte.
func (s *Server) proxyTo(w http.ResponseWriter, r *http.Request, n *store.Node, what string) {
	target, err := url.Parse(n.InternalURL)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("%s is held by relay node %q, whose internal URL is unusable", what, n.ID))
		return
	}
	ctx, done, ok := s.hops.begin(r.Context())
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "relay shutting down")
		return
	}
	defer done()
	s.cm.hops.WithLabelValues(hopKind(r)).Inc()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(HopHeader, string(s.cfg.ClusterSecret))
			pr.Out.Header.Set(hopProtoHeader, pr.In.Proto)
		},
		Transport:     s.hopTransport,
		FlushInterval: -1,
		ErrorLog:      nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.cm.hopFailures.Inc()
			s.log.Warn("cluster hop failed", "node", n.ID, "what", what, "err", err)
			writeError(w, http.StatusBadGateway, fmt.Sprintf("%s is held by relay node %q, which did not answer", what, n.ID))
		},
	}
	s.log.Debug("carrying request to its owner node", "node", n.ID, "what", what, "path", r.URL.Path)
	rp.ServeHTTP(w, r.WithContext(ctx))
}

// hopKind labels a carried request for metrics.
func hopKind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/relay/client/"):
		return "tunnel_client"
	case strings.HasPrefix(p, "/v1/relay/"):
		return "ticket"
	case p == "/ws/pty" || p == "/ws/relay":
		return "wing_user"
	case p == "/api/app/wings":
		return "wing_list"
	}
	return "other"
}

// hopRequest sends a small internal request to node n.
func (s *Server) hopRequest(ctx context.Context, n *store.Node, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(n.InternalURL, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(HopHeader, string(s.cfg.ClusterSecret))
	return s.hopClient.Do(req)
}
