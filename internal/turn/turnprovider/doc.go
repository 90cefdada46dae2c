// Package turnprovider turns a provider name and a link into TURN
// credentials (docs/protocols/turn-overlay.md §2.6): generic-turn (a
// static link), turn-rest (coturn use-auth-secret credentials computed
// from a shared secret, with a TTL and re-resolution at 80 %) and vk (a VK
// call invite resolved in four HTTP stages, with captcha challenges handed
// to a ChallengeSolver; tested against vkfake only, never the live
// service). Every resolution also yields a sanitized artifact
// (docs/protocols/turn-overlay.md §3.6) that probe writes and that never
// holds a secret.
package turnprovider
