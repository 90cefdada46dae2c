// warren browser terminal: direct sessions (wing.md §2.11). Once a session
// has started, the page offers the wing a WebRTC DataChannel with the
// browser's own RTCPeerConnection; offer, answer and candidates travel
// sealed with the session's key. After pty.migrated the wing's output
// comes over the channel, in binary frames sealed with the same key, and
// keystrokes go over it as pty.input. Output and input carry stream
// offsets ("seq"): each stream is written in order and once, whichever
// path a piece took, and after the channel dies (pty.fallback) each side
// resends from what the other has.
// Everything here runs inside the session's frame queue (s.queue), so
// relay and channel frames are handled one at a time, in arrival order.
"use strict";

const directLabel = "warren-pty";
const dec = new TextDecoder();

// ?direct=off|relay: no direct path, or TURN relay candidates only.
function directMode() {
  return new URLSearchParams(location.search).get("direct") || "auto";
}

// directReset starts a session's output stream afresh (pty.started).
function directReset(s) {
  directClose(s);
  s.ord = { next: null, pending: new Map() };
  s.early = [];
  s.inSeq = 0; // the wing numbers a (re)attached controller's input from 0
  s.hist = [];
  s.dgen = s.dgen || 0;
  s.fellBack = s.fellBack || 0;
  s.dused = false;
  s.pendingExit = null;
}

// directOutput writes live output in stream order; seq absent: as is.
function directOutput(s, seq, p) {
  if (seq === undefined || seq === null) { term.write(p); return; }
  const o = s.ord;
  if (o.next === null) o.next = seq;
  if (seq > o.next) { o.pending.set(seq, p); return; }
  directEmit(s, seq, p);
  for (let again = true; again && o.pending.size;) {
    again = false;
    for (const [k, v] of o.pending) {
      if (k > o.next) continue;
      o.pending.delete(k);
      directEmit(s, k, v);
      again = true;
      break;
    }
  }
  if (s.pendingExit && o.next >= s.pendingExit.seq) directFinishExit(s);
  flowOutput(s); // acknowledge what was written (flow.js)
}

function directEmit(s, seq, p) {
  const end = seq + p.length;
  if (end <= s.ord.next) return;
  const w = p.subarray(s.ord.next - seq);
  term.write(w);
  s.ord.next = end;
  window.warrenOutputBytes = (window.warrenOutputBytes || 0) + w.length;
}

async function sealSignal(s, sig) { return s.cipher.seal(enc.encode(JSON.stringify(sig))); }

async function openSignal(s, data) { return JSON.parse(dec.decode(await s.cipher.open(data))); }

// directStart offers a channel (a new attempt).
// It runs beside the frame queue (gathering takes a while), not in it.
async function directStart(s) {
  if (s.closed || current !== s || !s.cipher || s.d || s.starting || directMode() === "off" || !window.RTCPeerConnection) return;
  s.starting = true;
  let ice = { ice_servers: [] };
  try { ice = await api("/api/app/ice"); } catch (e) { /* an older relay: host candidates only */ }
  s.starting = false;
  if (s.closed || current !== s || !s.cipher || s.d) return;
  const gen = ++s.dgen;
  const pc = new RTCPeerConnection({ iceServers: ice.ice_servers || [], iceTransportPolicy: directMode() === "relay" ? "relay" : "all" });
  const dc = pc.createDataChannel(directLabel, { ordered: true });
  dc.binaryType = "arraybuffer"; // output comes in binary frames (the offer's binary: true)
  const d = { gen, pc, dc, active: false };
  s.d = d;
  const later = (f) => { s.queue = s.queue.then(f).catch((e) => status("error: " + e.message)); };
  dc.onmessage = (ev) => later(() => directFrame(s, d, ev.data));
  dc.onclose = () => later(() => directDied(s, d, "channel closed"));
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" || pc.connectionState === "disconnected") later(() => directDied(s, d, "ICE " + pc.connectionState));
  };
  d.timer = setTimeout(() => later(() => directDied(s, d, "no connection within 20 s")), 20000);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 15000);
  });
  if (s.d !== d || s.ws.readyState !== 1) return;
  s.ws.send(JSON.stringify({ type: "pty.migrate", session_id: s.sessionID, data: await sealSignal(s, { gen, sdp: pc.localDescription.sdp, binary: true }) }));
}

// directSignal handles pty.migrate (the answer), pty.migrated and
// pty.fallback from the wing.
async function directSignal(s, m) {
  if (!s.cipher || m.viewer_id) return;
  let sig;
  try { sig = await openSignal(s, m.data); } catch (e) { return; }
  const d = s.d;
  switch (m.type) {
    case "pty.migrate":
      if (!d || d.gen !== sig.gen) return;
      if (sig.error) { await directDied(s, d, "the wing refused: " + sig.error); return; }
      await d.pc.setRemoteDescription({ type: "answer", sdp: sig.sdp });
      break;
    case "pty.migrated": {
      if (!d || d.gen !== sig.gen) return;
      clearTimeout(d.timer);
      d.active = true;
      s.dused = true;
      s.retry = 0;
      if (s.ord.next === null) s.ord.next = sig.seq || 0;
      const early = s.early;
      s.early = [];
      for (const b of early) await directFrame(s, d, b);
      status("session " + s.sessionID + " (direct)");
      window.warrenDirect = (window.warrenDirect || 0) + 1;
      break;
    }
    case "pty.fallback":
      if (s.fellBack < sig.gen && d && d.gen === sig.gen) await directDied(s, d, "the wing lost the channel");
      directResendInput(s, sig.have || 0);
      break;
  }
}

// directFrame is one message from the channel: pty.output, as a binary
// frame (an ArrayBuffer, kind 1) or, from an older wing, a JSON text frame.
async function directFrame(s, d, data) {
  if (s.ord.next === null) { s.early.push(data); return; }
  if (typeof data !== "string") {
    const f = await s.cipher.openFrame(data);
    if (f.kind === 1) directOutput(s, f.seq, f.plain);
    return;
  }
  const m = JSON.parse(data);
  if (m.type !== "pty.output" || m.viewer_id || m.compressed || typeof m.seq !== "number") return;
  directOutput(s, m.seq, await s.cipher.open(m.data));
}

// directDied ends attempt d: the wing is told what output the page has,
// and another attempt follows.
async function directDied(s, d, why) {
  if (s.d !== d) return;
  s.d = null;
  clearTimeout(d.timer);
  d.pc.close();
  s.fellBack = d.gen;
  if (s.ws.readyState === 1) {
    // start: nothing live came since pty.started, so the page has all
    // output before the channel's stream and none of it.
    const sig = s.ord.next === null ? { gen: d.gen, start: true } : { gen: d.gen, have: s.ord.next };
    s.ws.send(JSON.stringify({ type: "pty.fallback", session_id: s.sessionID, data: await sealSignal(s, sig) }));
  }
  if (d.active) {
    status("session " + s.sessionID + " (relay: " + why + ")");
    window.warrenFallbacks = (window.warrenFallbacks || 0) + 1;
    s.retry = 3000;
  } else {
    s.retry = Math.min(Math.max(2 * (s.retry || 0), 3000), 30000);
  }
  s.retryTimer = setTimeout(() => directStart(s).catch(() => {}), s.retry);
}

// directClose drops the channel (a reattach, the page leaving).
function directClose(s) {
  clearTimeout(s.retryTimer);
  if (s.d) { clearTimeout(s.d.timer); s.d.pc.close(); s.d = null; }
}

// directInput sends keys with their offset, over the channel when the
// session is on one.
async function directInput(s, bytes) {
  const seq = s.inSeq;
  s.inSeq += bytes.length;
  s.hist.push({ seq, bytes });
  while (s.hist.length > 1 && s.inSeq - s.hist[0].seq > (1 << 20)) s.hist.shift();
  const frame = JSON.stringify({ type: "pty.input", session_id: s.sessionID, data: await s.cipher.seal(bytes), seq });
  if (s.d && s.d.active && s.d.dc.readyState === "open") { s.d.dc.send(frame); return; }
  if (s.ws.readyState === 1) s.ws.send(frame);
}

async function directResendInput(s, have) {
  for (const h of s.hist) {
    if (h.seq + h.bytes.length <= have) continue;
    const p = h.bytes.subarray(Math.max(0, have - h.seq));
    const seq = h.seq + (h.bytes.length - p.length);
    s.ws.send(JSON.stringify({ type: "pty.input", session_id: s.sessionID, data: await s.cipher.seal(p), seq }));
  }
}

// directExit: pty.exited; true when output is still coming over the channel.
function directExitWaits(s, m) {
  if (!s.dused || typeof m.seq !== "number" || s.ord.next === null || s.ord.next >= m.seq) return false;
  s.pendingExit = m;
  setTimeout(() => { s.queue = s.queue.then(() => { if (s.pendingExit === m) directFinishExit(s); }); }, 10000);
  return true;
}

function directFinishExit(s) {
  const m = s.pendingExit;
  s.pendingExit = null;
  sessionEnded(s, m);
}
