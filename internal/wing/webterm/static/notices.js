// warren browser terminal: what a session asks of its user (wing.md §2.4).
// pty.browser_open offers a button (a page never opens a URL by itself);
// pty.preview shows a URL as a link or markdown as plain text beside the
// terminal (never as HTML: it comes from the remote machine);
// session.attention raises a browser Notification when allowed, and always
// a visible banner, and is acknowledged with pty.attention_ack.
"use strict";

// safeURL returns url when it is an absolute http(s) URL, else "".
function safeURL(url) {
  try {
    const u = new URL(url);
    if ((u.protocol === "http:" || u.protocol === "https:") && u.host && !u.username && !u.password) return u.href;
  } catch (e) { /* not a URL */ }
  return "";
}

function noticeBar() { return document.getElementById("notices"); }

// addNotice shows one line with buttons; it returns the element.
function addNotice(cls, text, buttons) {
  const bar = noticeBar();
  bar.hidden = false;
  const div = document.createElement("div");
  div.className = "notice " + cls;
  const span = document.createElement("span");
  span.textContent = text;
  div.append(span);
  for (const [label, fn, bcls] of buttons) {
    const b = document.createElement("button");
    b.textContent = label;
    if (bcls) b.className = bcls;
    b.onclick = () => { fn(); div.remove(); if (!bar.children.length) bar.hidden = true; };
    div.append(b);
  }
  bar.append(div);
  return div;
}

function ackAttention(s) {
  if (s.attention && s.ws && s.ws.readyState === 1) {
    s.ws.send(JSON.stringify({ type: "pty.attention_ack", session_id: s.sessionID }));
  }
  s.attention = false;
  document.title = document.title.replace(/^\(!\) /, "");
  window.warrenAttentionAcked = (window.warrenAttentionAcked || 0) + 1;
}

function showPreview(p) {
  const box = document.getElementById("preview");
  box.textContent = "";
  window.warrenPreview = p;
  if (!p || !p.mode) { box.hidden = true; return; }
  box.hidden = false;
  const h = document.createElement("div");
  h.className = "meta";
  h.textContent = "preview";
  box.append(h);
  if (p.mode === "url") {
    const href = safeURL(p.url);
    if (!href) return;
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = href;
    box.append(a);
  } else {
    const pre = document.createElement("pre");
    pre.textContent = p.content || "";
    box.append(pre);
  }
}

// notice handles pty.browser_open, pty.preview and session.attention for
// the session s (app.js's current session).
async function notice(s, m) {
  if (m.session_id && s.sessionID && m.session_id !== s.sessionID) return;
  switch (m.type) {
    case "pty.browser_open": {
      const url = safeURL(m.url);
      if (!url) return;
      window.warrenOpenOffered = url;
      addNotice("browser-open", "The session asks to open " + url, [
        ["Open", () => { window.open(url, "_blank", "noopener,noreferrer"); window.warrenOpened = url; }, "open-url"],
        ["Dismiss", () => {}, "dismiss"],
      ]);
      break;
    }
    case "pty.preview": {
      if (!s.cipher || m.viewer_id) return;
      const p = JSON.parse(new TextDecoder().decode(await s.cipher.open(m.data)));
      showPreview(p);
      break;
    }
    case "session.attention": {
      s.attention = true;
      window.warrenAttention = (window.warrenAttention || 0) + 1;
      if (!/^\(!\) /.test(document.title)) document.title = "(!) " + document.title;
      const text = "Session " + s.sessionID + " on " + s.wing.wing_id + " needs attention";
      let shown = false;
      if (window.Notification && Notification.permission === "granted") {
        try {
          const n = new Notification("warren", { body: text, tag: "warren-" + s.sessionID });
          n.onclick = () => { window.focus(); ackAttention(s); n.close(); };
          shown = true;
        } catch (e) { /* some browsers only notify from a service worker */ }
      }
      window.warrenNotified = shown;
      // Always visible in the page too.
      addNotice("attention", "🔔 " + text, [["OK", () => ackAttention(s), "ack"]]);
      break;
    }
  }
}

// Ask for notification permission on the first click (browsers want a
// user gesture for it).
document.addEventListener("click", function ask() {
  document.removeEventListener("click", ask, true);
  if (window.Notification && Notification.permission === "default") Notification.requestPermission().catch(() => {});
}, true);
