// Package redact removes secrets from text that is about to be logged or
// written to an artifact: the userinfo of TURN links, secret query
// parameters and secret JSON fields (docs/protocols/turn-overlay.md §3.5).
package redact
