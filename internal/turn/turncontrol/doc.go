// Package turncontrol is tunnel-client's local control plane: a supervisor
// that keeps TURN overlay profiles, runs their sessions in-process (real
// turnclient sessions, several at once), and serves a versioned HTTP API
// on loopback for scripts and UIs (`tunnel-client control`), in the role
// of the upstream vk-turn-proxy-go's clientd.
//
// The API (docs/protocols/turn-control.md), all under /v1 and all behind
// a bearer token:
//
//   - profiles: a profile is a `turn:` config (provider, link or link_file,
//     peer, listen, ingress, connections, psk_file, ...). Profiles hold
//     secret references, never secrets, and are stored one JSON file each
//     in the state directory (0600, written atomically). They are checked
//     by Config.Prepare, which the CLI gives the same checks and messages
//     as `tunnel-client turn`.
//   - sessions: start, stop and read a profile's session: state, stage,
//     workers (turnclient.Snapshot) and counters (its own metrics registry).
//   - events: every step (lifecycle, stages, worker restarts, challenges)
//     goes into a bounded in-memory ring with a sequence number;
//     /v1/events streams it as NDJSON from ?after=<seq>.
//   - challenges: a provider that needs a person (VK's captcha) calls the
//     session's ChallengeSolver, which publishes the challenge as a
//     resource and an event and blocks until continue or cancel.
//   - diagnostics: a JSON bundle with each session's state, metrics and
//     the event history, with every secret redacted (internal/redact).
//
// The package touches the filesystem only under Config.StateDir, and
// never the environment: the CLI reads secret files in Prepare.
package turncontrol
