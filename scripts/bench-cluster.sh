#!/usr/bin/env bash
# The cost of the node-to-node hop (called by scripts/bench.sh, or alone
# after `make build`): PostgreSQL in a temporary directory, two relay-server
# nodes A and B on it behind HAProxy (their public URL), and two tunnels,
# "same" and "cross", whose tunnel-hosts (exposing one TCP echo) both sit
# on node A. HAProxy sends the client relay socket of "cross" to node B,
# which carries it to A over the node-to-node hop, and everything else to
# A. So the two tunnel-clients take the same path but for the hop.
# scripts/tcpbench measures throughput (16 MiB echoed, SHA-256 checked)
# and 64-byte RTT through each client, and direct to the echo, in the same
# run; medians of BENCH_HOP_COUNT rounds. Skipped (exit 0) without the
# PostgreSQL server binaries or haproxy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
COUNT=${BENCH_HOP_COUNT:-3}

. "$(dirname "$0")/lib/pg.sh"
if ! pg_find; then
  echo "cluster hop: skipped (initdb and pg_ctl not found; apt-get install postgresql)"
  exit 0
fi
command -v haproxy >/dev/null || { echo "cluster hop: skipped (haproxy not found; apt-get install haproxy)"; exit 0; }

work=$(mktemp -d -t warren-bench-cluster-XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT

# free_port: a free loopback port (bound then released by tcpbench's echo
# would race; the kernel's pick via a throwaway listener is enough here).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
  echo $((20000 + RANDOM % 20000)); }
# wait_for FILE REGEX: wait up to 30 s for a line matching REGEX, print the match.
wait_for() {
  for _ in $(seq 300); do
    if m=$(grep -m1 -oE "$2" "$1" 2>/dev/null); then echo "$m"; return 0; fi
    sleep 0.1
  done
  echo "bench-cluster: timed out waiting for /$2/ in $1:" >&2; cat "$1" >&2; return 1
}
wait_ready() {
  for _ in $(seq 300); do
    curl -fsS "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench-cluster: $1 never became ready" >&2; return 1
}

go build -o "$work/tcpbench" ./scripts/tcpbench

pg_port=$(free_port)
pg_start "$work" "$pg_port"
chmod 600 "$work/dsn"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/cluster.secret"
chmod 600 "$work/cluster.secret"

export WARREN_RELAY_SERVER_ADMIN_KEY=wadm_bench_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
lb_port=$(free_port)
lb=http://127.0.0.1:$lb_port
declare -A url
for id in a b; do
  port=$(free_port)
  url[$id]=http://127.0.0.1:$port
  WARREN_RELAY_SERVER_STORE_DSN_FILE=$work/dsn \
  WARREN_RELAY_SERVER_CLUSTER_SECRET_FILE=$work/cluster.secret \
  WARREN_RELAY_SERVER_CLUSTER_NODE_ID=node-$id \
  WARREN_RELAY_SERVER_CLUSTER_INTERNAL_URL=${url[$id]} \
  WARREN_RELAY_SERVER_CLUSTER_PUBLIC_URL=${url[$id]} \
  WARREN_RELAY_SERVER_PUBLIC_URL=$lb \
    "$BIN/relay-server" --listen "127.0.0.1:$port" --data-dir "$work/node-$id" --log-format json >"$work/node-$id.log" 2>&1 &
  pids+=($!)
done
wait_ready "${url[a]}"
wait_ready "${url[b]}"

cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 2000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-request 10s
frontend relay
    bind 127.0.0.1:$lb_port
    use_backend node-b if { path_beg /relay/client/cross }
    default_backend node-a
backend node-a
    server node-a ${url[a]#http://}
backend node-b
    server node-b ${url[b]#http://}
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
wait_ready "$lb"

"$work/tcpbench" echo >"$work/echo.port" &
pids+=($!)
echo_port=$(wait_for "$work/echo.port" '^[0-9]+$')
"$BIN/relay-server" keys create --server "${url[a]}" --name bench --scope tunnels -o json |
  grep -oE '"key": *"[^"]+"' | sed -E 's/.*"([^"]+)"$/\1/' >"$work/api.key"
declare -A local
for tn in same cross; do
  "$BIN/relay-server" tunnels create "$tn" --server "${url[a]}" >/dev/null
  WARREN_TUNNEL_HOST_API_KEY_FILE=$work/api.key WARREN_TUNNEL_HOST_CONTROL_SOCKET=$work/host-$tn.sock \
    "$BIN/tunnel-host" --relay "${url[a]}" --tunnel "$tn" --port "$echo_port" >"$work/host-$tn.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    WARREN_TUNNEL_HOST_CONTROL_SOCKET=$work/host-$tn.sock "$BIN/tunnel-host" --tunnel "$tn" status -o json 2>/dev/null | grep -q '"connected"' && break
    sleep 0.1
  done
  local[$tn]=$(free_port)
  WARREN_TUNNEL_CLIENT_API_KEY_FILE=$work/api.key \
    "$BIN/tunnel-client" connect "$tn" --relay "${url[a]}" -o json --port-map "$echo_port:${local[$tn]}" >"$work/client-$tn.out" 2>"$work/client-$tn.log" &
  pids+=($!)
  wait_for "$work/client-$tn.out" '"event":"ready"' >/dev/null ||
    { cat "$work/client-$tn.log" >&2; exit 1; }
done
"$work/tcpbench" run -count "$COUNT" direct="127.0.0.1:$echo_port" same="127.0.0.1:${local[same]}" cross="127.0.0.1:${local[cross]}" >"$work/hop.txt"
# The cross-node client was carried by B (once: one relay socket).
hops() { curl -fsS "${url[b]}/metrics" | awk '/^warren_cluster_hops_total\{kind="tunnel_client"\}/ {print $2}'; }
[ "$(hops)" = 1 ] || { echo "bench-cluster: node B carried $(hops) client sockets, want 1" >&2; exit 1; }

awk -v n="$COUNT" '
  { mbs[$1] = $2; p50[$1] = $3; p99[$1] = $4 }
  END {
    printf "throughput (16 MiB echoed, median of %s): direct %.0f MB/s, same node %.0f MB/s, cross node %.0f MB/s; cross/same %.2f, same/direct %.2f, cross/direct %.2f\n",
      n, mbs["direct"], mbs["same"], mbs["cross"], mbs["cross"] / mbs["same"], mbs["same"] / mbs["direct"], mbs["cross"] / mbs["direct"]
    printf "RTT 64 B (2000 round trips, median of %s): direct p50 %d µs p99 %d µs; same node p50 %d µs p99 %d µs; cross node p50 %d µs p99 %d µs; cross/same p50 %.2f, p99 %.2f\n",
      n, p50["direct"], p99["direct"], p50["same"], p99["same"], p50["cross"], p99["cross"], p50["cross"] / p50["same"], p99["cross"] / p99["same"]
  }' "$work/hop.txt"
