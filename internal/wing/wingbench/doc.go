// Package wingbench measures wing terminal sessions through the built
// binaries: relay-server and wing serve, started by scripts/bench.sh, with
// the client side (wingclient, what wing attach uses) and a local PTY for
// comparison in the benchmark process. Its benchmarks skip unless the
// script says where the relay is (WARREN_BENCH_RELAY, WARREN_BENCH_USER_TOKEN,
// WARREN_BENCH_WING).
package wingbench
