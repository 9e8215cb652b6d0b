#!/usr/bin/env bash
# The cluster benchmark (not a test): berth on a PostgreSQL store, one server beside three,
# writes/s and invocation req/s, failover times and weight propagation. Needs wrk, nginx and
# Debian's postgresql (scripts/postgres.sh installs it). Prints a Markdown report on stdout.
# Usage: bench/cluster.sh [seconds per measurement, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
for tool in wrk nginx psql python3; do command -v $tool >/dev/null || { echo "bench: $tool not found (apt-get install wrk nginx-light postgresql)" >&2; exit 1; }; done
cargo build --release --locked --bin berth >&2
source "$ROOT/bench/lib.sh"
bench_workspace cluster
# The cluster's owner (the unprivileged postgres user, when run as root) must reach its directory.
chmod 755 "$WORK"
ADMIN=$(bash scripts/postgres.sh start "$WORK/postgres")
trap 'bash "$ROOT/scripts/postgres.sh" stop "$WORK/postgres"; rm -rf "$WORK"' EXIT
echo "$("$ROOT/target/release/berth" --version 2>/dev/null || echo berth), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
python3 bench/cluster.py "$ROOT/target/release/berth" "$ADMIN" "$WORK" "$SECS"
