package turnprovider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v4"
	"github.com/warrenhq/warren/internal/redact"
)

// Placeholders for secrets in artifacts: "<redacted:turn-username>" and
// "<redacted:turn-password>", spelled by redact like every other name.
var (
	RedactedUsername = redact.Named("turn-username")
	RedactedPassword = redact.Named("turn-password")
)

// Resolution methods.
const (
	MethodStaticLink = "static_link"
	MethodTURNRest   = "turn_rest"
)

var (
	// ErrNotImplemented: the provider exists but cannot resolve here (no
	// registered provider returns it today). tunnel-client and probe exit 3 on it.
	ErrNotImplemented = errors.New("not available offline")
	// ErrNotRegistered: no provider has that name.
	ErrNotRegistered = errors.New("is not registered")
	// ErrMissingSecret: turn-rest has no shared secret (a policy error).
	ErrMissingSecret = errors.New("turn-rest needs a shared secret: set turn_rest_secret (env or YAML) or turn_rest_secret_file")
)

// DefaultRESTTTL and MinRESTTTL bound turn-rest's ?ttl=.
const (
	DefaultRESTTTL = time.Hour
	MinRESTTTL     = time.Minute
)

// Request is what a provider resolves.
type Request struct {
	Link string
	// RESTSecret is turn-rest's shared secret; never part of the link.
	RESTSecret string
	// Now is the clock; zero means time.Now().
	Now time.Time
	// Solver answers challenges a provider raises mid-resolution; nil
	// means none can be answered (ErrChallengeRequired).
	Solver ChallengeSolver
}

// Resolution is a set of TURN credentials.
type Resolution struct {
	Provider string
	Method   string
	Address  string // host:port of the TURN server
	Username string
	Password string
	// TTL is how long the credentials are valid; zero means forever.
	TTL        time.Duration
	ResolvedAt time.Time
	Artifact   *Artifact
}

// RefreshAt is when the credentials should be replaced (80 % of TTL), or
// the zero time if they never expire.
func (r *Resolution) RefreshAt() time.Time {
	if r.TTL <= 0 {
		return time.Time{}
	}
	return r.ResolvedAt.Add(r.TTL * 8 / 10)
}

// Stale reports whether the credentials are past 80 % of their TTL at now.
func (r *Resolution) Stale(now time.Time) bool {
	at := r.RefreshAt()
	return !at.IsZero() && !now.Before(at)
}

// Override replaces the host and/or port of the address (the -turn and
// -port flags). Empty host and zero port keep the provider's.
func (r *Resolution) Override(host string, port int) error {
	if host == "" && port == 0 {
		return nil
	}
	h, p, err := net.SplitHostPort(r.Address)
	if err != nil {
		return fmt.Errorf("provider address %q: %w", r.Address, err)
	}
	if host != "" {
		h = host
	}
	if port != 0 {
		if port < 1 || port > 65535 {
			return fmt.Errorf("port %d out of range 1-65535", port)
		}
		p = strconv.Itoa(port)
	}
	r.Address = net.JoinHostPort(h, p)
	if r.Artifact != nil && r.Artifact.Outcome.Resolution != nil {
		r.Artifact.Outcome.Resolution.Address = r.Address
	}
	return nil
}

// Provider resolves links of one kind.
type Provider interface {
	Name() string
	Resolve(ctx context.Context, req Request) (*Resolution, error)
}

// ResolveError is a failed resolution that still carries its artifact.
type ResolveError struct {
	Artifact *Artifact
	Err      error
}

func (e *ResolveError) Error() string { return e.Err.Error() }
func (e *ResolveError) Unwrap() error { return e.Err }

var registry = map[string]Provider{
	"generic-turn": genericTURN{},
	"turn-rest":    turnREST{},
	"vk":           vk{},
}

// Names returns the registered provider names, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup finds a provider by case-insensitive name.
func Lookup(name string) (Provider, error) {
	p, ok := registry[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return nil, fmt.Errorf("provider %q %w (known: %s)", name, ErrNotRegistered, strings.Join(Names(), ", "))
	}
	return p, nil
}

// Resolve looks name up and resolves req with it.
func Resolve(ctx context.Context, name string, req Request) (*Resolution, error) {
	p, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	return p.Resolve(ctx, req)
}

// --- generic-turn ---

type genericTURN struct{}

func (genericTURN) Name() string { return "generic-turn" }

func (genericTURN) Resolve(_ context.Context, req Request) (*Resolution, error) {
	art := newArtifact("generic-turn", MethodStaticLink, req.Link, Stage{
		Name: "generic_turn_static_link", EndpointID: "link",
		Request: StageRequest{Method: "PARSE", FormKeys: []string{"username", "password", "host", "port"}, RedactedFields: []string{"username", "password"}},
	})
	u, host, port, err := parseLink("generic-turn", req.Link)
	if err == nil && (u.RawQuery != "" || u.ForceQuery) {
		err = errors.New("query is not supported")
	}
	if err == nil && u.User.Username() == "" {
		err = errors.New("username must not be empty")
	}
	pw, _ := u.User.Password()
	if err == nil && pw == "" {
		err = errors.New("password must not be empty")
	}
	if err != nil {
		err = fmt.Errorf("invalid generic-turn link: %w", err)
		return nil, art.fail(err, "invalid_link")
	}
	res := &Resolution{Provider: "generic-turn", Method: MethodStaticLink, Address: net.JoinHostPort(host, port),
		Username: u.User.Username(), Password: pw, ResolvedAt: req.Now, Artifact: art}
	art.succeed(res)
	return res, nil
}

// parseLink applies the rules common to both link kinds and returns the
// parsed URL, host and port. Errors never echo the link (it holds secrets).
func parseLink(scheme, link string) (u *url.URL, host, port string, err error) {
	u, perr := url.Parse(strings.TrimSpace(link))
	if perr != nil {
		var ue *url.Error
		if errors.As(perr, &ue) {
			perr = ue.Err
		}
		return &url.URL{User: url.User("")}, "", "", fmt.Errorf("not a URL: %s", redact.String(perr.Error()))
	}
	empty := &url.URL{User: url.User("")}
	switch {
	case !strings.EqualFold(u.Scheme, scheme):
		return empty, "", "", fmt.Errorf("scheme must be %s://", scheme)
	case u.Opaque != "":
		return empty, "", "", fmt.Errorf("expected %s://<user>...@<host>:<port>", scheme)
	case u.Path != "" || u.RawPath != "":
		return empty, "", "", errors.New("path is not supported")
	case u.Fragment != "" || strings.Contains(link, "#"):
		return empty, "", "", errors.New("fragment is not supported")
	case u.User == nil:
		return empty, "", "", errors.New("username must not be empty")
	}
	host, port = u.Hostname(), u.Port()
	if host == "" {
		return empty, "", "", errors.New("host must not be empty")
	}
	n, aerr := strconv.Atoi(port)
	if port == "" || aerr != nil || n < 1 || n > 65535 {
		return empty, "", "", errors.New("port must be 1-65535")
	}
	return u, host, port, nil
}

// --- turn-rest ---

type turnREST struct{}

func (turnREST) Name() string { return "turn-rest" }

func (turnREST) Resolve(_ context.Context, req Request) (*Resolution, error) {
	art := newArtifact("turn-rest", MethodTURNRest, req.Link, Stage{
		Name: "turn_rest_credentials", EndpointID: "link",
		Request: StageRequest{Method: "HMAC-SHA1", FormKeys: []string{"username", "host", "port", "ttl"}, RedactedFields: []string{"username", "password"}},
	})
	res, err := resolveREST(req)
	if err != nil {
		code := "invalid_link"
		if errors.Is(err, ErrMissingSecret) {
			code = "missing_secret"
		} else {
			err = fmt.Errorf("invalid turn-rest link: %w", err)
		}
		return nil, art.fail(err, code)
	}
	res.Artifact = art
	art.succeed(res)
	return res, nil
}

func resolveREST(req Request) (*Resolution, error) {
	u, host, port, err := parseLink("turn-rest", req.Link)
	if err != nil {
		return nil, err
	}
	if _, has := u.User.Password(); has {
		return nil, errors.New("secret must not be in the link")
	}
	user := u.User.Username()
	if user == "" {
		return nil, errors.New("username must not be empty")
	}
	ttl := DefaultRESTTTL
	q, qerr := url.ParseQuery(u.RawQuery)
	if qerr != nil {
		return nil, errors.New("malformed query")
	}
	for k, v := range q {
		if k != "ttl" {
			return nil, fmt.Errorf("query key %q is not supported (only ttl)", k)
		}
		if len(v) != 1 {
			return nil, errors.New("ttl given more than once")
		}
		d, derr := time.ParseDuration(v[0])
		if derr != nil {
			return nil, fmt.Errorf("ttl %q is not a Go duration (e.g. 1h, 30m)", v[0])
		}
		if d < MinRESTTTL {
			return nil, fmt.Errorf("ttl %s is below the minimum %s", d, MinRESTTTL)
		}
		ttl = d
	}
	if req.RESTSecret == "" {
		return nil, ErrMissingSecret
	}
	name, pw := Credentials(req.RESTSecret, user, req.Now, ttl)
	return &Resolution{Provider: "turn-rest", Method: MethodTURNRest, Address: net.JoinHostPort(host, port),
		Username: name, Password: pw, TTL: ttl, ResolvedAt: req.Now}, nil
}

// Credentials computes TURN REST credentials valid from now for ttl:
// username "<expiry unix>:<user>", password base64(HMAC-SHA1(secret, username)).
func Credentials(secret, user string, now time.Time, ttl time.Duration) (username, password string) {
	// pion computes the expiry from its own clock; shift ttl so that the
	// result is relative to now (tests pass a fixed clock).
	d := ttl + time.Until(now)
	username, password, _ = turn.GenerateLongTermTURNRESTCredentials(secret, user, d)
	return username, password
}
