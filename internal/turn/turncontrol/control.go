package turncontrol

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/redact"
	"github.com/warrenhq/warren/internal/turn/turnclient"
)

// DefaultEventBuffer is Config.EventBuffer's default.
const DefaultEventBuffer = 1024

// Plan is what a session runs: the engine config and the local address.
type Plan struct {
	Client turnclient.Config
	// Listen is the local address: UDP for ingress udp, TCP for tcp.
	Listen string
}

// Config configures a Controller.
type Config struct {
	// StateDir holds the profiles. Required; created 0700.
	StateDir string
	// Token is the bearer token every API request must carry. Required.
	Token string
	// Prepare checks a profile and turns it into a Plan, reading the
	// secrets it references. Its error is shown to the caller as is, so
	// it should name the key at fault. Required.
	Prepare func(Profile) (Plan, error)
	// EventBuffer is how many events /v1/events can replay. Default 1024.
	EventBuffer int
	// Version goes into diagnostics bundles.
	Version string
}

// Controller keeps profiles and runs their sessions.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	store store
	ring  *ring
	red   *redact.Redactor

	ctx    context.Context // parent of every session; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	profiles   map[string]Profile
	sessions   map[string]*session // by profile; the latest run, ended or not
	challenges map[string]*pending
}

// New loads the stored profiles and returns a Controller. Close stops its
// sessions.
func New(cfg Config, log *slog.Logger) (*Controller, error) {
	switch {
	case cfg.StateDir == "":
		return nil, errors.New("turncontrol: StateDir is required")
	case cfg.Token == "":
		return nil, errors.New("turncontrol: Token is required")
	case cfg.Prepare == nil:
		return nil, errors.New("turncontrol: Prepare is required")
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: cfg, log: log.With("component", "control"), store: store{dir: cfg.StateDir},
		ring: newRing(cfg.EventBuffer), red: redact.NewRedactor(), sessions: map[string]*session{},
		challenges: map[string]*pending{}}
	profiles, err := c.store.load()
	if err != nil {
		return nil, err
	}
	c.profiles = profiles
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close stops every session and waits for them.
func (c *Controller) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

func (c *Controller) publish(ev Event) Event { return c.ring.publish(ev) }

// redact hides every secret the controller has seen (links, keys) and
// every secret recognised by its shape.
func (c *Controller) redact(s string) string { return redact.String(c.red.Redact(s)) }

// learnSecrets registers the secrets of a plan for redaction.
func (c *Controller) learnSecrets(p Plan) {
	if l := p.Client.Link; l != "" {
		for i, s := range linkSecrets(l) {
			c.red.Add([]string{"link", "link-secret", "link-token"}[min(i, 2)], s)
		}
	}
	if len(p.Client.PSK) > 0 {
		c.red.Add("psk", base64.StdEncoding.EncodeToString(p.Client.PSK))
		c.red.Add("psk", base64.RawStdEncoding.EncodeToString(p.Client.PSK))
	}
	c.red.Add("rest-secret", p.Client.RESTSecret)
}

// CreateProfile checks p with Prepare and stores it. A profile with that
// name already stored is a conflict: delete it first.
func (c *Controller) CreateProfile(p Profile) (Profile, error) {
	if err := checkName(p.Name); err != nil {
		return Profile{}, err
	}
	if p.Link != "" && p.LinkFile != "" {
		return Profile{}, fmt.Errorf("%w: set either link or link_file, not both", ErrInvalidProfile)
	}
	plan, err := c.cfg.Prepare(p)
	if err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	c.learnSecrets(plan)
	p.CreatedAt = time.Now().UTC().Truncate(time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.profiles[p.Name]; ok {
		return Profile{}, fmt.Errorf("profile %q exists: %w", p.Name, ErrConflict)
	}
	if err := c.store.save(p); err != nil {
		return Profile{}, fmt.Errorf("store profile %q: %w", p.Name, err)
	}
	c.profiles[p.Name] = p
	c.publish(Event{Kind: EventProfileCreated, Profile: p.Name})
	return p.Redacted(), nil
}

// Profile returns a stored profile, redacted.
func (c *Controller) Profile(name string) (Profile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	return p.Redacted(), nil
}

// Profiles lists the stored profiles by name, redacted.
func (c *Controller) Profiles() []Profile {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Profile, 0, len(c.profiles))
	for _, p := range c.profiles {
		out = append(out, p.Redacted())
	}
	sortBy(out, func(p Profile) string { return p.Name })
	return out
}

// DeleteProfile removes a profile whose session is not running.
func (c *Controller) DeleteProfile(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.profiles[name]; !ok {
		return fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	if s := c.sessions[name]; s != nil && !s.isEnded() {
		return fmt.Errorf("profile %q has a running session, stop it first: %w", name, ErrConflict)
	}
	if err := c.store.remove(name); err != nil {
		return fmt.Errorf("delete profile %q: %w", name, err)
	}
	delete(c.profiles, name)
	delete(c.sessions, name)
	c.publish(Event{Kind: EventProfileDeleted, Profile: name})
	return nil
}

// Start runs the profile's session. It returns once the session is
// running (the local address bound), before it is ready: follow its
// events or poll Session for that.
func (c *Controller) Start(name string) (SessionView, error) {
	c.mu.Lock()
	p, ok := c.profiles[name]
	switch {
	case c.closed:
		c.mu.Unlock()
		return SessionView{}, errors.New("control plane is shutting down")
	case !ok:
		c.mu.Unlock()
		return SessionView{}, fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	if old := c.sessions[name]; old != nil && !old.isEnded() {
		c.mu.Unlock()
		return SessionView{}, fmt.Errorf("profile %q: session already %s: %w", name, old.stateName(), ErrConflict)
	}
	s := newSession(c, name)
	c.sessions[name] = s // reserved: a concurrent Start sees a conflict
	c.wg.Add(1)
	c.mu.Unlock()

	if err := s.start(p); err != nil {
		s.end(err)
		return SessionView{}, err
	}
	return s.view(), nil
}

// Stop stops the profile's session and waits for it to end (or ctx).
func (c *Controller) Stop(ctx context.Context, name string) (SessionView, error) {
	c.mu.Lock()
	s := c.sessions[name]
	c.mu.Unlock()
	if s == nil {
		return SessionView{}, fmt.Errorf("session %q: %w", name, ErrNotFound)
	}
	s.stop()
	select {
	case <-s.done:
	case <-ctx.Done():
		return s.view(), ctx.Err()
	}
	return s.view(), nil
}

// Session returns the profile's latest session.
func (c *Controller) Session(name string) (SessionView, error) {
	c.mu.Lock()
	s := c.sessions[name]
	c.mu.Unlock()
	if s == nil {
		return SessionView{}, fmt.Errorf("session %q: %w", name, ErrNotFound)
	}
	return s.view(), nil
}

// Sessions lists the latest session of each profile that has run.
func (c *Controller) Sessions() []SessionView {
	c.mu.Lock()
	all := make([]*session, 0, len(c.sessions))
	for _, s := range c.sessions {
		all = append(all, s)
	}
	c.mu.Unlock()
	out := make([]SessionView, 0, len(all))
	for _, s := range all {
		out = append(out, s.view())
	}
	sortBy(out, func(v SessionView) string { return v.Profile })
	return out
}

// pendingFor lists the ids of the challenges a session waits on.
func (c *Controller) pendingFor(profile string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id, p := range c.challenges {
		if p.view.Profile == profile {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func sortBy[T any](s []T, key func(T) string) {
	slices.SortFunc(s, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}
