// Package probe is the engine of the probe binary: checks of warren's
// services (relay, tunnels, ticket relay, wings, the TURN overlay) run with a timeout each, judged against latency thresholds, aggregated
// worst-wins into a Nagios status, and reported as JSON, as Prometheus
// textfile metrics, as sanitized per-check artifacts and by a serve loop.
// WriteProviderArtifact writes `probe resolve`'s TURN provider artifact.
//
// # Checks and kinds
//
// A Check does one thing end to end and returns a Result (status, message,
// stage durations). A Kind names a type of check ("relay_health",
// "tunnel", ...) and builds Checks from a YAML mapping of its parameters.
// Kinds live in a Registry; Default holds the built-in ones. A new kind is
// added with Registry.Register (package checks registers the built-in
// ones) and needs nothing else from this package: the runner, thresholds, output,
// metrics and artifacts are kind-agnostic.
//
// # Secrets
//
// A parameter of type Secret accepts three spellings in YAML: the value
// (<key>), a file holding it (<key>_file) or an environment variable naming
// it (<key>_env). Every secret value, and every runtime secret a check
// learns (a minted ticket, a fetched token), is added to the run's Redactor;
// all text that leaves the engine (messages, details, artifacts) passes
// through it, so a secret shows only as <redacted:NAME>.
//
// # Results
//
// A check's error is CRITICAL (that includes timeouts and DNS failures);
// UNKNOWN means probe itself could not judge (a panic in a check, a check
// that ignores its context). A successful check is WARNING or CRITICAL when
// its duration reaches the configured warning or critical threshold. The
// run's status is the worst of its checks, ranked as Icinga does: OK <
// WARNING < UNKNOWN < CRITICAL, so a real outage is never hidden behind a
// check that could not judge (see Worst).
package probe
