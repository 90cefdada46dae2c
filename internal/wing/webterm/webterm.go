package webterm

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// XtermVersion is the bundled xterm.js release.
const XtermVersion = "5.5.0"

// Handler serves the page and its assets under prefix (such as "/app/").
// The user token never travels in a URL: the page takes it from a
// #token= fragment or a form, keeps it in sessionStorage, and sends it as
// a Bearer header (HTTP) or a WebSocket subprotocol entry.
func Handler(prefix string) http.Handler {
	sub, _ := fs.Sub(static, "static")
	files := http.StripPrefix(prefix, http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Inline styles: xterm.js sets element styles at run time.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
