#!/usr/bin/env bash
# `make bench`: every speed figure is a ratio against the direct path,
# measured on the same machine in the same run. Medians over several runs,
# because the machine is shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
COUNT=${BENCH_COUNT:-5}
work=$(mktemp -d -t warren-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# BENCH_SECTIONS picks what runs (default: all): ticket, ports, wing, turn, cluster.
SECTIONS=",${BENCH_SECTIONS:-ticket,ports,wing,turn,cluster},"
want() { [[ "$SECTIONS" == *",$1,"* ]]; }

# median_mbs NAME FILE: median MB/s of benchmark NAME in go test output FILE.
median_mbs() {
  grep -E "^$1(-[0-9]+)?[[:space:]]" "$2" | awk '{for (i=1;i<=NF;i++) if ($(i)=="MB/s") print $(i-1)}' |
    sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# median_metric NAME UNIT FILE: median of the custom metric UNIT (as in
# b.ReportMetric, e.g. p50-µs) of benchmark NAME in go test output FILE.
median_metric() {
  grep -E "^$1(-[0-9]+)?[[:space:]]" "$3" | awk -v u="$2" '{for (i=1;i<=NF;i++) if ($(i)==u) print $(i-1)}' |
    sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

if want ticket; then
echo "== ticket relay: PUT→GET through the relay vs a direct loopback TCP copy (go test, median of $COUNT)"
go test -run '^$' -bench 'BenchmarkRelay$|BenchmarkDirectTCP$' -benchtime 5x -count "$COUNT" ./internal/ticket/ | tee "$work/ticket.txt" | grep -E '^Benchmark' || true
relay=$(median_mbs BenchmarkRelay "$work/ticket.txt")
direct=$(median_mbs BenchmarkDirectTCP "$work/ticket.txt")
awk -v r="$relay" -v d="$direct" 'BEGIN {printf "ticket relay %.0f MB/s, direct TCP %.0f MB/s, ratio relay/direct %.2f\n", r, d, r/d}'

echo
echo "== ticket relay with the built relay-server and curl on both sides: 1 GiB, relay RSS sampled"
size=$((1 << 30))
head -c "$size" /dev/urandom >"$work/big.bin"
want=$(sha256sum <"$work/big.bin" | cut -d' ' -f1)
"$BIN/relay-server" --dev --listen 127.0.0.1:0 >"$work/relay.out" 2>"$work/relay.log" &
relay_pid=$!
pids+=("$relay_pid")
for _ in $(seq 100); do grep -q 'listening on' "$work/relay.out" && break; sleep 0.1; done
url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$work/relay.out" | head -1)
export WARREN_RELAY_SERVER_ADMIN_KEY
WARREN_RELAY_SERVER_ADMIN_KEY=$(grep -oE 'wadm_[A-Za-z0-9_-]+' "$work/relay.out" | head -1)
rss() { awk '/^VmRSS/ {print $2}' "/proc/$relay_pid/status"; }
base_rss=$(rss)
run_once() {
  local t
  t=$("$BIN/relay-server" tickets mint --server "$url" --workspace bench --source a --dest b --max-bytes 2GiB -o json | grep -oE 'rly_[A-Za-z0-9_-]+' | head -1)
  curl -sS --fail -o /dev/null -H "Authorization: Bearer $t" "$url/v1/relay/$t" &
  local get=$!
  local start end
  start=$(date +%s.%N)
  curl -sS --fail-with-body -T "$work/big.bin" -H "Authorization: Bearer $t" "$url/v1/relay/$t" >"$work/put.json"
  wait "$get"
  end=$(date +%s.%N)
  grep -q "\"sha256\":\"$want\"" "$work/put.json" || { echo "bench: digest mismatch: $(cat "$work/put.json")" >&2; exit 1; }
  awk -v s="$start" -v e="$end" -v n="$size" 'BEGIN {printf "%.1f\n", n / (e - s) / 1e6}'
}
peak=0
( while kill -0 "$relay_pid" 2>/dev/null; do rss; sleep 0.05; done ) >"$work/rss.txt" 2>/dev/null &
sampler=$!
pids+=("$sampler")
rates=()
for i in 1 2 3; do rates+=("$(run_once)"); done
kill "$sampler" 2>/dev/null || true
peak=$(sort -n "$work/rss.txt" | tail -1)
median_rate=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
echo "curl→relay-server→curl, 1 GiB x3: median $median_rate MB/s (runs: ${rates[*]}), digest verified"
echo "relay-server RSS: before $((base_rss / 1024)) MiB, peak during transfers $((peak / 1024)) MiB"

echo
echo "== 4 GiB streamed (chunked, curl -T -) through relay-server: relay RSS must stay flat"
four=$((4 << 30))
want4=$(head -c "$four" /dev/zero | sha256sum | cut -d' ' -f1)
t=$("$BIN/relay-server" tickets mint --server "$url" --workspace bench --source a --dest b --max-bytes 5GiB -o json | grep -oE 'rly_[A-Za-z0-9_-]+' | head -1)
curl -sS --fail -o /dev/null -w '%{size_download}\n' -H "Authorization: Bearer $t" "$url/v1/relay/$t" >"$work/get4.txt" &
get=$!
( while kill -0 "$relay_pid" 2>/dev/null; do rss; sleep 0.05; done ) >"$work/rss4.txt" 2>/dev/null &
sampler=$!
pids+=("$sampler")
start=$(date +%s.%N)
head -c "$four" /dev/zero | curl -sS --fail-with-body -T - -H "Authorization: Bearer $t" "$url/v1/relay/$t" >"$work/put4.json"
wait "$get"
end=$(date +%s.%N)
kill "$sampler" 2>/dev/null || true
grep -q "\"sha256\":\"$want4\"" "$work/put4.json" || { echo "bench: 4 GiB digest mismatch: $(cat "$work/put4.json")" >&2; exit 1; }
[ "$(cat "$work/get4.txt")" = "$four" ] || { echo "bench: GET received $(cat "$work/get4.txt") bytes" >&2; exit 1; }
peak4=$(sort -n "$work/rss4.txt" | tail -1)
awk -v s="$start" -v e="$end" -v n="$four" 'BEGIN {printf "4 GiB streamed in %.1f s (%.0f MB/s), digest and length verified\n", e - s, n / (e - s) / 1e6}'
echo "relay-server RSS: before $((base_rss / 1024)) MiB, peak during the 4 GiB transfer $((peak4 / 1024)) MiB"
fi

echo
if want ports; then
echo "== port tunnels and web forwarding: the built relay-server, tunnel-host and tunnel-client vs a direct loopback copy (scripts/benchtool)"
# Sizes: BENCH_BYTES (256M), BENCH_STREAMS (8), BENCH_ROUNDS (3), BENCH_BUF
# (64K), BENCH_RTT (2000), BENCH_NEWCONNS (200), BENCH_IDLE (1000),
# BENCH_WEB_BYTES (1G), BENCH_PATHS (v2ws,v2wss,v2e2e,v1,raw,proxy,web), BENCH_HOLD (0s).
go build -o "$work/benchtool" ./scripts/benchtool
BIN="$BIN" "$work/benchtool"
fi

echo
if want wing; then
echo "== wing: 100 MiB of PTY output and keystroke echo through the wing hub (E2E-encrypted) vs a local PTY (median of $COUNT)"
go test -run '^$' -bench 'BenchmarkPTYThroughput$|BenchmarkKeystrokeEcho$' -benchtime 3x -count "$COUNT" ./internal/wing/wingagent/ | tee "$work/wing.txt" | grep -E '^Benchmark' || true
echo "wing PTY output $(median_metric BenchmarkPTYThroughput wing-MB/s "$work/wing.txt") MB/s, local $(median_metric BenchmarkPTYThroughput direct-MB/s "$work/wing.txt") MB/s, ratio $(median_metric BenchmarkPTYThroughput x-direct "$work/wing.txt")"
echo "keystroke echo p50 $(median_metric BenchmarkKeystrokeEcho wing-p50-µs "$work/wing.txt") µs, local $(median_metric BenchmarkKeystrokeEcho direct-p50-µs "$work/wing.txt") µs, ratio $(median_metric BenchmarkKeystrokeEcho x-direct "$work/wing.txt")"
fi

# bench_wing_binaries: terminal sessions through the built relay-server and
# wing serve (not the in-process hub above): 100 MiB of output and keystroke
# round trips (p50/p99), each beside a local PTY in the same benchmark
# process (internal/wing/wingbench). The direct (WebRTC) path is another
# section's.
bench_wing_binaries() {
  local wd="$work/wingbin" wurl wadm wtok utok
  mkdir -p "$wd/home"
  "$BIN/relay-server" --dev --listen 127.0.0.1:0 >"$wd/relay.out" 2>"$wd/relay.log" &
  pids+=("$!")
  for _ in $(seq 100); do grep -q 'listening on' "$wd/relay.out" && break; sleep 0.1; done
  wurl=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$wd/relay.out" | head -1)
  wadm=$(grep -oE 'wadm_[A-Za-z0-9_-]+' "$wd/relay.out" | head -1)
  wtok=$(WARREN_RELAY_SERVER_ADMIN_KEY=$wadm "$BIN/relay-server" wings token --server "$wurl" --kind wing --user bench)
  utok=$(WARREN_RELAY_SERVER_ADMIN_KEY=$wadm "$BIN/relay-server" wings token --server "$wurl" --kind user --user bench)
  HOME="$wd/home" SHELL=/bin/sh WARREN_WING_SERVE_TOKEN=$wtok "$BIN/wing" serve --relay "$wurl" --wing-id benchwing \
    --identity-key "$wd/id.key" --state-dir "$wd/state" 2>"$wd/wing.log" &
  pids+=("$!")
  for _ in $(seq 100); do grep -q 'registered with the relay' "$wd/wing.log" && break; sleep 0.1; done
  grep -q 'registered with the relay' "$wd/wing.log" || { echo "bench: wing serve did not register: $(cat "$wd/wing.log")" >&2; return 1; }
  WARREN_BENCH_RELAY=$wurl WARREN_BENCH_USER_TOKEN=$utok WARREN_BENCH_WING=benchwing \
    go test -run '^$' -bench 'BenchmarkRelay(Output|Keystroke)$' -benchtime 3x -count "$COUNT" ./internal/wing/wingbench/ |
    tee "$wd/bench.txt" | grep -E '^Benchmark' || true
  local f="$wd/bench.txt"
  echo "terminal output via relay-server + wing serve: $(median_metric BenchmarkRelayOutput relay-MB/s "$f") MB/s, local PTY $(median_metric BenchmarkRelayOutput local-MB/s "$f") MB/s, ratio $(median_metric BenchmarkRelayOutput x-local "$f")"
  echo "keystroke round trip via relay-server + wing serve: p50 $(median_metric BenchmarkRelayKeystroke relay-p50-µs "$f") µs, p99 $(median_metric BenchmarkRelayKeystroke relay-p99-µs "$f") µs; local PTY p50 $(median_metric BenchmarkRelayKeystroke local-p50-µs "$f") µs, p99 $(median_metric BenchmarkRelayKeystroke local-p99-µs "$f") µs; p50 ratio $(median_metric BenchmarkRelayKeystroke p50-x-local "$f")"
}

if want wing; then
echo
echo "== wing sessions through the built binaries (relay-server + wing serve) vs a local PTY (median of $COUNT)"
bench_wing_binaries
fi

echo
if want wing; then
echo "== wing direct sessions: the same over a WebRTC DataChannel (pion, loopback host candidates) vs a local PTY (median of $COUNT)"
go test -run '^$' -bench 'BenchmarkDirectPTYThroughput$|BenchmarkDirectKeystrokeEcho$' -benchtime 3x -count "$COUNT" ./internal/wing/wingagent/ | tee "$work/wingp2p.txt" | grep -E '^Benchmark' || true
echo "direct-channel PTY output $(median_metric BenchmarkDirectPTYThroughput p2p-MB/s "$work/wingp2p.txt") MB/s, local $(median_metric BenchmarkDirectPTYThroughput direct-MB/s "$work/wingp2p.txt") MB/s, ratio $(median_metric BenchmarkDirectPTYThroughput x-direct "$work/wingp2p.txt")"
echo "direct-channel keystroke echo p50 $(median_metric BenchmarkDirectKeystrokeEcho p2p-p50-µs "$work/wingp2p.txt") µs p99 $(median_metric BenchmarkDirectKeystrokeEcho p2p-p99-µs "$work/wingp2p.txt") µs, local p50 $(median_metric BenchmarkDirectKeystrokeEcho direct-p50-µs "$work/wingp2p.txt") µs p99 $(median_metric BenchmarkDirectKeystrokeEcho direct-p99-µs "$work/wingp2p.txt") µs, ratio p50 $(median_metric BenchmarkDirectKeystrokeEcho x-direct "$work/wingp2p.txt")"
echo
fi

if want turn; then
echo "== TURN overlay: UDP through tunnel-client -> pion TURN -> tunnel-server -> echo vs direct UDP (go test, median of $COUNT)"
go test -run '^$' -bench 'BenchmarkUDPOverlay' -benchtime 2x -count "$COUNT" ./internal/turn/turnclient/ | tee "$work/turn.txt" | grep -E '^Benchmark' || true
for m in udp tcp; do
  n="BenchmarkUDPOverlay/turn-over-$m"
  echo "TURN over $m: $(median_mbs "$n" "$work/turn.txt") MB/s ($(median_metric "$n" pkt/s "$work/turn.txt") pkt/s) vs direct $(median_metric "$n" direct-MB/s "$work/turn.txt") MB/s, ratio $(median_metric "$n" x-direct "$work/turn.txt"); loss at 1000/2000 pps: $(median_metric "$n" loss-%@1000pps "$work/turn.txt")% / $(median_metric "$n" loss-%@2000pps "$work/turn.txt")%"
done

echo
echo "== TURN tcp overlay: one bulk TCP stream (KCP+smux in DTLS), PSK and compat profiles side by side, vs direct TCP (go test, median of $COUNT)"
go test -run '^$' -bench 'BenchmarkTCPOverlay' -benchtime 2x -count "$COUNT" ./internal/turn/turnclient/ | tee "$work/turntcp.txt" | grep -E '^Benchmark' || true
for v in pion-turn-over-udp coturn-turn-over-udp coturn-turn-over-tcp; do
  n="BenchmarkTCPOverlay/$v"
  grep -qE "^$n(-[0-9]+)?[[:space:]]" "$work/turntcp.txt" || { echo "$v: skipped (coturn not installed?)"; continue; }
  echo "$v: PSK $(median_metric "$n" psk-MB/s "$work/turntcp.txt") MB/s ($(median_metric "$n" psk-cpu-ms/MB "$work/turntcp.txt") CPU ms/MB), compat $(median_metric "$n" compat-MB/s "$work/turntcp.txt") MB/s ($(median_metric "$n" compat-cpu-ms/MB "$work/turntcp.txt") CPU ms/MB), psk/compat $(median_metric "$n" psk/compat "$work/turntcp.txt"); direct $(median_metric "$n" direct-MB/s "$work/turntcp.txt") MB/s, PSK ratio $(median_metric "$n" psk-x-direct "$work/turntcp.txt")"
done
fi

if want cluster; then
echo
echo "== relay cluster: a tunnel whose client and host sit on different nodes (node-to-node hop) vs the same node, PostgreSQL + HAProxy"
BIN=$BIN ./scripts/bench-cluster.sh
fi
