#!/usr/bin/env bash
# The scaling benchmark (not a test): serverless cold start of berth/onnx and the time for a
# scale-out instance to take traffic. Needs the test venv (scripts/test.sh makes it).
# Usage: bench/scaling.sh [rounds, default 10]. Prints a Markdown report on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "bench: run scripts/test.sh first to set up .venv" >&2; exit 1; }
cargo build --release --locked --bin berth >&2
exec .venv/bin/python bench/scaling.py "${1:-10}"
