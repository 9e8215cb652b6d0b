#!/usr/bin/env bash
# berth's load generator beside wrk (not a test): closed loop against wrk on the same endpoint,
# then open loop at half wrk's rate; req/s, latency and the generator's CPU per request. Needs the
# test venv (scripts/test.sh makes it) and wrk. Usage: bench/loadgen.sh [rounds] [seconds].
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "bench: run scripts/test.sh first to set up .venv" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench: needs wrk (Debian's wrk package)" >&2; exit 1; }
cargo build --release --locked --bin berth >&2
exec .venv/bin/python bench/loadgen.py "${1:-3}" "${2:-10}"
