package turncontrol

import (
	"bytes"
	"encoding/json"
	"net/url"
	"time"

	"github.com/warrenhq/warren/internal/redact"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// Bundle is a diagnostics export: everything needed to tell what the
// control plane's sessions did, with no secret in it.
type Bundle struct {
	GeneratedAt time.Time       `json:"generated_at"`
	Version     string          `json:"version,omitempty"`
	Profiles    []Profile       `json:"profiles"`
	Sessions    []SessionDiag   `json:"sessions"`
	Challenges  []ChallengeView `json:"challenges"`
	// Events is the whole ring, oldest first; EventsLost counts the
	// events published before it that it no longer holds.
	Events     []Event `json:"events"`
	EventsLost uint64  `json:"events_lost"`
}

// SessionDiag is one session with its metrics in the Prometheus text
// format.
type SessionDiag struct {
	SessionView
	Metrics string `json:"metrics"`
}

// Diagnostics returns the bundle as JSON. It is sanitized the way probe
// artifacts are: every secret the controller has seen (links, keys, the
// REST secret) is replaced by name, and whatever looks like a secret
// (link userinfo, token query parameters, credential JSON fields) by the
// generic placeholder.
func (c *Controller) Diagnostics() ([]byte, error) {
	b := Bundle{GeneratedAt: time.Now().UTC(), Version: c.cfg.Version, Profiles: c.Profiles(), Challenges: c.Challenges()}
	c.mu.Lock()
	all := make([]*session, 0, len(c.sessions))
	for _, s := range c.sessions {
		all = append(all, s)
	}
	c.mu.Unlock()
	for _, s := range all {
		b.Sessions = append(b.Sessions, SessionDiag{SessionView: s.view(), Metrics: metricsText(s.reg)})
	}
	sortBy(b.Sessions, func(d SessionDiag) string { return d.Profile })
	b.Events, b.EventsLost, _ = c.ring.since(0)
	// A challenge page's query may hold a session token of the provider's:
	// a person needs it to answer, a bundle does not.
	for i := range b.Challenges {
		b.Challenges[i].Challenge = withoutQueries(b.Challenges[i].Challenge)
	}
	for i, ev := range b.Events {
		if ev.Challenge != nil {
			ch := withoutQueries(*ev.Challenge)
			b.Events[i].Challenge = &ch
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Unescaped, so that a secret is redacted however it is spelled in it.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	return []byte(c.redact(buf.String())), nil
}

func withoutQueries(ch turnprovider.Challenge) turnprovider.Challenge {
	ch.URL, ch.ImageURL = withoutQuery(ch.URL), withoutQuery(ch.ImageURL)
	return ch
}

// withoutQuery keeps a URL's scheme, host and path.
func withoutQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redact.Placeholder
	}
	if u.RawQuery == "" && u.Fragment == "" && u.User == nil {
		return s
	}
	u.RawQuery, u.Fragment, u.User = redact.Placeholder, "", nil
	return u.String()
}
