package webforward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
)

// Names of the credentials web forwarding accepts.
const (
	HeaderTunnelAuthorization = "X-Tunnel-Authorization"
	QueryToken                = "tunnel_token"
	CookieName                = "warren_tunnel_token"
)

// Dialer opens a connection to port on the host of tunnel tunnelID.
// tunnelrelay.Relay.DialPort is one.
type Dialer func(ctx context.Context, tunnelID string, port uint16, from netip.AddrPort) (net.Conn, error)

// Config configures a Forwarder.
type Config struct {
	// Domain enables the Host form, <tunnelId>-<port>.<Domain>. Empty
	// (the default) serves the path form only.
	Domain string
	// Dial reaches the host's port. Required.
	Dial Dialer
	// Store resolves tunnels (by ID or name) and ports for their access
	// control and options. Required.
	Store store.Store
	// Tokens verifies connect tokens. Required.
	Tokens *token.Issuer
	// Secure marks the token cookie Secure; set it when clients reach the
	// relay over HTTPS. Default false.
	Secure bool
	// CookieTTL bounds the token cookie's lifetime; it never outlives the
	// token itself. Default 12h.
	CookieTTL time.Duration
	// OnError, if set, classifies failed forwards for metrics: it gets
	// the HTTP status answered. Default nil.
	OnError func(status int)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Forwarder serves web forwarding. It is safe for concurrent use.
type Forwarder struct {
	cfg    Config
	domain string // lower case, no leading dot
	log    *slog.Logger
	proxy  *httputil.ReverseProxy
}

// New returns a Forwarder for cfg. logger may be nil (discard).
func New(cfg Config, logger *slog.Logger) (*Forwarder, error) {
	if cfg.Dial == nil || cfg.Store == nil || cfg.Tokens == nil {
		return nil, errors.New("webforward: Config.Dial, Store and Tokens are required")
	}
	if cfg.CookieTTL <= 0 {
		cfg.CookieTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{cfg: cfg, domain: strings.ToLower(strings.Trim(cfg.Domain, ".")), log: logger}
	tr := &http.Transport{
		DialContext:           f.dial,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // apps may stream or long-poll
		DisableCompression:    true,
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		ModifyResponse: modifyResponse,
		Transport:      tr,
		ErrorHandler:   f.proxyError,
		BufferPool:     copyBuffers{},
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	return f, nil
}

// target is what a request names: a tunnel port and the path prefix that
// named it ("" in the Host form).
type target struct {
	tunnel *store.Tunnel
	port   uint16
	prefix string
	unHost bool // isHostHeaderUnchanged
	unOrig bool // isOriginHeaderUnchanged
}

type targetKey struct{}

// MatchHost parses a Host header in the Host form. It reports the tunnel
// reference and port, or ok false when host is not of the form.
func (f *Forwarder) MatchHost(host string) (ref string, port uint16, ok bool) {
	if f.domain == "" {
		return "", 0, false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	label, found := strings.CutSuffix(host, "."+f.domain)
	if !found || label == "" || strings.Contains(label, ".") {
		return "", 0, false
	}
	i := strings.LastIndexByte(label, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(label[i+1:], 10, 16)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return label[:i], uint16(n), true
}

// Wrap serves Host-form requests and passes every other request to next.
func (f *Forwarder) Wrap(next http.Handler) http.Handler {
	if f.domain == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref, port, ok := f.MatchHost(r.Host)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		f.serve(w, r, ref, port, "")
	})
}

// PathPattern is the ServeMux pattern of the path form.
const PathPattern = "/tunnels/{tunnelId}/ports/{port}/{path...}"

// ServePath serves a request routed by PathPattern.
func (f *Forwarder) ServePath(w http.ResponseWriter, r *http.Request) {
	ref, ps := r.PathValue("tunnelId"), r.PathValue("port")
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || n == 0 {
		f.fail(w, http.StatusNotFound, fmt.Sprintf("%q is not a port number", ps))
		return
	}
	f.serve(w, r, ref, uint16(n), "/tunnels/"+ref+"/ports/"+ps)
}

func (f *Forwarder) serve(w http.ResponseWriter, r *http.Request, ref string, port uint16, prefix string) {
	ctx := r.Context()
	if escapesRoot(strings.TrimPrefix(r.URL.Path, prefix)) {
		// The app would resolve the decoded path above its root: a file
		// server could serve what lies outside it.
		f.fail(w, http.StatusBadRequest, "the path climbs above the root with '..' segments (encoded or not)")
		return
	}
	t, err := f.cfg.Store.FindTunnel(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		f.fail(w, http.StatusNotFound, fmt.Sprintf("tunnel %q not found", ref))
		return
	}
	if err != nil {
		f.log.Error("web forwarding: tunnel lookup failed", "ref", ref, "err", err)
		f.fail(w, http.StatusInternalServerError, "internal error")
		return
	}
	p, err := f.cfg.Store.GetPort(ctx, t.ID, port)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		f.log.Error("web forwarding: port lookup failed", "tunnel_id", t.ID, "port", port, "err", err)
		f.fail(w, http.StatusInternalServerError, "internal error")
		return
	}
	tg := &target{tunnel: t, port: port, prefix: prefix}
	tg.unHost, tg.unOrig = tunnelproto.HeaderOptions(t.Options)
	var portACL []byte
	if p != nil {
		portACL = p.AccessControl
		if len(p.Options) > 0 {
			tg.unHost, tg.unOrig = tunnelproto.HeaderOptions(p.Options)
		}
	}
	anonymous := false
	if decided, allowed := tunnelproto.AnonymousAccess(portACL, tunnelproto.ScopeConnect); decided {
		anonymous = allowed
	} else if _, allowed := tunnelproto.AnonymousAccess(t.AccessControl, tunnelproto.ScopeConnect); allowed {
		anonymous = true
	}

	tok, fromQuery := credential(r)
	if tok != "" {
		claims, err := f.cfg.Tokens.Verify(tok)
		switch {
		case err != nil:
			if !anonymous {
				f.fail(w, http.StatusUnauthorized, "invalid tunnel access token: "+err.Error())
				return
			}
		case claims.TunnelID != t.ID || !claims.HasScope(tunnelproto.ScopeConnect):
			if !anonymous {
				f.fail(w, http.StatusForbidden, fmt.Sprintf("the token does not grant connect on tunnel %q", t.ID))
				return
			}
		case !claims.SameInstance(t.Created):
			if !anonymous {
				f.fail(w, http.StatusUnauthorized, fmt.Sprintf("the token was issued for an earlier tunnel %q, deleted since; obtain a new token", t.ID))
				return
			}
		case fromQuery && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			// Trade the query token for a cookie and drop it from the URL.
			f.setCookie(w, tok, claims.Expiry, prefix)
			http.Redirect(w, r, redirectTarget(r.URL), http.StatusTemporaryRedirect)
			return
		}
	} else if !anonymous {
		f.fail(w, http.StatusUnauthorized, fmt.Sprintf(
			"tunnel %q port %d needs a connect token: send %q, or open the URL once with ?%s=<token>",
			t.ID, port, HeaderTunnelAuthorization+": tunnel <token>", QueryToken))
		return
	}
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, targetKey{}, tg)))
}

// escapesRoot reports whether the decoded path p, resolved as a server
// would, climbs above "/". Backslashes count as separators, as they do for
// servers on Windows.
func escapesRoot(p string) bool {
	depth := 0
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		switch seg {
		case ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// redirectTarget is where the query-token redirect sends the browser: u's
// path and query without the token, as a path on this origin. Leading
// slashes and backslashes collapse to one slash, since browsers read
// "//host" and "/\host" as another origin.
func redirectTarget(u *url.URL) string {
	q := u.Query()
	q.Del(QueryToken)
	loc := "/" + strings.TrimLeft(u.EscapedPath(), "/\\")
	if enc := q.Encode(); enc != "" {
		loc += "?" + enc
	}
	return loc
}

// credential finds the relay token of a request, and whether it came from
// the query string. Every value of the token headers is looked at, as
// rewrite strips them all.
func credential(r *http.Request) (tok string, fromQuery bool) {
	for _, name := range []string{HeaderTunnelAuthorization, "Authorization"} {
		for _, v := range r.Header.Values(name) {
			if s, c, ok := token.ParseAuthorization(v); ok && s == token.SchemeTunnel {
				return c, false
			}
		}
	}
	if q := r.URL.Query().Get(QueryToken); q != "" {
		return q, true
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value, false
	}
	return "", false
}

func (f *Forwarder) setCookie(w http.ResponseWriter, tok string, expiry time.Time, prefix string) {
	exp := f.cfg.Now().Add(f.cfg.CookieTTL)
	if !expiry.IsZero() && expiry.Before(exp) {
		exp = expiry
	}
	path := "/"
	if prefix != "" {
		path = prefix + "/"
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: tok, Path: path, Expires: exp,
		HttpOnly: true, Secure: f.cfg.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// rewrite turns the inbound request into the one the app receives.
func (f *Forwarder) rewrite(pr *httputil.ProxyRequest) {
	tg := pr.In.Context().Value(targetKey{}).(*target)
	out := pr.Out
	out.URL.Scheme = "http"
	// The dialer reads the tunnel and port back from this name; the
	// transport pools connections per tunnel port by it.
	out.URL.Host = dialName(tg.tunnel.ID, tg.port)
	if tg.prefix != "" {
		out.URL.Path = "/" + strings.TrimPrefix(pr.In.URL.Path, tg.prefix+"/")
		out.URL.RawPath = ""
	}
	q := out.URL.Query()
	if q.Has(QueryToken) {
		q.Del(QueryToken)
		out.URL.RawQuery = q.Encode()
	}
	// Forwarding headers are the relay's to say: an app trusts them to
	// name the client and its URL, so none of the client's pass.
	for name := range out.Header {
		if relayOwned(name) {
			delete(out.Header, name)
		}
	}
	pr.SetXForwarded()
	if ip := out.Header.Get("X-Forwarded-For"); ip != "" {
		out.Header.Set("X-Real-IP", ip)
	}
	if tg.prefix != "" {
		out.Header.Set("X-Forwarded-Prefix", tg.prefix)
	}
	local := "localhost:" + strconv.Itoa(int(tg.port))
	if tg.unHost {
		out.Host = pr.In.Host
	} else {
		out.Host = local
	}
	if o := out.Header.Get("Origin"); o != "" && !tg.unOrig {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			out.Header.Set("Origin", "http://"+local)
		}
	}
	// The relay's credentials are not the app's business: every
	// X-Tunnel-Authorization (gone with the loop above), every
	// Authorization of the tunnel scheme, the relay's cookie. The app's own
	// Authorization and cookies pass.
	if auths := out.Header.Values("Authorization"); len(auths) > 0 {
		out.Header.Del("Authorization")
		for _, v := range auths {
			if !tunnelScheme(v) {
				out.Header.Add("Authorization", v)
			}
		}
	}
	stripCookie(out.Header, CookieName)
}

// relayOwned reports whether the relay alone sets or removes header name
// on the way to the app: Forwarded, X-Real-IP, every X-Forwarded-* (the
// relay sets -For, -Host, -Proto, and -Prefix in the path form) and
// X-Tunnel-Authorization. Underscores count as dashes, as some frameworks
// (CGI, WSGI, Rack) fold both to the same variable.
func relayOwned(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	switch {
	case n == "forwarded", n == "x-real-ip", n == strings.ToLower(HeaderTunnelAuthorization):
		return true
	}
	return strings.HasPrefix(n, "x-forwarded-")
}

// tunnelScheme reports whether an Authorization value is of the relay's
// Tunnel scheme, well-formed or not.
func tunnelScheme(v string) bool {
	scheme, _, _ := strings.Cut(strings.TrimLeft(v, " \t"), " ")
	scheme, _, _ = strings.Cut(scheme, "\t")
	return strings.EqualFold(scheme, token.SchemeTunnel)
}

// modifyResponse drops the Set-Cookie lines of the relay's cookie name: in
// the path form every tunnel shares the relay's origin, so one tunnel's app
// could otherwise replace the token cookie another tunnel's port set.
func modifyResponse(resp *http.Response) error {
	lines := resp.Header.Values("Set-Cookie")
	if len(lines) == 0 {
		return nil
	}
	resp.Header.Del("Set-Cookie")
	for _, line := range lines {
		name, _, _ := strings.Cut(line, "=")
		if !strings.EqualFold(strings.TrimSpace(name), CookieName) {
			resp.Header.Add("Set-Cookie", line)
		}
	}
	return nil
}

// stripCookie removes one cookie from the Cookie headers of h.
func stripCookie(h http.Header, name string) {
	cookies := h.Values("Cookie")
	if len(cookies) == 0 {
		return
	}
	h.Del("Cookie")
	for _, line := range cookies {
		var keep []string
		for _, part := range strings.Split(line, ";") {
			if n, _, _ := strings.Cut(strings.TrimSpace(part), "="); n == name {
				continue
			}
			if p := strings.TrimSpace(part); p != "" {
				keep = append(keep, p)
			}
		}
		if len(keep) > 0 {
			h.Add("Cookie", strings.Join(keep, "; "))
		}
	}
}

const dialSuffix = ".tunnel.invalid"

func dialName(tunnelID string, port uint16) string {
	return strconv.Itoa(int(port)) + "." + tunnelID + dialSuffix
}

// dial is the transport's DialContext: addr is dialName(...):80.
func (f *Forwarder) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	rest, ok := strings.CutSuffix(host, dialSuffix)
	ps, tunnelID, ok2 := strings.Cut(rest, ".")
	n, err := strconv.ParseUint(ps, 10, 16)
	if !ok || !ok2 || err != nil {
		return nil, fmt.Errorf("webforward: bad dial address %q", addr)
	}
	return f.cfg.Dial(ctx, tunnelID, uint16(n), netip.AddrPort{})
}

// proxyError answers a failed forward: the host is gone, the port is not
// forwarded, or the app refused the connection.
func (f *Forwarder) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	tg := r.Context().Value(targetKey{}).(*target)
	if errors.Is(err, context.Canceled) {
		// The browser went away; nobody reads the answer.
		f.log.Debug("web forwarding canceled", "tunnel_id", tg.tunnel.ID, "port", tg.port)
		w.WriteHeader(499)
		return
	}
	f.log.Info("web forwarding failed", "tunnel_id", tg.tunnel.ID, "port", tg.port, "err", err)
	f.fail(w, http.StatusBadGateway, fmt.Sprintf("tunnel %q port %d: %v", tg.tunnel.ID, tg.port, err))
}

func (f *Forwarder) fail(w http.ResponseWriter, status int, msg string) {
	if f.cfg.OnError != nil {
		f.cfg.OnError(status)
	}
	w.Header().Set("X-Warren-Error", "web-forwarding")
	http.Error(w, msg, status)
}

// copyBuffers are the response (and request) body copy buffers of the
// proxy, reused across requests instead of a fresh 32 KiB per request. A
// 64 KiB buffer takes two SSH packets of a large body per write to the
// browser's connection.
type copyBuffers struct{}

const copyBufSize = 64 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

func (copyBuffers) Get() []byte { return *copyBufPool.Get().(*[]byte) }

func (copyBuffers) Put(b []byte) {
	if cap(b) == copyBufSize {
		b = b[:copyBufSize]
		copyBufPool.Put(&b)
	}
}
