#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and for trying berth's shared store on one machine: Debian's
# `postgresql` package (installed when missing), a fresh cluster in DIR run by an unprivileged
# user (the package's `postgres` user when run as root), listening on 127.0.0.1 only, on a free
# port. Its user `berth` (a superuser: tests make a database each) has a random password, so that
# no other local process (a model's code, say) can use it; the socket directory is private.
#
#   scripts/postgres.sh start DIR   starts it; prints `postgres://berth:PASSWORD@127.0.0.1:PORT/postgres`
#   scripts/postgres.sh stop DIR    stops it (fast shutdown) and removes DIR
#   scripts/postgres.sh halt DIR    stops the server at once (as a crash would), keeping its data
#   scripts/postgres.sh resume DIR  starts a halted server again on its port
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory for the cluster}

as_owner=()
if [[ $(id -u) -eq 0 ]]; then as_owner=(runuser -u postgres --); fi

bindir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -z $found ]]; then
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "== installing postgresql (Debian package) for the shared-store tests" >&2
    apt_pg() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
    apt_pg || { $sudo apt-get update -qq && apt_pg; }
    # The package starts a cluster of its own on port 5432; berth's tests do not use it.
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$found"
}

# Starts the cluster in DIR on $port.
serve() {
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c max_connections=300" start >/dev/null ||
    { cat "$dir/postgres.log" >&2; exit 1; }
}

case $action in
  start)
    bin=$(bindir)
    if [[ -f $dir/data/postmaster.pid ]]; then "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" stop -m fast >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 700 "$dir"
    password=$(python3 -c 'import secrets;print(secrets.token_hex(16))')
    (umask 077 && echo "$password" > "$dir/password")
    if [[ ${#as_owner[@]} -gt 0 ]]; then
      chown postgres "$dir" "$dir/password"
      "${as_owner[@]}" test -x "$dir" || { echo "postgres.sh: the postgres user cannot reach $dir (a parent directory is private)" >&2; exit 1; }
    fi
    port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U berth --pwfile="$dir/password" --auth-host=scram-sha-256 --auth-local=trust \
      -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$dir/password"
    echo "$port" > "$dir/port"
    serve
    echo "postgres://berth:$password@127.0.0.1:$port/postgres"
    ;;
  halt)
    bin=$(bindir)
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null
    ;;
  resume)
    bin=$(bindir)
    port=$(cat "$dir/port")
    serve
    ;;
  stop)
    bin=$(bindir)
    if [[ -f $dir/data/postmaster.pid ]]; then "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" stop -m fast >/dev/null || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: scripts/postgres.sh start|stop|halt|resume DIR" >&2
    exit 2
    ;;
esac
