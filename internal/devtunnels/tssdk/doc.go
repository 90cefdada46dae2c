// Package tssdk runs the official Dev Tunnels TypeScript SDK (npm
// @microsoft/dev-tunnels-connections, -management, -contracts 1.3.60 and
// @microsoft/dev-tunnels-ssh, -ssh-tcp 3.12.42, pinned by
// testdata/tssdk/package-lock.json) under node, for interop tests.
//
// Install runs `npm ci` once per lockfile into a cache directory
// (os.UserCacheDir()/warren/tssdk/<lockfile hash>, or $WARREN_TSSDK_CACHE),
// so later runs need no network; the install scripts of optional native
// add-ons are not run. The test scripts under testdata/tssdk (mgmt.js,
// host.js, client.js) take their settings from WARREN_TS_* variables,
// write one JSON object per line on stdout ({"event":...}), read commands
// as JSON lines on stdin and trace the SDK on stderr; Start runs one and
// Proc reads its events.
//
// node and npm are tools in the sense of internal/needtool: missing, the
// test is skipped on a laptop and fails under WARREN_REQUIRE_TOOLS=1, as is
// an npm ci that cannot fetch the pinned packages.
//
// Only tests import this package.
package tssdk
