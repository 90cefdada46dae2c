package turncontrol

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// ChallengeView is a pending challenge as /v1/challenges shows it.
type ChallengeView struct {
	turnprovider.Challenge
	Profile   string    `json:"profile"`
	SessionID string    `json:"session_id,omitempty"`
	RaisedAt  time.Time `json:"raised_at"`
}

type pending struct {
	view ChallengeView
	// answer receives the resolution once; buffered so continue/cancel
	// never block on a solver that already gave up.
	answer chan resolution
}

type resolution struct {
	ans turnprovider.ChallengeAnswer
	err error
}

// solver is a session's turnprovider.ChallengeSolver: it publishes each
// challenge and waits for the API to resolve it.
type solver struct {
	c *Controller
	s *session
}

// Solve publishes ch as /v1/challenges/{id} and an event, and blocks until
// continue, cancel, the challenge's expiry or ctx (the session stopping).
func (v *solver) Solve(ctx context.Context, ch turnprovider.Challenge) (turnprovider.ChallengeAnswer, error) {
	if ch.ID == "" {
		var b [12]byte
		crand.Read(b[:])
		ch.ID = hex.EncodeToString(b[:])
	}
	p := &pending{answer: make(chan resolution, 1), view: ChallengeView{Challenge: ch, Profile: v.s.profile,
		SessionID: v.s.clientID(), RaisedAt: time.Now().UTC()}}
	c := v.c
	c.mu.Lock()
	if _, dup := c.challenges[ch.ID]; dup {
		c.mu.Unlock()
		return turnprovider.ChallengeAnswer{}, fmt.Errorf("challenge %s raised twice", ch.ID)
	}
	c.challenges[ch.ID] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.challenges, ch.ID)
		c.mu.Unlock()
	}()
	chCopy := ch
	c.publish(Event{Kind: EventChallenge, Profile: v.s.profile, SessionID: p.view.SessionID, Stage: ch.Stage, Challenge: &chCopy})
	done := Event{Profile: v.s.profile, SessionID: p.view.SessionID, Stage: ch.Stage, Challenge: &turnprovider.Challenge{ID: ch.ID, Provider: ch.Provider, Kind: ch.Kind}}

	var expired <-chan time.Time
	if !ch.ExpiresAt.IsZero() {
		t := time.NewTimer(time.Until(ch.ExpiresAt))
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-p.answer:
		if r.err != nil {
			done.Kind = EventChallengeCanceled
			c.publish(done)
			return turnprovider.ChallengeAnswer{}, r.err
		}
		done.Kind = EventChallengeAnswered
		c.publish(done)
		return r.ans, nil
	case <-expired:
		done.Kind = EventChallengeExpired
		c.publish(done)
		return turnprovider.ChallengeAnswer{}, fmt.Errorf("challenge %s expired unanswered: %w", ch.ID, turnprovider.ErrChallengeCanceled)
	case <-ctx.Done():
		done.Kind, done.Error = EventChallengeCanceled, "session stopped"
		c.publish(done)
		return turnprovider.ChallengeAnswer{}, ctx.Err()
	}
}

// Challenges lists the pending challenges, oldest first.
func (c *Controller) Challenges() []ChallengeView {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ChallengeView, 0, len(c.challenges))
	for _, p := range c.challenges {
		out = append(out, p.view)
	}
	sortBy(out, func(v ChallengeView) string { return v.RaisedAt.Format(time.RFC3339Nano) + v.ID })
	return out
}

// Challenge returns one pending challenge.
func (c *Controller) Challenge(id string) (ChallengeView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.challenges[id]
	if !ok {
		return ChallengeView{}, fmt.Errorf("challenge %q: %w", id, ErrNotFound)
	}
	return p.view, nil
}

// Continue answers a pending challenge; the provider goes on with ans.
func (c *Controller) Continue(id string, ans turnprovider.ChallengeAnswer) error {
	if ans.Key == "" {
		return fmt.Errorf("%w: key: the answer is empty", ErrInvalidRequest)
	}
	return c.resolve(id, resolution{ans: ans})
}

// Cancel declines a pending challenge; the provider fails with
// turnprovider.ErrChallengeCanceled.
func (c *Controller) Cancel(id string) error {
	return c.resolve(id, resolution{err: turnprovider.ErrChallengeCanceled})
}

func (c *Controller) resolve(id string, r resolution) error {
	c.mu.Lock()
	p, ok := c.challenges[id]
	if ok {
		// Taken out now so a second continue is a 404, not a silent no-op.
		delete(c.challenges, id)
	}
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("challenge %q: %w", id, ErrNotFound)
	}
	p.answer <- r
	return nil
}

// ErrInvalidRequest: a request body the API cannot use.
var ErrInvalidRequest = errors.New("invalid request")
