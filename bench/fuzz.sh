#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for SECONDS each (default 120) with libFuzzer, starting
# from the seed corpora in fuzz/seeds/, and prints a Markdown table of executions, corpus size
# and findings for RELIABILITY.md. Not part of CI. Needs cargo-fuzz (`cargo install cargo-fuzz`);
# the stable toolchain is enough with RUSTC_BOOTSTRAP=1 and no sanitizer (`-s none`).
# Usage: bench/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-120}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(aws_json query_form cbor sigv4 onnx_codecs archive invocation_head capture_line alarm_evaluation)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s none >&2
echo "| target | seconds | executions | exec/s | corpus | findings |"
echo "|---|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  set +e
  cargo fuzz run -O -s none "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1
  status=$?
  set -e
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
  [[ -n $runs ]] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  corpus=$(find "corpus/$t" -type f | wc -l)
  findings=$(find "artifacts/$t" -type f | wc -l)
  [[ $status -eq 0 ]] || findings="$findings (exit $status: $(grep -m1 -E 'panicked|ERROR|deadly' "$log" | cut -c1-120))"
  echo "| $t | $SECONDS_EACH | ${runs:-?} | $(( ${runs:-0} / SECONDS_EACH )) | $corpus | $findings |"
  rm -f "$log"
done
