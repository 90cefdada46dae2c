package ssh

import (
	"encoding/binary"
	"io"
	"sync/atomic"
)

// warren: what an idle channel costs. A forwarded connection is mostly
// idle, and a relay holds thousands of them: each goroutine parked on a
// channel (a copy waiting for data, a DiscardRequests loop) keeps a stack.
// RefuseRequests answers a channel's requests without a goroutine, and
// SetDataNotify with ConsumeDataNow lets a copy loop run only while the
// channel has data queued.

// RefuseRequests refuses the channel requests of ch, as DiscardRequests
// does for reqs, but on the connection's own goroutine as they arrive
// instead of in a goroutine of its own for the channel's life: a request
// that wants a reply gets its failure from a short-lived goroutine (a
// reply is a write, which must not stall the connection's reader), any
// other is dropped. reqs is the request channel that came with ch; a ch
// that is not this package's own falls back to DiscardRequests in a
// goroutine. (warren)
func RefuseRequests(ch Channel, reqs <-chan *Request) {
	c, ok := ch.(*channel)
	if !ok || c.incomingRequests != reqs {
		go DiscardRequests(reqs)
		return
	}
	c.refuseRequests.Store(true)
	c.drainRefused()
}

// drainRefused refuses the requests queued before RefuseRequests. The mux
// loop calls it too after queueing one while the flag was being set.
func (c *channel) drainRefused() {
	for {
		select {
		case req, ok := <-c.incomingRequests:
			if !ok {
				return
			}
			refuse(req)
		default:
			return
		}
	}
}

func refuse(req *Request) {
	if req.WantReply {
		go func() { _ = req.Reply(false, nil) }()
	}
}

// queueRequest hands a channel request to the channel's reader, or
// refuses it after RefuseRequests. Called by the mux loop only.
func (c *channel) queueRequest(req *Request) {
	if c.refuseRequests.Load() {
		refuse(req)
		return
	}
	c.incomingRequests <- req
	if c.refuseRequests.Load() {
		c.drainRefused()
	}
}

// SetDataNotify has fn called whenever the channel's data stream may have
// something for ConsumeDataNow: right away if data or the end of data is
// already queued, then after each data packet and at EOF or close. fn runs
// on the connection's reader goroutine (or the caller's, the first time)
// with no lock held and must not block: it should at most start or wake
// a consumer. Calls may be spurious. (warren)
func (c *channel) SetDataNotify(fn func()) { c.setNotify(fn, fn) }

// setNotify sets the pending buffer's notify func and calls now if data
// or its end is queued already. (warren)
func (c *channel) setNotify(notify, now func()) {
	b := c.pending
	b.Cond.L.Lock()
	b.notify = notify
	ready := len(b.head.buf) > 0 || b.head != b.tail || b.closed
	b.Cond.L.Unlock()
	if ready && now != nil {
		now()
	}
}

// ConsumeDataNow is ConsumeData without waiting: with nothing queued it
// returns 0 and a nil error at once. At the end of the data it returns
// io.EOF. (warren)
func (c *channel) ConsumeDataNow(fn func(p []byte) error) (int, error) {
	return c.consumeData(func(e *element) error { return fn(e.buf) }, false)
}

// ForwardDataNow is ConsumeDataNow for a copy into dst that reports the
// result of each write to done (whose error ends the call, as fn's does
// in ConsumeDataNow). When dst is a channel of this package and the next
// queued piece is the whole payload of a received data packet, which
// dst's window and packet size take at once, that packet's own buffer is
// sent on dst, its channel id rewritten and the binary packet header put
// in its headroom: a relay splicing two channels moves each packet
// without copying it. Otherwise the piece goes to dst.Write. (warren)
func (c *channel) ForwardDataNow(dst io.Writer, done func(n int, err error) error) (int, error) {
	to, _ := dst.(*channel)
	return c.consumeData(func(e *element) error {
		if to != nil {
			if n, ok, err := to.forwardInPlace(e); ok {
				return done(n, err)
			}
		}
		return done(dst.Write(e.buf))
	}, false)
}

// forwardedInPlace counts the packets forwardInPlace sent (for tests).
var forwardedInPlace atomic.Uint64

// forwardInPlace sends the received data packet of e on ch as it is (see
// ForwardDataNow), if it can: ok is false, with nothing sent and no
// window taken, when it cannot.
func (ch *channel) forwardInPlace(e *element) (n int, ok bool, err error) {
	const headerLength = 9 // type, channel, length
	p, packet := e.buf, e.pooled
	if len(p) == 0 || len(packet) != headerLength+len(p) || packet[0] != msgChannelData ||
		&packet[headerLength] != &p[0] || !pooledBuf(packet) ||
		cap(packet) < len(packet)+framedPadding || uint32(len(p)) > ch.maxRemotePayload || ch.sentEOF {
		return 0, false, nil
	}
	space, err := ch.remoteWin.reserve(uint32(len(p)))
	if err != nil {
		return 0, true, err
	}
	if space < uint32(len(p)) {
		ch.remoteWin.add(space)
		return 0, false, nil
	}
	binary.BigEndian.PutUint32(packet[1:], ch.remoteId)
	if err := ch.writeFramed(withHeadroom(packet)); err != nil {
		return 0, true, err
	}
	forwardedInPlace.Add(1)
	return len(p), true, nil
}

// notifyLocked returns the buffer's notify func, called by a producer
// after it unlocks. b.Cond.L must be held.
func (b *buffer) notifyLocked() func() { return b.notify }

// RefuseIncoming refuses the global requests and the channel opens of
// conn, as a goroutine ranging over reqs and chans would (requests that
// want a reply get a failure, channels are rejected with why as
// UnknownChannelType), but on the connection's own goroutine as they
// arrive: an idle connection keeps no goroutine for it. reqs and chans
// are the ones that came with conn; for a conn that is not this package's
// own it falls back to such a goroutine. (warren)
func RefuseIncoming(conn Conn, chans <-chan NewChannel, reqs <-chan *Request, why string) {
	m := muxOf(conn)
	if m == nil || m.incomingChannels != chans || m.incomingRequests != reqs {
		go refuseIncomingLoop(chans, reqs, why)
		return
	}
	m.refuseWhy.Store(&why)
	m.drainIncoming()
}

func refuseIncomingLoop(chans <-chan NewChannel, reqs <-chan *Request, why string) {
	for chans != nil || reqs != nil {
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
			} else if r.WantReply {
				_ = r.Reply(false, nil)
			}
		case nc, ok := <-chans:
			if !ok {
				chans = nil
			} else {
				_ = nc.Reject(UnknownChannelType, why)
			}
		}
	}
}

// drainIncoming refuses the requests and channels queued before
// RefuseIncoming; the mux loop calls it too after queueing one while
// RefuseIncoming was being called.
func (m *mux) drainIncoming() {
	why := *m.refuseWhy.Load()
	for {
		select {
		case req, ok := <-m.incomingRequests:
			if ok {
				refuse(req)
				continue
			}
		case nc, ok := <-m.incomingChannels:
			if ok {
				go func() { _ = nc.Reject(UnknownChannelType, why) }()
				continue
			}
		default:
		}
		return
	}
}

// queueGlobalRequest and queueChannel hand a global request or a new
// channel to the connection's reader, or refuse it after RefuseIncoming.
// Called by the mux loop only.
func (m *mux) queueGlobalRequest(req *Request) {
	if m.refuseWhy.Load() != nil {
		refuse(req)
		return
	}
	m.incomingRequests <- req
	if m.refuseWhy.Load() != nil {
		m.drainIncoming()
	}
}

func (m *mux) queueChannel(c *channel) {
	if why := m.refuseWhy.Load(); why != nil {
		go func() { _ = c.Reject(UnknownChannelType, *why) }()
		return
	}
	m.incomingChannels <- c
	if m.refuseWhy.Load() != nil {
		m.drainIncoming()
	}
}
