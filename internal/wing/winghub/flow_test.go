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
	started := func(u *peer) { // the wing announces a window
		w.send(wp.Started{Type: wp.TypePTYStarted, SessionID: sid, PublicKey: "wk", Window: wp.OutputWindow})
		if m := u.read(); m["type"] != wp.TypePTYStarted {
			t.Fatalf("pty.started: %v", m)
		}
	}
	started(ctl)

	// A controller that never acked leaves: nothing for the wing.
	ctl.send(wp.SessionRef{Type: wp.TypePTYDetach, SessionID: sid})
	w.noFrame()

	ctl2 := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	ctl2.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, PublicKey: "pk2"})
	if m := w.read(); m["type"] != wp.TypePTYAttach {
		t.Fatalf("attach at the wing: %v", m)
	}
	started(ctl2)
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
	started(ctl3)
	ctl3.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: "y"})
	w.read()
	ctl4 := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	ctl4.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, PublicKey: "pk5"})
	if m := w.read(); m["type"] != wp.TypePTYAttach {
		t.Fatalf("reattach at the wing: %v", m)
	}
	started(ctl4)
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

// TestAckDeclaration: the relay confirms a controller's declared acks
// (relay_acks) on pty.start and pty.attach, strips a relay_acks a user
// sends, never confirms a spectator's, and tells the wing when a
// controller that declared acks leaves, even before any pty.ack.
func TestAckDeclaration(t *testing.T) {
	_, url := testHub(t, Config{})
	w := registerWing(t, url, "alice", "box")
	u := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	u.send(map[string]any{"type": "pty.start", "public_key": "pk", "relay_acks": true})
	m := w.read()
	if _, ok := m["relay_acks"]; ok {
		t.Fatalf("a user's relay_acks reached the wing: %v", m)
	}
	sid := m["session_id"].(string)
	u.send(map[string]any{"type": "pty.attach", "session_id": sid, "public_key": "pk", "acks": true})
	if m := w.read(); m["relay_acks"] != true || m["acks"] != true {
		t.Fatalf("declared acks at the wing: %v", m)
	}
	w.send(wp.Started{Type: wp.TypePTYStarted, SessionID: sid, PublicKey: "wk", Window: wp.OutputWindow})
	u.read()
	spec := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	spec.send(map[string]any{"type": "pty.attach", "session_id": sid, "public_key": "pk", "acks": true, "relay_acks": true, "spectate": true})
	if m := w.read(); m["relay_acks"] != nil {
		t.Fatalf("a spectator's attach confirmed acks: %v", m)
	}
	u.ws.CloseNow()
	if m := w.read(); m["type"] != wp.TypePTYDetach || m["session_id"] != sid {
		t.Fatalf("detach notice at the wing: %v", m)
	}

	u2 := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	u2.send(map[string]any{"type": "pty.start", "public_key": "pk", "acks": true})
	if m := w.read(); m["relay_acks"] != true {
		t.Fatalf("declared acks on pty.start at the wing: %v", m)
	}
}

// TestNoDetachNoticeWithoutWindow: a wing that announces no window (a
// wingthing wing) never gets the relay's pty.detach.
func TestNoDetachNoticeWithoutWindow(t *testing.T) {
	_, url := testHub(t, Config{})
	w := registerWing(t, url, "alice", "box")
	u := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	u.send(map[string]any{"type": "pty.start", "public_key": "pk", "acks": true})
	sid := w.read()["session_id"].(string)
	w.send(wp.Started{Type: wp.TypePTYStarted, SessionID: sid, PublicKey: "wk"})
	u.read()
	u.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: "x"})
	w.read()
	u.ws.CloseNow()
	w.noFrame()
}
