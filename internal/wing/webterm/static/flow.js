// warren browser terminal: output flow control (wing.md §2.12). A wing
// that announces a window in pty.started holds the session's output while
// this page has that much of it unacknowledged. The page acknowledges
// (pty.ack, its data sealed like pty.input) the output offset xterm.js has
// parsed, so a program printing faster than the page can draw waits for
// it, instead of the relay queueing output until it drops the socket.
"use strict";

const flowAckEvery = 4; // wingproto.AckEvery: ack every quarter window

// flowReset starts a connection's acknowledgements (pty.started); window
// is the wing's, absent when it takes no acks.
function flowReset(s, window) {
  s.flow = { window: typeof window === "number" && window > 0 ? window : 0, acked: null, waiting: false };
}

// flowFirst: live output from offset seq came over the relay. The first
// such frame is acknowledged at once, before it is drawn: it turns the
// window on at the wing one round trip early.
function flowFirst(s, seq) {
  const f = s.flow;
  if (!f || !f.window || f.acked !== null || typeof seq !== "number") return;
  flowAck(s, f, seq);
}

// flowOutput: live output was handed to the terminal (either path). Once
// a quarter window more has been, it is acknowledged when xterm.js has
// parsed it (the callback of an empty write runs after every earlier one).
function flowOutput(s) {
  const f = s.flow;
  if (!f || !f.window || f.waiting || s.ord.next === null) return;
  const next = s.ord.next;
  if (f.acked !== null && next - f.acked < f.window / flowAckEvery) return;
  f.waiting = true;
  term.write("", () => {
    f.waiting = false;
    if (s.flow !== f || current !== s) return;
    flowAck(s, f, next);
    flowOutput(s); // more may have come meanwhile
  });
}

async function flowAck(s, f, seq) {
  if (f.acked !== null && seq <= f.acked) return;
  f.acked = seq;
  const c = s.cipher, ws = s.ws;
  if (!c || ws.readyState !== 1) return;
  const data = await c.seal(enc.encode(JSON.stringify({ seq })));
  if (s.flow === f && ws.readyState === 1) ws.send(JSON.stringify({ type: "pty.ack", session_id: s.sessionID, data }));
  window.warrenAcks = (window.warrenAcks || 0) + 1;
}
