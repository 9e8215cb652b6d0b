#!/usr/bin/env bash
# The Model Monitor benchmark (not a test): baselining and one execution over ROWS captured rows
# in berth, beside pandas on the same data. Needs the test venv (scripts/test.sh makes it).
# Usage: bench/model_monitor.sh [rows, default 1000000]. Prints a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "bench: run scripts/test.sh first to set up .venv" >&2; exit 1; }
cargo build --release --locked --bin berth >&2
exec .venv/bin/python bench/model_monitor.py "${1:-1000000}"
