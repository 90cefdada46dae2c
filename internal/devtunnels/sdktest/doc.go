// Package sdktest holds test helpers around the official Dev Tunnels Go SDK
// (github.com/microsoft/dev-tunnels), which warren's tests use as the
// upstream peer. Only tests import it, so the binaries never link the SDK.
package sdktest
