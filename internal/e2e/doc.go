// Package e2e drives the built warren binaries the way a user does: flags,
// YAML, env, signals, exit codes and output. TestMain builds all six once
// (with the race detector) into a temporary directory.
package e2e
