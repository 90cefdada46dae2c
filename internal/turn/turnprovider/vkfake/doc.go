// Package vkfake is a fake of the four VK/OK HTTP endpoints the vk TURN
// provider calls (docs/protocols/turn-overlay.md §2.6), served on loopback
// for tests: login.vk.ru's anonymous token, api.vk.ru's
// calls.getAnonymousToken (with an optional captcha challenge and its
// browser page), and calls.okcdn.ru's fb.do (auth.anonymLogin,
// vchat.joinConversationByLink). It answers the way the upstream
// vk-turn-proxy-go's resolver and fixtures show, checks every request the
// way the real service would need it, and can be told to fail each stage
// (an HTTP error, a VK/OK API error, each missing field). Stage 4 hands out
// credentials for a real TURN server (turnlab or coturn), so a resolved
// session carries data.
//
// Paths mirror the real URLs with the scheme dropped, so that a client
// rebases "https://login.vk.ru/..." onto "<URL>/login.vk.ru/...".
package vkfake
