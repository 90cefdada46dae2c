package ssh

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
	"time"
)

// TestConsumeDataNow drains an echoed stream with SetDataNotify and
// ConsumeDataNow only, the way pipe's notified copy does: every byte
// arrives once and in order, and the end of the data is io.EOF.
func TestConsumeDataNow(t *testing.T) {
	t.Parallel()
	h := handshake(t, true, true, MaxChannelMaxPacket)
	ch, reqs, err := h.client.OpenChannel("echo", nil)
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	RefuseRequests(ch, reqs)
	c := ch.(*channel)
	wake := make(chan struct{}, 1)
	c.SetDataNotify(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	// Nothing queued yet: no wait, no bytes, no error.
	if n, err := c.ConsumeDataNow(func([]byte) error { return nil }); n != 0 || err != nil {
		t.Fatalf("empty channel: %d, %v", n, err)
	}
	data := make([]byte, 3*(16*MaxChannelMaxPacket)+777)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := ch.Write(data)
		if err == nil {
			err = ch.CloseWrite()
		}
		errc <- err
	}()
	var got []byte
	for {
		n, err := c.ConsumeDataNow(func(p []byte) error {
			got = append(got, p...)
			return nil
		})
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ConsumeDataNow: %v", err)
		}
		if n == 0 {
			select {
			case <-wake:
			case <-time.After(10 * time.Second):
				t.Fatalf("no notification after %d of %d bytes", len(got), len(data))
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
	ch.Close()
}

// TestRefuseRequests: channel requests on a channel given to
// RefuseRequests get a failure reply, with no reader of the request
// channel, before and after the call.
func TestRefuseRequests(t *testing.T) {
	t.Parallel()
	h := handshake(t, true, true, 0)
	ch, reqs, err := h.client.OpenChannel("echo", nil)
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	// The echo server's end has its own DiscardRequests; this end is the
	// one tested, with the server sending to it.
	RefuseRequests(ch, reqs)
	srvCh := (*channel)(nil)
	m := h.server.(*ServerConn).Conn.(*connection).mux
	m.chanList.Lock()
	for _, c := range m.chanList.chans {
		if c != nil {
			srvCh = c
		}
	}
	m.chanList.Unlock()
	if srvCh == nil {
		t.Fatal("no server channel")
	}
	for i := range 3 {
		ok, err := srvCh.SendRequest("anything", true, nil)
		if ok || err != nil {
			t.Fatalf("request %d: ok %v, err %v; want a refusal", i, ok, err)
		}
	}
	// A request without reply is dropped; the channel still works.
	if _, err := srvCh.SendRequest("quiet", false, nil); err != nil {
		t.Fatal(err)
	}
	echoed := make([]byte, 2)
	if _, err := ch.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(ch, echoed); err != nil || string(echoed) != "hi" {
		t.Fatalf("echo after requests: %q, %v", echoed, err)
	}
	ch.Close()
}

// TestIdleChannelKeepsNoPacket: once its data is read (by Read or by
// ConsumeData), an idle channel holds no received packet, in particular
// no pooled one.
func TestIdleChannelKeepsNoPacket(t *testing.T) {
	t.Parallel()
	h := handshake(t, true, true, MaxChannelMaxPacket)
	for _, consume := range []bool{false, true} {
		ch, reqs, err := h.client.OpenChannel("echo", nil)
		if err != nil {
			t.Fatalf("open channel: %v", err)
		}
		RefuseRequests(ch, reqs)
		c := ch.(*channel)
		msg := make([]byte, 64<<10) // one pooled packet
		if _, err := ch.Write(msg); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(msg); {
			var n int
			if consume {
				n, err = c.ConsumeData(func(p []byte) error { return nil })
			} else {
				n, err = ch.Read(make([]byte, 5000))
			}
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		b := c.pending
		b.Cond.L.Lock()
		held := b.head.buf != nil || b.head.pooled != nil
		b.Cond.L.Unlock()
		if held {
			t.Errorf("consume %v: the idle channel keeps its last packet", consume)
		}
		ch.Close()
	}
}
