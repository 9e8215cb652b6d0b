#!/usr/bin/env bash
# The deployment benchmark (not a test): UpdateEndpoint → the new model on 100% of traffic, and
# production latency with and without a shadow variant. Needs the test venv (scripts/test.sh
# makes it). Usage: bench/deployment.sh [rounds, default 5]. Prints a Markdown report on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "bench: run scripts/test.sh first to set up .venv" >&2; exit 1; }
cargo build --release --locked --bin berth >&2
exec .venv/bin/python bench/deployment.py "${1:-5}"
