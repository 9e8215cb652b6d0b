#!/usr/bin/env bash
# The benchmark command for multi-model endpoints (not a test): MODELS small ONNX models behind
# one berth/onnx endpoint on one instance — the cold first call of each, warm requests/s against
# a single-model endpoint of the same archive side by side (wrk, alternating rounds), and the
# worker's memory per loaded model. Runs a release berth on 127.0.0.1:0; stops what it started.
# Usage: bench/multi_model.sh [models, default 1000] [seconds per wrk run, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODELS=${1:-1000}
SECS=${2:-5}
command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install wrk)" >&2; exit 1; }
cargo build --release --locked --bin berth >&2
WORK=$(mktemp -d -t berth-mme-bench.XXXXXX)
"$ROOT/target/release/berth" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --file-root "$WORK" > "$WORK/berth.out" 2> "$WORK/berth.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q listening "$WORK/berth.out" 2>/dev/null && break; sleep 0.1; done
URL=$(awk '{print $4}' "$WORK/berth.out")
"$ROOT/.venv/bin/python" "$ROOT/bench/multi_model.py" "$URL" "$WORK" "$MODELS" "$SECS" "$PID"
