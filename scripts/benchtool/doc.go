// Command benchtool is the port-tunnel part of `make bench` (run by
// scripts/bench.sh; not a shipped binary). It starts the built relay-server,
// tunnel-host and tunnel-client on loopback, one fresh set of processes per
// path, and drives the same load through each path and through a direct
// loopback connection made by this same tool with the same buffer sizes:
//
//   - throughput of one stream and of 8 concurrent streams (download: the
//     target writes, the tool reads), median over interleaved rounds;
//   - CPU-seconds per GiB summed over the path's processes (utime+stime
//     from /proc/<pid>/stat around the throughput runs);
//   - RTT p50/p99 of 64-byte ping-pongs on one connection;
//   - new-connection latency: connect, first 64-byte echo back, close;
//   - RSS per idle forwarded connection (VmRSS from /proc/<pid>/status
//     before and after opening BENCH_IDLE connections that have each
//     echoed once), per process, and the RSS left after they close;
//   - BENCH_IDLE_BIG (default 10000; 0: off) idle V2 ws connections on a
//     set of processes of their own: the total RSS of relay-server,
//     tunnel-host and tunnel-client with them open, and 3 s and 10 s after
//     they close (idle.go; it raises the open file limit at start);
//   - web forwarding: a BENCH_WEB_BYTES GET through relay-server's path
//     form against the same GET direct.
//
// Paths: V2 over ws and over wss (relay-server serving TLS with a
// self-signed certificate the peers trust through SSL_CERT_FILE), V2 with
// end-to-end encryption (tunnel-client connect --e2e over ws; the bench
// fails unless the host's /metrics count every stream it forwarded as
// E2E-encrypted, and names the negotiated cipher), V1, raw TCP exposure
// (relay-server tunnels.expose; relay and host only), web forwarding
// (relay and host only).
//
// The RTT floor reference (BENCH_PATHS key "proxy"): chains of 2 and 3
// separate processes, each a plain Go TCP proxy (this binary re-run as
// `benchtool __proxy NEXT`: accept, dial, two goroutines copying through
// 64 KiB buffers), measured in the same interleaved rounds. On a VM every
// process on the way costs the wakeup of an idle vCPU each way, so a path
// through N processes cannot beat the chain of N; each warren path's RTT
// p50 is printed over direct and over the chain of as many processes (raw
// TCP: 2, V2 and V1: 3).
//
// A/B: BENCH_BIN_B=DIR runs every client path and raw TCP a second time
// with the binaries in DIR (rows "V2 ws B" and so on) in the same
// interleaved rounds. On a shared VM the CPU cost of one build drifts by a third from
// run to run, with the neighbours' load; two builds measured side by side
// drift together.
//
// Every figure is printed with its ratio to the direct path of the same
// run. Sizes come from the environment (see config in main.go) so a quick
// or a long run is one variable away.
package main
