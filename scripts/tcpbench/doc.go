// Command tcpbench is the load tool of scripts/bench-cluster.sh: an echo
// server, and a client measuring throughput (bytes echoed back, verified by
// SHA-256) and 64-byte round-trip times through TCP endpoints such as a
// tunnel-client's local port. It is a bench helper, not a shipped binary.
//
//	tcpbench echo                 # prints the port, echoes until killed
//	tcpbench run [flags] name=host:port ...
package main
