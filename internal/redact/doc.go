// Package redact is the one place secrets are hidden from output. It has
// three tools, for three situations:
//
//   - String and Bytes recognise secrets by their shape in text about to
//     be logged or written to an artifact: the userinfo of TURN links,
//     secret query parameters and secret JSON fields (docs/protocols/
//     turn-overlay.md §3.5). They replace them with Placeholder.
//   - Redactor replaces secrets known by value (a probe check's configured
//     API key, a ticket fetched at run time) with Named(key).
//   - URLPassword hides the password of a URL with credentials in it, for
//     configuration values that are not secret keys but may hold one
//     (`config show`).
package redact
