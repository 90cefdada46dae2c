// Package wingtoken issues and verifies the relay's wing and user tokens.
//
// A wing token lets `wing serve` register on /ws/wing; a user token lets a
// person (wing attach, a browser) reach the wings they own through /ws/pty,
// /ws/relay and /api/app/wings. Both are HS256 JWTs signed with the relay's
// token keyring (package token, kid header), with claims
//
//	kind  "wing" or "user"
//	sub   the user id (for a wing token: the wing's owner)
//	wing  optional, wing tokens only: the machine wing_id the token is bound to
//	pub   optional, wing tokens only: the wing's X25519 public key; it wins
//	      over the key a wing announces (docs/protocols/wing.md §2.2)
//	aud   "warren-wing", so a tunnel token never passes here and these never
//	      pass as tunnel tokens (which require tunnelId and scp)
//	iss, iat, nbf, exp
//
// wingthing signs its wing tokens with ES256; warren's relay is the only
// party that verifies them, so it uses its existing HMAC keyring instead.
// The tokens stay opaque to wings and browsers.
package wingtoken
