package wingrtc

import (
	"errors"
	"fmt"
)

// ErrTooFarAhead: pieces after a gap pile up past the limit; the gap is
// not going to be filled.
var ErrTooFarAhead = errors.New("stream pieces after a gap exceed the limit")

// ErrBadOffset: a piece has a negative offset.
var ErrBadOffset = errors.New("stream piece with a negative offset")

// DefaultMaxPending bounds what Reorder holds after a gap.
const DefaultMaxPending = 32 << 20

// Reorder reassembles a byte stream from pieces that each carry the
// offset of their first byte: pieces may come twice, overlap, or come
// early (after a gap); each byte is emitted once, in order. Not safe for
// concurrent use.
type Reorder struct {
	// Max bounds the bytes held after a gap. Default DefaultMaxPending.
	Max int

	next    int64
	known   bool
	pending map[int64][]byte
	held    int
}

// Next is the offset of the next byte to emit; ok is false until the
// first piece set it.
func (r *Reorder) Next() (next int64, ok bool) { return r.next, r.known }

// Reset forgets the position and what is held: the next piece starts the
// stream again (a reattach).
func (r *Reorder) Reset() { *r = Reorder{Max: r.Max} }

// Start sets the position without a piece.
func (r *Reorder) Start(next int64) { r.Reset(); r.next, r.known = next, true }

// Push takes one piece; emit receives the bytes that are next in order.
func (r *Reorder) Push(seq int64, p []byte, emit func([]byte) error) error {
	if seq < 0 {
		return ErrBadOffset
	}
	if !r.known {
		r.next, r.known = seq, true
	}
	if seq > r.next {
		if old, ok := r.pending[seq]; ok {
			if len(old) >= len(p) {
				return nil
			}
			r.held -= len(old)
		}
		if r.pending == nil {
			r.pending = map[int64][]byte{}
		}
		r.pending[seq] = append([]byte(nil), p...)
		r.held += len(p)
		if limit := r.limit(); r.held > limit {
			return fmt.Errorf("%w: %d bytes held waiting for offset %d (limit %d)", ErrTooFarAhead, r.held, r.next, limit)
		}
		return nil
	}
	if err := r.emit(seq, p, emit); err != nil {
		return err
	}
	for progressed := true; progressed && len(r.pending) > 0; {
		progressed = false
		for k, v := range r.pending {
			if k > r.next {
				continue
			}
			delete(r.pending, k)
			r.held -= len(v)
			if err := r.emit(k, v, emit); err != nil {
				return err
			}
			progressed = true
			break
		}
	}
	return nil
}

func (r *Reorder) emit(seq int64, p []byte, emit func([]byte) error) error {
	end := seq + int64(len(p))
	if end <= r.next {
		return nil // already emitted
	}
	p = p[r.next-seq:]
	r.next = end
	return emit(p)
}

func (r *Reorder) limit() int {
	if r.Max > 0 {
		return r.Max
	}
	return DefaultMaxPending
}
