#!/usr/bin/env bash
# The benchmark command for the runtime beyond InvokeEndpoint (not a test): batch transform
# records/s against real-time calls, streaming time to first part against the container's own,
# async overhead against InvokeEndpoint. Runs a release berth on 127.0.0.1:0 with the echo test
# container; stops what it started. Usage: bench/runtime_surface.sh [records, default 2000]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RECORDS=${1:-2000}
cargo build --release --locked --bin berth >&2
WORK=$(mktemp -d -t berth-runtime-bench.XXXXXX)
"$ROOT/target/release/berth" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --exec-root "$ROOT/tests/containers" --file-root "$WORK" > "$WORK/berth.out" 2> "$WORK/berth.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q listening "$WORK/berth.out" 2>/dev/null && break; sleep 0.1; done
URL=$(awk '{print $4}' "$WORK/berth.out")
"$ROOT/.venv/bin/python" "$ROOT/bench/runtime_surface.py" "$URL" "$WORK" "$RECORDS"
