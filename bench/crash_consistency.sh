#!/usr/bin/env bash
# Crash consistency: 20 `kill -9` restarts of berth (or $1) while a client writes, then a check
# that every acknowledged write survived. Prints one JSON line; see RELIABILITY.md.
# Usage: bench/crash_consistency.sh [KILLS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
SEED=${2:-1}
BERTH_BIN=${BERTH_BIN:-target/release/berth}
if [[ ! -x $BERTH_BIN ]]; then
  cargo build --release --locked --bin berth
fi
[[ -x .venv/bin/python ]] || { echo "run scripts/test.sh once first: it sets up .venv" >&2; exit 2; }
exec .venv/bin/python bench/crash_consistency.py --berth "$BERTH_BIN" --kills "$KILLS" --seed "$SEED"
