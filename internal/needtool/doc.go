// Package needtool lets a test depend on an external program (curl,
// coturn's turnserver, Chromium, ...) without hiding a broken CI runner.
//
// On a developer machine a missing tool skips the test. Where the
// environment promises the tools — WARREN_REQUIRE_TOOLS=1, which .ci/run
// exports, or CI=true — a missing tool fails the test instead, so that an
// image without coturn does not silently turn the interop tests green.
package needtool
