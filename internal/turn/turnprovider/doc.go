// Package turnprovider turns a provider name and a link into TURN
// credentials (docs/protocols/turn-overlay.md §2.6): generic-turn (a static link),
// turn-rest (coturn use-auth-secret credentials computed from a shared
// secret, with a TTL and re-resolution at 80 %) and vk (registered, not
// available offline). Every resolution also yields a sanitized artifact
// (docs/protocols/turn-overlay.md §3.6) that probe writes and that never holds a secret.
package turnprovider
