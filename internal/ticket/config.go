package ticket

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Config tunes a Relay. The zero value of every field except Authorize means
// "use the default" documented on the field.
type Config struct {
	// DefaultTTL is the pairing deadline of a ticket minted without
	// ttl_seconds. Default 5m (the upstream value).
	DefaultTTL time.Duration

	// MaxTTL is the largest TTL a mint may ask for; larger ttl_seconds get
	// 400. Default 24h. An unused ticket holds a workspace slot for its whole
	// TTL, so this bounds how long a slot can be squatted.
	MaxTTL time.Duration

	// DefaultMaxBytes is the upload limit of a ticket minted without
	// max_bytes. Default 1 GiB. Nothing is buffered, so this limits how much
	// one ticket may move, not memory.
	DefaultMaxBytes int64

	// MaxBytesLimit is the largest max_bytes a mint may ask for; larger
	// values get 400. Default 64 GiB. It bounds how much one ticket may
	// move, as MaxTTL bounds how long it may wait.
	MaxBytesLimit int64

	// IdleTimeout ends a paired transfer when no byte has moved in either
	// direction for this long: the PUT gets 504 and the GET is aborted.
	// Default 60s. It is the only time limit once a transfer runs; the
	// server's global read/write timeouts are cleared for relay requests.
	IdleTimeout time.Duration

	// WorkspaceCap is the number of live tickets one workspace may hold;
	// the next mint gets 429. Default 16.
	WorkspaceCap int

	// SweepInterval is how often expired, unpaired tickets are deleted in the
	// background. Default 10s. Expiry is also checked on every request, so
	// this only bounds how long a dead ticket keeps its slot and gauge entry.
	SweepInterval time.Duration

	// Authorize decides whether a mint request may mint tickets in
	// workspace. It returns nil to allow, or an error wrapping
	// ErrUnauthenticated (401: missing or unknown API key) or ErrForbidden
	// (403: key lacks the tickets scope or the workspace). The error's text
	// is sent to the client. Any other error is answered 500 and logged.
	// Required: New fails without it, because an open mint endpoint is never
	// what a deployment wants.
	Authorize func(r *http.Request, workspace string) error

	// Minted, if set, is called with each new ticket's id before Mint
	// answers; an error fails the mint with 503. A clustered relay records
	// there which node holds the ticket, so that either side reaching
	// another node is carried here. Optional.
	Minted func(ctx context.Context, id string) error
	// Ended, if set, is called once with the id of each ticket Minted saw
	// when it ends (transfer done, failed, expired, relay closed), with
	// the relay's lock held: it must not block or call into the relay.
	// Optional.
	Ended func(id string)

	// Now returns the current time; tests replace it to move ticket expiry.
	// Default time.Now. Idle timeouts and waits use the real clock.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultTTL           = 5 * time.Minute
	DefaultMaxTTL        = 24 * time.Hour
	DefaultMaxBytes      = int64(1) << 30
	DefaultMaxBytesLimit = int64(64) << 30
	DefaultIdleTimeout   = 60 * time.Second
	DefaultWorkspaceCap  = 16
	DefaultSweepInterval = 10 * time.Second
)

// withDefaults validates c and fills in zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.Authorize == nil {
		return c, errors.New("ticket: Config.Authorize is required")
	}
	if c.DefaultTTL < 0 || c.MaxTTL < 0 || c.DefaultMaxBytes < 0 || c.MaxBytesLimit < 0 || c.IdleTimeout < 0 ||
		c.WorkspaceCap < 0 || c.SweepInterval < 0 {
		return c, errors.New("ticket: negative Config value")
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = DefaultTTL
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.DefaultTTL > c.MaxTTL {
		return c, fmt.Errorf("ticket: DefaultTTL %v exceeds MaxTTL %v", c.DefaultTTL, c.MaxTTL)
	}
	if c.MaxTTL < time.Second {
		// ttl_seconds is whole seconds; a smaller MaxTTL would reject every
		// explicit TTL.
		return c, fmt.Errorf("ticket: MaxTTL %v is below one second", c.MaxTTL)
	}
	if c.DefaultMaxBytes == 0 {
		c.DefaultMaxBytes = DefaultMaxBytes
	}
	if c.MaxBytesLimit == 0 {
		c.MaxBytesLimit = DefaultMaxBytesLimit
	}
	if c.DefaultMaxBytes > c.MaxBytesLimit {
		return c, fmt.Errorf("ticket: DefaultMaxBytes %d exceeds MaxBytesLimit %d", c.DefaultMaxBytes, c.MaxBytesLimit)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WorkspaceCap == 0 {
		c.WorkspaceCap = DefaultWorkspaceCap
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
