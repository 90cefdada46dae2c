package ticket

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Relay pairs uploaders with downloaders per ticket. It is an http.Handler;
// see the package documentation for the routes. Create it with New and stop
// it with Close.
type Relay struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	mux *http.ServeMux

	mu      sync.Mutex
	tickets map[string]*ticket // live tickets by id
	perWS   map[string]int     // live tickets per workspace
	closed  bool

	shutdown  chan struct{} // closed by Close
	sweepDone chan struct{} // closed when the sweeper exits
	closeOnce sync.Once
}

// ticket is one minted relay slot. The identity fields are immutable; the
// rest is guarded by Relay.mu.
type ticket struct {
	id, workspace, source, dest string
	expires                     time.Time
	maxBytes                    int64

	put        *upload // set when the PUT side claims
	getClaimed bool
	getHTTP10  bool   // the GET is HTTP/1.0: it cannot take a streamed upload
	paired     bool   // both sides present; the GET handler now runs the copy
	ended      bool   // deleted from the relay; terminal
	waitErr    *Error // what a side still waiting is told when the ticket ends unpaired

	pairedc chan struct{} // closed when paired
	endedc  chan struct{} // closed when the ticket ends unpaired
}

// upload is the PUT side as handed to the GET handler, which does the copy so
// that it can abort its own response (see transfer).
type upload struct {
	body   io.Reader
	length int64 // Content-Length, or -1 when streamed
	rc     *http.ResponseController
	done   chan result // buffered; receives the outcome exactly once
}

// result is the outcome of a paired transfer.
type result struct {
	bytes   int64
	sum     string // hex SHA-256 of the bytes delivered
	outcome string
	putErr  *Error // nil on success
	getErr  *Error // told to the GET if its headers are not yet sent; nil on success
}

// ended is a ticket end waiting to be reported outside the lock.
type ended struct {
	t       *ticket
	outcome string
	bytes   int64
	sum     string
	err     error
}

// New returns a running Relay. logger may be nil (discard). Metrics are
// registered on reg unless it is nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Relay, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		cfg:       cfg,
		log:       logger,
		m:         m,
		tickets:   make(map[string]*ticket),
		perWS:     make(map[string]int),
		shutdown:  make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	r.mux = r.routes()
	go r.sweeper()
	return r, nil
}

// Close stops the sweeper and ends every ticket. Waiting sides get 503
// {"error":"relay shutting down"}; running transfers are aborted (the PUT gets
// 503 with the bytes so far, the GET response is aborted); later requests get
// 503. Close does not wait for handlers to return; use http.Server.Shutdown
// for that. It is idempotent and always returns nil.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		var gone []ended
		for _, t := range r.tickets {
			// Claimed tickets end through their handlers, which see shutdown.
			if t.put == nil && !t.getClaimed {
				r.endLocked(t, OutcomeAborted, nil)
				gone = append(gone, ended{t: t, outcome: OutcomeAborted, err: ErrShuttingDown})
			}
		}
		r.mu.Unlock()
		close(r.shutdown)
		<-r.sweepDone
		r.report(gone)
		r.log.Info("ticket relay closed")
	})
	return nil
}

// Drain starts a graceful stop: from now on mints and relay requests get
// 503, sides waiting for a partner are told 503 at once (they would
// otherwise hold a server's drain until their TTL), and transfers already
// paired run on. Close, later, aborts whatever is still running.
func (r *Relay) Drain() {
	r.mu.Lock()
	r.closed = true
	var gone []ended
	for _, t := range r.tickets {
		if !t.paired && (t.put != nil || t.getClaimed) {
			r.endLocked(t, OutcomeAborted, ErrShuttingDown)
			gone = append(gone, ended{t: t, outcome: OutcomeAborted, err: ErrShuttingDown})
		}
	}
	r.mu.Unlock()
	r.report(gone)
}

func (r *Relay) sweeper() {
	defer close(r.sweepDone)
	tick := time.NewTicker(r.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.shutdown:
			return
		case <-tick.C:
			r.mu.Lock()
			gone := r.sweepLocked(r.cfg.Now())
			r.mu.Unlock()
			r.report(gone)
		}
	}
}

// sweepLocked ends every unpaired ticket whose TTL has passed.
func (r *Relay) sweepLocked(now time.Time) []ended {
	var gone []ended
	for _, t := range r.tickets {
		if !t.paired && !now.Before(t.expires) {
			gone = append(gone, r.expireLocked(t))
		}
	}
	return gone
}

// expireLocked ends t because its TTL passed unpaired. A side that is waiting
// is told 408; with nobody present the ticket simply disappears.
func (r *Relay) expireLocked(t *ticket) ended {
	switch {
	case t.put != nil:
		r.endLocked(t, OutcomeTimeout, ErrPutTimeout)
		return ended{t: t, outcome: OutcomeTimeout, err: ErrPutTimeout}
	case t.getClaimed:
		r.endLocked(t, OutcomeTimeout, ErrGetTimeout)
		return ended{t: t, outcome: OutcomeTimeout, err: ErrGetTimeout}
	}
	r.endLocked(t, OutcomeExpired, nil)
	return ended{t: t, outcome: OutcomeExpired}
}

// endLocked deletes t and releases its workspace slot. waitErr is what a side
// still waiting for its peer will be told. It is the single place a ticket
// ends, so every end is counted once.
func (r *Relay) endLocked(t *ticket, outcome string, waitErr *Error) {
	if t.ended {
		return
	}
	t.ended = true
	delete(r.tickets, t.id)
	if r.cfg.Ended != nil {
		r.cfg.Ended(t.id)
	}
	if n := r.perWS[t.workspace] - 1; n > 0 {
		r.perWS[t.workspace] = n
	} else {
		delete(r.perWS, t.workspace)
	}
	r.m.active.Dec()
	r.m.transfers.WithLabelValues(outcome).Inc()
	if !t.paired {
		t.waitErr = waitErr
		close(t.endedc)
	}
}

// finish ends a paired transfer and reports it.
func (r *Relay) finish(t *ticket, res result) {
	r.mu.Lock()
	r.endLocked(t, res.outcome, nil)
	r.mu.Unlock()
	var err error
	if res.putErr != nil {
		err = res.putErr
	}
	r.report([]ended{{t: t, outcome: res.outcome, bytes: res.bytes, sum: res.sum, err: err}})
}

// report writes the audit line of each ended ticket. The ticket value is a
// bearer credential and is never logged.
func (r *Relay) report(gone []ended) {
	for _, e := range gone {
		level := slog.LevelInfo
		if e.outcome != OutcomeOK && e.outcome != OutcomeExpired {
			level = slog.LevelWarn
		}
		errText := ""
		if e.err != nil {
			errText = e.err.Error()
		}
		r.log.LogAttrs(context.Background(), level, "ticket relay ended",
			slog.String("workspace", e.t.workspace),
			slog.String("source", e.t.source),
			slog.String("dest", e.t.dest),
			slog.Int64("bytes", e.bytes),
			slog.String("sha256", e.sum),
			slog.String("outcome", e.outcome),
			slog.String("err", errText),
		)
	}
}

type side int

const (
	putSide side = iota
	getSide
)

// claim takes one side of ticket id. up is the PUT side's upload (nil for
// GET); http10 tells an HTTP/1.0 GET. If the other side is already present
// the ticket becomes paired. On a declared Content-Length over max_bytes it
// consumes the ticket and returns it with the 413 error, so the caller can
// report max_bytes.
func (r *Relay) claim(id string, s side, up *upload, http10 bool) (*ticket, error) {
	var gone []ended
	r.mu.Lock()
	defer func() {
		r.mu.Unlock()
		r.report(gone)
	}()
	if r.closed {
		return nil, ErrShuttingDown
	}
	t := r.tickets[id]
	if t == nil {
		return nil, ErrNotFound
	}
	if t.ended {
		// Defensive: ended tickets leave the map under this same lock.
		return nil, ErrFinished
	}
	if !t.paired && !r.cfg.Now().Before(t.expires) {
		// TTL is the pairing deadline: a late arrival never pairs. A side
		// already waiting is told 408 (its own timer may not have fired
		// yet if the clock is not the real one).
		gone = append(gone, r.expireLocked(t))
		return nil, ErrNotFound
	}
	switch s {
	case putSide:
		if t.put != nil {
			return nil, ErrPutClaimed
		}
		if up.length > t.maxBytes {
			// Refused before reading the body; the ticket is consumed and a
			// waiting GET learns why.
			err := tooLarge(t.maxBytes)
			r.endLocked(t, OutcomeTooLarge, uploadFailed(err.Msg))
			gone = append(gone, ended{t: t, outcome: OutcomeTooLarge, err: err})
			return t, err
		}
		t.put = up
	case getSide:
		if t.getClaimed {
			return nil, ErrGetClaimed
		}
		t.getClaimed = true
		t.getHTTP10 = http10
	}
	if t.put != nil && t.getClaimed && t.put.length < 0 && t.getHTTP10 {
		// An HTTP/1.0 body without a length ends when the connection
		// closes, so a broken upload would reach the downloader as a clean,
		// short file. Decided here, when the second side arrives and both
		// are known, before any byte moves; the ticket is consumed and each
		// side learns why: the one waiting through waitErr, the one
		// arriving through the returned error.
		getErr, putErr := ErrHTTP10Streamed, downloadFailed(http10Reason)
		waiting, arriving := putErr, getErr
		if s == putSide {
			waiting, arriving = getErr, putErr
		}
		r.endLocked(t, OutcomeDownloadFailed, waiting)
		gone = append(gone, ended{t: t, outcome: OutcomeDownloadFailed, err: putErr})
		return t, arriving
	}
	if t.put != nil && t.getClaimed {
		t.paired = true
		close(t.pairedc)
	}
	return t, nil
}

// waitPaired blocks until t is paired, returning nil, or until the pairing
// fails: the TTL passes (408), the ticket ends for another reason, the
// client leaves, or the relay closes (503).
func (r *Relay) waitPaired(ctx context.Context, t *ticket, s side) error {
	select {
	case <-t.pairedc:
		return nil
	default:
	}
	name := "PUT"
	if s == getSide {
		name = "GET"
	}
	r.log.Debug("ticket side waiting for its peer", "side", name,
		"workspace", t.workspace, "source", t.source, "dest", t.dest)
	timer := time.NewTimer(t.expires.Sub(r.cfg.Now()))
	defer timer.Stop()
	select {
	case <-t.pairedc:
		return nil
	case <-t.endedc:
		return t.endErr()
	case <-timer.C:
		if s == putSide {
			return r.abandon(t, OutcomeTimeout, ErrPutTimeout)
		}
		return r.abandon(t, OutcomeTimeout, ErrGetTimeout)
	case <-ctx.Done():
		if s == putSide {
			return r.abandon(t, OutcomeUploadFailed, uploadBroken("client went away"))
		}
		return r.abandon(t, OutcomeDownloadFailed, downloadFailed("client went away"))
	case <-r.shutdown:
		return r.abandon(t, OutcomeAborted, ErrShuttingDown)
	}
}

// abandon ends an unpaired ticket on behalf of its waiting side. If the
// ticket got paired meanwhile the pairing wins and abandon returns nil; if it
// ended meanwhile, the waiter gets the reason recorded then.
func (r *Relay) abandon(t *ticket, outcome string, err *Error) error {
	r.mu.Lock()
	if t.paired {
		r.mu.Unlock()
		return nil
	}
	if t.ended {
		r.mu.Unlock()
		return t.endErr()
	}
	r.endLocked(t, outcome, err)
	r.mu.Unlock()
	r.report([]ended{{t: t, outcome: outcome, err: err}})
	return err
}

// endErr is the error for a side that waited on a ticket which ended
// unpaired. Only read after endedc is closed or under the lock.
func (t *ticket) endErr() error {
	if t.waitErr == nil {
		return ErrNotFound
	}
	return t.waitErr
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
