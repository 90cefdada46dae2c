// Package webterm is the browser terminal relay-server serves at /app/: a
// page that lists the user's wings and runs their sessions in xterm.js,
// doing the wing protocol's end-to-end crypto (X25519, HKDF-SHA256,
// AES-256-GCM) with WebCrypto, so the relay serving the page still only
// routes ciphertext. xterm.js 5.5.0 (MIT, see static/xterm-LICENSE) is
// committed as its npm dist files; the Go build needs no npm.
package webterm
