#!/usr/bin/env bash
# The warren cluster demo: PostgreSQL in a temporary directory, three
# relay-server nodes and HAProxy on loopback, then a tunnel, a wing session
# and a ticket whose two ends sit on different nodes. Run via
# `make demo-cluster`. Needs the PostgreSQL server binaries (initdb, pg_ctl;
# Debian: apt-get install postgresql), haproxy, curl and python3.
#
# Ports: free loopback ports picked at start (override by env: PG_PORT,
# LB_PORT, NODE_PORTS="a b c", APP_PORT, LOCAL_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}

for tool in haproxy curl python3; do
  command -v "$tool" >/dev/null || { echo "cluster-demo: $tool is required (apt-get install $tool)" >&2; exit 2; }
done
. "$(dirname "$0")/lib/pg.sh"
pg_find || { echo "cluster-demo: initdb and pg_ctl are required (apt-get install postgresql)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PG_PORT=${PG_PORT:-$(free_port)}
LB_PORT=${LB_PORT:-$(free_port)}
read -r -a node_ports <<<"${NODE_PORTS:-$(free_port) $(free_port) $(free_port)}"
APP_PORT=${APP_PORT:-$(free_port)}
LOCAL_PORT=${LOCAL_PORT:-$(free_port)}

work=$(mktemp -d -t warren-cluster-XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# wait_for FILE REGEX: wait up to 30 s for a line matching REGEX, print the match.
wait_for() {
  for _ in $(seq 300); do
    if m=$(grep -m1 -oE "$2" "$1" 2>/dev/null); then echo "$m"; return 0; fi
    sleep 0.1
  done
  echo "cluster-demo: timed out waiting for /$2/ in $1:" >&2; cat "$1" >&2; return 1
}
# wait_ready URL: wait up to 30 s for URL/readyz to answer 200.
wait_ready() {
  for _ in $(seq 300); do
    curl -fsS "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "cluster-demo: $1 never became ready" >&2; return 1
}

step "PostgreSQL in $work/pg (initdb, pg_ctl) on 127.0.0.1:$PG_PORT"
pg_start "$work" "$PG_PORT"
chmod 600 "$work/dsn"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/cluster.secret"
chmod 600 "$work/cluster.secret"

lb=http://127.0.0.1:$LB_PORT
export WARREN_RELAY_SERVER_ADMIN_KEY=wadm_cluster_demo_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
step "three relay-server nodes sharing the database (public_url $lb, the load balancer)"
nodes=()
i=0
for id in node-a node-b node-c; do
  port=${node_ports[$i]}
  i=$((i + 1))
  url=http://127.0.0.1:$port
  nodes+=("$id=$url")
  WARREN_RELAY_SERVER_STORE_DSN_FILE=$work/dsn \
  WARREN_RELAY_SERVER_CLUSTER_SECRET_FILE=$work/cluster.secret \
  WARREN_RELAY_SERVER_CLUSTER_NODE_ID=$id \
  WARREN_RELAY_SERVER_CLUSTER_INTERNAL_URL=$url \
  WARREN_RELAY_SERVER_CLUSTER_PUBLIC_URL=$url \
  WARREN_RELAY_SERVER_PUBLIC_URL=$lb \
    "$BIN/relay-server" --listen "127.0.0.1:$port" --data-dir "$work/$id" --log-format json >"$work/$id.log" 2>&1 &
  pids+=($!)
  echo "$id at $url"
done
node_url() { for n in "${nodes[@]}"; do [ "${n%%=*}" = "$1" ] && echo "${n#*=}"; done; }
for n in "${nodes[@]}"; do wait_ready "${n#*=}"; done

step "HAProxy on $lb in front of them (WebSockets: timeout tunnel; health: /readyz)"
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    # upgraded WebSockets (tunnel hosts and clients, wings, terminals) and
    # long ticket transfers: idle up to an hour
    timeout tunnel 1h
    timeout http-request 10s
    retries 3
    option redispatch
frontend relay
    bind 127.0.0.1:$LB_PORT
    default_backend relays
backend relays
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
$(for n in "${nodes[@]}"; do u=${n#*=}; echo "    server ${n%%=*} ${u#http://} check"; done)
EOF
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
wait_ready "$lb"
"$BIN/relay-server" cluster status --server "$lb"

step "a tunnel: tunnel-host through the load balancer, tunnel-client on another node"
mkdir "$work/www" && head -c $((16 << 20)) /dev/urandom >"$work/www/blob.bin"
app_port=$APP_PORT
(cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 "$app_port" >"$work/app.log" 2>&1) &
pids+=($!)
"$BIN/relay-server" keys create --server "$lb" --name demo --scope tunnels -o json >"$work/key.json"
python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' <"$work/key.json" >"$work/api.key"
"$BIN/relay-server" tunnels create demo --server "$lb" >/dev/null
WARREN_TUNNEL_HOST_API_KEY_FILE=$work/api.key WARREN_TUNNEL_HOST_CONTROL_SOCKET=$work/host.sock \
  "$BIN/tunnel-host" --relay "$lb" --tunnel demo --port "$app_port/http" >"$work/host.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  WARREN_TUNNEL_HOST_CONTROL_SOCKET=$work/host.sock "$BIN/tunnel-host" --tunnel demo status -o json 2>/dev/null | grep -q '"connected"' && break
  sleep 0.1
done
sleep 0.5
"$BIN/relay-server" cluster status --server "$lb"
owner=$("$BIN/relay-server" cluster status --server "$lb" -o json | python3 -c 'import json,sys; print(next(n["id"] for n in json.load(sys.stdin)["nodes"] if n["holds"]["endpoints"]))')
other=node-a; [ "$owner" = node-a ] && other=node-b
echo "the host is on $owner; the client goes to $other"
local_port=$LOCAL_PORT
WARREN_TUNNEL_CLIENT_API_KEY_FILE=$work/api.key \
  "$BIN/tunnel-client" connect demo --relay "$(node_url "$other")" -o json --port-map "$app_port:$local_port" >"$work/client.out" 2>"$work/client.log" &
pids+=($!)
wait_for "$work/client.out" '"event":"ready"' >/dev/null
curl -fsS -o "$work/blob.got" "http://127.0.0.1:$local_port/blob.bin"
echo "sent     sha256 $(sha256sum <"$work/www/blob.bin" | cut -d' ' -f1)"
echo "received sha256 $(sha256sum <"$work/blob.got" | cut -d' ' -f1)"
cmp -s "$work/www/blob.bin" "$work/blob.got" || { echo "cluster-demo: the file changed on the way" >&2; exit 1; }
tok=$("$BIN/relay-server" tunnels token demo --scope connect --server "$lb")
for n in "${nodes[@]}"; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Tunnel $tok" "${n#*=}/tunnels/demo/ports/$app_port/blob.bin")
  echo "web forwarding via ${n%%=*}: HTTP $code"
  [ "$code" = 200 ] || exit 1
done

step "a wing on $owner, attached through $other"
wing_tok=$("$BIN/relay-server" wings token --server "$lb" --kind wing --user alice)
user_tok=$("$BIN/relay-server" wings token --server "$lb" --kind user --user alice)
WARREN_WING_SERVE_TOKEN=$wing_tok SHELL=/bin/sh \
  "$BIN/wing" serve --relay "$(node_url "$owner")" --wing-id demo-box --identity-key "$work/wing.key" >"$work/wing.log" 2>&1 &
pids+=($!)
wait_for "$work/wing.log" 'registered with the relay' >/dev/null
HOME=$work WARREN_WING_USER_TOKEN=$user_tok "$BIN/wing" attach --relay "$(node_url "$other")" --command 'echo hello from $(hostname) via the cluster' demo-box

step "a ticket: PUT on $owner, GET on $other"
head -c $((32 << 20)) /dev/urandom >"$work/payload.bin"
ticket=$("$BIN/relay-server" tickets mint --server "$lb" --workspace demo --source a --dest b -o json | grep -oE 'rly_[A-Za-z0-9_-]+' | head -1)
curl -sS --fail -o "$work/received.bin" -H "Authorization: Bearer $ticket" "$(node_url "$other")/v1/relay/$ticket" &
get=$!
curl -sS --fail-with-body -T "$work/payload.bin" -H "Authorization: Bearer $ticket" "$(node_url "$owner")/v1/relay/$ticket"; echo
wait "$get"
cmp -s "$work/payload.bin" "$work/received.bin" || { echo "cluster-demo: the ticket's bytes changed on the way" >&2; exit 1; }
echo "ticket: $(stat -c %s "$work/received.bin") bytes, same sha256 on both ends"

step "cluster status, and the hops each node carried"
"$BIN/relay-server" cluster status --server "$lb"
for n in "${nodes[@]}"; do
  echo "${n%%=*}: $(curl -fsS "${n#*=}/metrics" | grep -E '^warren_cluster_hops_total' | awk '$2 > 0' | tr '\n' ' ')"
done
echo
echo "cluster demo: OK"
