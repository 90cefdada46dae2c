package winghub

import (
	"testing"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// TestAckRoutingAndDetachNotice: pty.ack goes to the wing from the
// session's controller only, with the sender's identity; the wing hears
// pty.detach when a controller that acknowledged leaves (detach or
// socket closed), and not for one that never acked or was replaced.
func TestAckRoutingAndDetachNotice(t *testing.T) {
	_, url := testHub(t, Config{})
	w := registerWing(t, url, "alice", "box")
	ctl := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	ctl.send(map[string]any{"type": "pty.start", "public_key": "pk"})
	sid := w.read()["session_id"].(string)

	// A controller that never acked leaves: nothing for the wing.
	ctl.send(wp.SessionRef{Type: wp.TypePTYDetach, SessionID: sid})
	w.noFrame()

	ctl2 := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	ctl2.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, PublicKey: "pk2"})
	if m := w.read(); m["type"] != wp.TypePTYAttach {
		t.Fatalf("attach at the wing: %v", m)
	}
	ctl2.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: "sealed"})
	if m := w.read(); m["type"] != wp.TypePTYAck || m["session_id"] != sid || m["data"] != "sealed" || m["user_id"] != "alice" {
		t.Fatalf("ack at the wing: %v", m)
	}
	// A spectator's ack is dropped.
	spec := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	spec.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, PublicKey: "pk3", Spectate: true})
	w.read() // its pty.attach
	spec.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: "x"})
	w.noFrame()

	// The acking controller's socket closes: the wing is told.
	ctl2.ws.CloseNow()
	if m := w.read(); m["type"] != wp.TypePTYDetach || m["session_id"] != sid || m["user_id"] != "alice" {
		t.Fatalf("detach notice at the wing: %v", m)
	}

	// An acking controller replaced by a reattach: only the new pty.attach.
	ctl3 := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	ctl3.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, PublicKey: "pk4"})
	w.read()
	ctl3.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: "y"})
	w.read()
	ctl4 := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	ctl4.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, PublicKey: "pk5"})
	if m := w.read(); m["type"] != wp.TypePTYAttach {
		t.Fatalf("reattach at the wing: %v", m)
	}
	ctl3.ws.CloseNow()
	w.noFrame()

	// An explicit detach after an ack: the wing is told.
	ctl4.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: "z"})
	w.read()
	ctl4.send(wp.SessionRef{Type: wp.TypePTYDetach, SessionID: sid})
	if m := w.read(); m["type"] != wp.TypePTYDetach || m["session_id"] != sid {
		t.Fatalf("detach notice at the wing: %v", m)
	}
}
