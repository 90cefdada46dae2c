// Package apikey generates and checks warren's operator API keys.
//
// An operator API key is what a person or script presents as
// "Authorization: Bearer <key>" to bootstrap the relay: create the first
// tunnel and its tokens (scope "tunnels", docs/protocols/devtunnels.md §2.1), mint tickets
// ("tickets") or manage wings ("wings"). Tunnel access tokens, which the
// relay itself issues, are package token.
//
// A key's plaintext is
//
//	wrn_<id>_<secret>
//
// where id is 8 random bytes in unpadded lowercase base32 (13 characters,
// a-z2-7, never "_") and secret is 32 random bytes in unpadded base64url (43
// characters, which may include "_" and "-"). Because the id cannot contain
// "_", the first "_" after the prefix ends it and parsing is unambiguous.
// The id is public: it names the key in the store and in logs. The plaintext
// is shown once, by [Generate]; only a SHA-256 hash of the secret is kept
// ([Key.Hash]), and [Key.Check] compares in constant time.
package apikey
