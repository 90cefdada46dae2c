# Sourced by scripts/cluster-demo.sh and scripts/bench-cluster.sh: a
# throwaway PostgreSQL on loopback in a directory of the caller's.

# pg_find sets pgbin to the newest server binaries; it fails when initdb,
# pg_ctl or createdb is missing (apt-get install postgresql).
pg_find() {
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$pgbin" ] || pgbin=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
  [ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ] && [ -x "$pgbin/createdb" ]
}

# PostgreSQL refuses to run as root: as root it runs as the postgres user
# (or nobody) with a data directory that user owns.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  pguser=postgres
  id "$pguser" >/dev/null 2>&1 || pguser=nobody
  as_pg=(runuser -u "$pguser" --)
fi

# pg_start DIR PORT: initdb in DIR/pg with a random password for user
# warren, start it on 127.0.0.1:PORT, create database warren and write its
# DSN to DIR/dsn. DIR must be readable by that user (mode 755).
pg_start() {
  local dir=$1 port=$2
  mkdir "$dir/pg"
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/pgpass"
  [ ${#as_pg[@]} -gt 0 ] && chown "$pguser" "$dir/pg" "$dir/pgpass"
  "${as_pg[@]}" "$pgbin/initdb" -D "$dir/pg" -U warren --auth=scram-sha-256 --pwfile="$dir/pgpass" >"$dir/initdb.log"
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/pg -c fsync=off" start >/dev/null
  PGPASSWORD=$(cat "$dir/pgpass") "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U warren warren
  echo "postgres://warren:$(cat "$dir/pgpass")@127.0.0.1:$port/warren?sslmode=disable" >"$dir/dsn"
}

# pg_stop DIR: stop the server pg_start started there, if it runs.
pg_stop() {
  [ -f "$1/pg/postmaster.pid" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$1/pg" -m immediate stop >/dev/null 2>&1 || true
}
