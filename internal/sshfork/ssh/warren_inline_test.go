package ssh

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// inlineConsumer is what pipe does with SetDataNotifyInline: on each call
// it consumes what is queued (here into got), first waiting for hold, if
// set, as a destination that cannot take data would.
type inlineConsumer struct {
	ch   Channel
	hold chan struct{}
	mu   sync.Mutex
	got  bytes.Buffer
	more chan struct{} // a signal per consume
}

func newInlineConsumer(t *testing.T, ch Channel, hold chan struct{}) *inlineConsumer {
	c := &inlineConsumer{ch: ch, hold: hold, more: make(chan struct{}, 1000)}
	n := ch.(interface {
		SetDataNotifyInline(func())
		ConsumeDataNow(func([]byte) error) (int, error)
	})
	var calls atomic.Int64 // one consumer at a time, as pipe does
	n.SetDataNotifyInline(func() {
		if calls.Add(1) != 1 {
			return
		}
		if c.hold != nil {
			<-c.hold
		}
		for k := calls.Load(); ; {
			if !c.consume(n) && calls.CompareAndSwap(k, 0) {
				return
			}
			k = calls.Load()
		}
	})
	t.Cleanup(func() { n.SetDataNotifyInline(nil) })
	return c
}

// consume takes what is queued; false if there was nothing.
func (c *inlineConsumer) consume(n interface {
	ConsumeDataNow(func([]byte) error) (int, error)
}) bool {
	took := false
	for {
		k, err := n.ConsumeDataNow(func(p []byte) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.got.Write(p)
			return nil
		})
		if k == 0 || err != nil {
			return took
		}
		took = true
		c.more <- struct{}{}
	}
}

func (c *inlineConsumer) wait(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		c.mu.Lock()
		got := c.got.String()
		c.mu.Unlock()
		if got == want {
			return
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("got %d bytes (%.20q...), want %d (%.20q...)", len(got), got, len(want), want)
		}
	}
}

// TestDataNotifyInline runs consumers on the reader: data of every size
// arrives whole and in order, and a consumer that blocks (its destination
// is slow) holds up the other channels of its connection only until the
// reading is handed off to another goroutine (handOffAfter).
func TestDataNotifyInline(t *testing.T) {
	t.Parallel()
	for _, none := range []bool{true, false} {
		t.Run(fmt.Sprintf("none=%v", none), func(t *testing.T) {
			t.Parallel()
			h := handshake(t, none, none, MaxChannelMaxPacket)
			open := func() Channel {
				ch, reqs, err := h.client.OpenChannel("echo", nil)
				if err != nil {
					t.Fatalf("open channel: %v", err)
				}
				go DiscardRequests(reqs)
				return ch
			}
			slow, fast := open(), open()
			hold := make(chan struct{})
			s := newInlineConsumer(t, slow, hold)
			f := newInlineConsumer(t, fast, nil)

			if _, err := slow.Write([]byte("slow")); err != nil {
				t.Fatal(err)
			}
			// The slow consumer now blocks the reader; the fast channel's
			// echo must still come through, after a hand-off.
			big := bytes.Repeat([]byte("0123456789abcdef"), 3*int(MaxChannelMaxPacket)/16)
			for _, msg := range [][]byte{[]byte("fast"), big} {
				if _, err := fast.Write(msg); err != nil {
					t.Fatal(err)
				}
			}
			f.wait(t, "fast"+string(big), 10*time.Second)
			close(hold)
			s.wait(t, "slow", 10*time.Second)
			// Both go on as usual.
			for i := range 50 {
				if _, err := slow.Write([]byte{byte('a' + i%26)}); err != nil {
					t.Fatal(err)
				}
			}
			var want bytes.Buffer
			want.WriteString("slow")
			for i := range 50 {
				want.WriteByte(byte('a' + i%26))
			}
			s.wait(t, want.String(), 10*time.Second)
		})
	}
}
