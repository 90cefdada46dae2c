// Package overlaymetrics holds the Prometheus series that tunnel-client and
// tunnel-server share (docs/protocols/turn-overlay.md §3.5): warren_runtime_*. Fixed
// labels (runtime, provider, turn_mode, peer_mode) are constant labels and
// are left out when empty; session ids are never labels.
package overlaymetrics
