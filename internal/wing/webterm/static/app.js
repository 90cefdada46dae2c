// warren browser terminal: lists the user's wings, starts and reattaches
// PTY sessions over /ws/pty, and does the wing protocol's end-to-end crypto
// in the browser (wing.md §2.5): X25519, HKDF-SHA256 with 32 zero bytes of
// salt and info "wt-pty" / "wt-tunnel", AES-256-GCM with a 12-byte nonce,
// wire form base64(nonce ‖ ciphertext ‖ tag). The relay only sees ciphertext.
"use strict";

const enc = new TextEncoder();
const $ = (id) => document.getElementById(id);

// ---- token: from #token= or the form, kept in sessionStorage only ----

function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("warren.token", decodeURIComponent(m[1]));
    // Drop the fragment so the token is not left in the address bar.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("warren.token") || "";
}

// ---- crypto ----

function b64(bytes) {
  let s = "";
  const b = new Uint8Array(bytes);
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  return btoa(s);
}

function unb64(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64url(bytes) {
  return b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

let myKey = null; // per-tab X25519 identity (wing.md §2.5)
let myPub = "";

async function initKey() {
  myKey = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  myPub = b64(await crypto.subtle.exportKey("raw", myKey.publicKey));
}

// deriveCipher returns {seal, open} for the peer's public key and info.
async function deriveCipher(peerPub, info) {
  const peer = await crypto.subtle.importKey("raw", unb64(peerPub), { name: "X25519" }, false, []);
  const shared = await crypto.subtle.deriveBits({ name: "X25519", public: peer }, myKey.privateKey, 256);
  const hk = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  const key = await crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: enc.encode(info) },
    hk, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  return {
    async seal(plain) {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, plain));
      const out = new Uint8Array(12 + ct.length);
      out.set(iv);
      out.set(ct, 12);
      return b64(out);
    },
    async open(wire) {
      const raw = unb64(wire);
      if (raw.length < 28) throw new Error("short payload");
      return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: raw.subarray(0, 12) }, key, raw.subarray(12)));
    },
    // openFrame opens a binary channel frame (wing.md §2.11): kind (1),
    // seq (8, big-endian), nonce (12), ciphertext and tag, the first 9
    // bytes authenticated. Returns {kind, seq, plain}.
    async openFrame(buf) {
      const raw = new Uint8Array(buf);
      if (raw.length < 37) throw new Error("short frame");
      const seq = new DataView(raw.buffer, raw.byteOffset, 9).getBigUint64(1);
      if (seq > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("frame offset out of range");
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: raw.subarray(9, 21), additionalData: raw.subarray(0, 9) }, key, raw.subarray(21));
      return { kind: raw[0], seq: Number(seq), plain: new Uint8Array(plain) };
    },
  };
}

async function gunzip(bytes) {
  const s = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

// ---- relay ----

let token = "";

function status(s) { $("status").textContent = s; }

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (r.status === 401) { forget(); throw new Error("the relay refused the token"); }
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function socket(path, wingID) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = proto + "//" + location.host + path + "?wing_id=" + encodeURIComponent(wingID);
  // The token goes in a subprotocol entry, never in the URL.
  return new WebSocket(url, ["warren.v1", "warren.token." + token]);
}

// tunnelRequest sends one encrypted request to a wing (wing.md §2.8).
async function tunnelRequest(wing, req) {
  const c = await deriveCipher(wing.public_key, "wt-tunnel");
  const authTok = sessionStorage.getItem("warren.auth." + wing.wing_id);
  if (authTok && !req.auth_token) req.auth_token = authTok;
  const payload = await c.seal(enc.encode(JSON.stringify(req)));
  const rid = crypto.randomUUID();
  return new Promise((resolve, reject) => {
    const ws = socket("/ws/relay", wing.wing_id);
    const timer = setTimeout(() => { ws.close(); reject(new Error("no answer")); }, 30000);
    ws.onopen = () => ws.send(JSON.stringify({ type: "tunnel.req", wing_id: wing.wing_id, request_id: rid, sender_pub: myPub, payload }));
    ws.onerror = () => { clearTimeout(timer); reject(new Error("relay socket error")); };
    ws.onmessage = async (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "error") { clearTimeout(timer); ws.close(); reject(new Error(m.message)); return; }
      if (m.type !== "tunnel.res" || m.request_id !== rid) return;
      clearTimeout(timer);
      ws.close();
      try { resolve(JSON.parse(new TextDecoder().decode(await c.open(m.payload)))); } catch (e) { reject(e); }
    };
  });
}

// ---- wings list ----

async function showWings() {
  $("login").hidden = true;
  $("logout").hidden = false;
  $("wings").hidden = false;
  status("loading wings");
  const wings = await api("/api/app/wings");
  const ul = $("wing-list");
  ul.textContent = "";
  for (const w of wings) {
    const li = document.createElement("li");
    li.className = "wing";
    li.dataset.wing = w.wing_id;
    const name = document.createElement("strong");
    name.textContent = w.wing_id;
    li.append(name, " ");
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = [w.hostname, w.platform, w.version, w.locked ? "locked" : ""].filter(Boolean).join(" · ");
    li.append(meta);
    const b = document.createElement("button");
    b.textContent = "new shell";
    b.className = "new-session";
    b.onclick = () => openSession(w, "");
    li.append(b);
    const sl = document.createElement("ul");
    sl.className = "sessions";
    li.append(sl);
    ul.append(li);
    tunnelRequest(w, { type: "sessions.list" }).then((res) => {
      for (const s of (res.sessions || [])) {
        const si = document.createElement("li");
        si.textContent = s.session_id + " " + (s.agent || "") + " " + (s.cwd || "") + " " + (s.needs_attention ? "🔔 " : "");
        if (s.preview && s.preview.mode) {
          const pv = document.createElement("span");
          pv.className = "preview";
          pv.textContent = "preview: " + (s.preview.mode === "url" ? s.preview.url : (s.preview.content || "").split("\n")[0].slice(0, 60)) + " ";
          si.append(pv);
        }
        const a = document.createElement("button");
        a.textContent = "attach";
        a.className = "attach";
        a.dataset.session = s.session_id;
        a.onclick = () => openSession(w, s.session_id);
        si.append(a);
        sl.append(si);
      }
    }).catch((e) => { const si = document.createElement("li"); si.className = "meta"; si.textContent = "sessions: " + e.message; sl.append(si); });
  }
  status(wings.length ? wings.length + " wing(s)" : "no wing connected");
  window.warrenWings = wings;
}

// ---- terminal session ----

let term = null;
let current = null; // {ws, wing, sessionID, cipher, closed}

function ensureTerm() {
  if (term) return term;
  term = new Terminal({ cursorBlink: true, scrollback: 5000, convertEol: false, fontSize: 14 });
  term.open($("terminal"));
  term.onData((d) => { if (current && current.attention) ackAttention(current); sendInput(enc.encode(d)); });
  term.onBinary((d) => sendInput(Uint8Array.from(d, (c) => c.charCodeAt(0))));
  term.onResize(({ cols, rows }) => {
    if (current && current.sessionID && current.ws.readyState === 1) {
      current.ws.send(JSON.stringify({ type: "pty.resize", session_id: current.sessionID, cols, rows }));
    }
  });
  window.warrenTerm = term;
  fit();
  window.addEventListener("resize", fit);
  return term;
}

// fit sizes the terminal to its box from the rendered cell size.
function fit() {
  const el = $("terminal");
  const cell = term._core && term._core._renderService && term._core._renderService.dimensions
    ? term._core._renderService.dimensions.css.cell : null;
  const w = cell && cell.width ? cell.width : 9;
  const h = cell && cell.height ? cell.height : 17;
  const cols = Math.max(20, Math.floor(el.clientWidth / w) - 1);
  const rows = Math.max(5, Math.floor(el.clientHeight / h));
  if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows);
}

async function sendInput(bytes) {
  const s = current;
  if (!s || !s.cipher || s.ws.readyState !== 1) return;
  await directInput(s, bytes); // over the direct channel when there is one (direct.js)
}

function openSession(wing, sessionID) {
  if (current) { current.closed = true; directClose(current); current.ws.close(); }
  $("wings").hidden = true;
  $("term-box").hidden = false;
  ensureTerm();
  term.reset();
  const s = { wing, sessionID, cipher: null, closed: false, queue: Promise.resolve(), ws: null };
  current = s;
  connect(s);
  term.focus();
}

function connect(s) {
  const ws = socket("/ws/pty", s.wing.wing_id);
  s.ws = ws;
  status(s.sessionID ? "attaching " + s.sessionID : "starting a session on " + s.wing.wing_id);
  ws.onopen = () => {
    const authTok = sessionStorage.getItem("warren.auth." + s.wing.wing_id) || "";
    // acks: this page acknowledges output (flow.js).
    const base = { wing_id: s.wing.wing_id, public_key: myPub, cols: term.cols, rows: term.rows, auth_token: authTok, acks: true };
    if (s.sessionID) {
      ws.send(JSON.stringify(Object.assign({ type: "pty.attach", session_id: s.sessionID }, base)));
    } else {
      const cred = sessionStorage.getItem("warren.credential") || "";
      ws.send(JSON.stringify(Object.assign({ type: "pty.start", agent: "", passkey_credential_id: cred }, base)));
    }
  };
  // Frames are handled strictly in order: decryption is asynchronous.
  ws.onmessage = (ev) => { s.queue = s.queue.then(() => handle(s, JSON.parse(ev.data))).catch((e) => status("error: " + e.message)); };
  ws.onclose = () => {
    directClose(s); // the wing ends the channel on the reattach anyway
    if (s.closed || current !== s) return;
    if (s.sessionID) {
      status("connection lost; reattaching");
      setTimeout(() => { if (!s.closed && current === s) { s.cipher = null; connect(s); } }, 1000);
    } else {
      status("disconnected");
    }
  };
}

async function handle(s, m) {
  switch (m.type) {
    case "pty.started":
      if (m.viewer_id) return;
      s.sessionID = m.session_id;
      s.cipher = await deriveCipher(m.public_key, "wt-pty");
      if (m.auth_token) sessionStorage.setItem("warren.auth." + s.wing.wing_id, m.auth_token);
      sessionStorage.setItem("warren.last", JSON.stringify({ wing: s.wing.wing_id, session: s.sessionID }));
      $("term-title").textContent = s.wing.wing_id + " / " + s.sessionID;
      status("session " + s.sessionID);
      window.warrenSession = s.sessionID;
      term.reset();
      directReset(s);
      flowReset(s, m.window); // flow.js
      setTimeout(() => directStart(s).catch((e) => status("direct: " + e.message)));
      break;
    case "pty.output": {
      if (!s.cipher || m.viewer_id) return;
      let p = await s.cipher.open(m.data);
      if (m.compressed) term.write(await gunzip(p));
      else { flowFirst(s, m.seq); directOutput(s, m.seq, p); }
      break;
    }
    case "pty.migrate":
    case "pty.migrated":
    case "pty.fallback":
      await directSignal(s, m);
      break;
    case "pty.exited":
      if (m.viewer_id || directExitWaits(s, m)) return;
      sessionEnded(s, m);
      break;
    case "wing.offline":
      status("wing offline; reattaching");
      s.ws.close(); // onclose reattaches after 1 s
      break;
    case "relay.restart":
      s.ws.close();
      break;
    case "bandwidth.exceeded":
      s.closed = true;
      term.write("\r\n[" + m.message + "]\r\n");
      status("bandwidth exceeded");
      break;
    case "passkey.challenge":
      await passkey(s, m);
      break;
    case "pty.browser_open":
    case "pty.preview":
    case "session.attention":
      await notice(s, m); // notices.js
      break;
    case "error":
      status("relay: " + m.message);
      term.write("\r\n[relay: " + m.message + "]\r\n");
      break;
  }
}

function sessionEnded(s, m) {
  s.closed = true;
  directClose(s);
  term.write("\r\n[session ended" + (m.error ? ": " + m.error : "") + ", exit code " + m.exit_code + "]\r\n");
  status("session ended");
  window.warrenExited = "exit " + m.exit_code;
  s.ws.close();
}

// passkey answers passkey.challenge with a WebAuthn assertion.
async function passkey(s, m) {
  status("passkey check");
  const cred = sessionStorage.getItem("warren.credential") || "";
  const opts = { challenge: unb64(m.challenge), userVerification: "preferred", timeout: 60000 };
  if (cred) opts.allowCredentials = [{ type: "public-key", id: unb64(cred) }];
  const a = await navigator.credentials.get({ publicKey: opts });
  s.ws.send(JSON.stringify({
    type: "passkey.response", session_id: m.session_id, credential_id: b64url(a.rawId),
    authenticator_data: b64(a.response.authenticatorData), client_data_json: b64(a.response.clientDataJSON),
    signature: b64(a.response.signature),
  }));
}

// warrenBufferText returns the terminal's text, for tests and copy.
window.warrenBufferText = function () {
  if (!term) return "";
  const b = term.buffer.active;
  const lines = [];
  for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
  return lines.join("\n");
};

function forget() {
  sessionStorage.removeItem("warren.token");
  token = "";
  location.reload();
}

async function main() {
  try {
    await initKey();
  } catch (e) {
    status("this browser lacks WebCrypto X25519: " + e.message);
    return;
  }
  $("logout").onclick = forget;
  $("detach").onclick = () => {
    if (current) {
      current.closed = true;
      if (current.ws.readyState === 1) current.ws.send(JSON.stringify({ type: "pty.detach", session_id: current.sessionID }));
      current.ws.close();
      current = null;
    }
    $("term-box").hidden = true;
    showWings();
  };
  $("kill").onclick = () => {
    if (current && current.ws.readyState === 1) current.ws.send(JSON.stringify({ type: "pty.kill", session_id: current.sessionID }));
  };
  $("login-form").onsubmit = (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("warren.token", $("token").value.trim());
    if ($("credential").value.trim()) sessionStorage.setItem("warren.credential", $("credential").value.trim());
    token = takeToken();
    showWings().catch((e) => status(e.message));
  };
  token = takeToken();
  if (!token) {
    $("login").hidden = false;
    status("no token");
    return;
  }
  try {
    await showWings();
  } catch (e) {
    status(e.message);
  }
  window.warrenReady = true;
}

main();
