package turnprovider

import (
	"context"
	"errors"
	"time"
)

// A provider that needs a person mid-resolution (VK's captcha) hands a
// Challenge to the Request's Solver and waits for the answer. Who answers
// is the caller's business: probe resolve --interactive asks on the
// terminal, the tunnel-client control plane surfaces it over its API.

// Challenge is a step a person must complete before resolution can go on.
type Challenge struct {
	// ID is unique per challenge (random); the control plane's resource name.
	ID string `json:"id"`
	// Provider and Stage name who asked ("vk", "vk_calls_get_anonymous_token").
	Provider string `json:"provider"`
	Stage    string `json:"stage"`
	// Kind is what is asked: "captcha".
	Kind string `json:"kind"`
	// URL is a page where a person completes the challenge (for VK, the
	// captcha's redirect URI); ImageURL a captcha image, when the provider
	// gives one. Neither holds the caller's secrets.
	URL      string `json:"url,omitempty"`
	ImageURL string `json:"image_url,omitempty"`
	// ExpiresAt is when the provider stops accepting an answer; zero if unknown.
	ExpiresAt time.Time `json:"expires_at,omitempty"`
}

// ChallengeAnswer is what a person supplied: the captcha text, or the
// success token the challenge page hands back.
type ChallengeAnswer struct {
	Key string `json:"key"`
}

// ChallengeSolver resolves challenges. Solve blocks until the challenge is
// answered, canceled (ErrChallengeCanceled) or ctx ends.
type ChallengeSolver interface {
	Solve(ctx context.Context, c Challenge) (ChallengeAnswer, error)
}

var (
	// ErrChallengeRequired: the provider asked for a person and the
	// Request has no Solver (a non-interactive run).
	ErrChallengeRequired = errors.New("needs a person to complete a challenge (run interactively or through the control plane)")
	// ErrChallengeCanceled: the person (or the control plane) declined.
	ErrChallengeCanceled = errors.New("challenge canceled")
)
