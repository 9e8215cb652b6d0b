#!/usr/bin/env bash
# Container images (not a test): CreateEndpoint → InService for a small image (an nginx built
# from this machine's files, bench/nginx_image.py) beside the same nginx as an `exec:` program,
# then the invocation cost through one berth to each, in alternating wrk rounds (p50/p99 at c=1,
# req/s at c=16, berth's CPU per request). Needs a running Docker engine and the test venv
# (scripts/test.sh makes both). Usage: bench/docker.sh [rounds, default 10] [seconds per wrk run, default 5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-10}
SECS=${2:-5}
BIN=${BERTH_BIN:-$ROOT/target/release/berth}
PY=$ROOT/.venv/bin/python
[[ -x $BIN ]] || cargo build --release --locked --bin berth
IMAGE=$($PY "$ROOT/bench/nginx_image.py" 123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-nginx:1)
W=$(mktemp -d)
$BIN serve --listen 127.0.0.1:0 --data-dir $W/data --exec-root "$ROOT/bench" > $W/out 2>$W/log &
BERTH=$!
trap 'kill $BERTH 2>/dev/null; wait $BERTH 2>/dev/null; rm -rf $W' EXIT
for _ in $(seq 50); do grep -q listening $W/out 2>/dev/null && break; sleep 0.1; done
URL=$(awk '{print $4}' $W/out)
echo "$($BIN --version 2>/dev/null || echo berth), $(nproc) cores, $(date -u +%Y-%m-%d)"
$PY "$ROOT/bench/docker_startup.py" "$URL" "$IMAGE" "$ROUNDS"
source "$ROOT/bench/lib.sh"
wrk_post $W/post.lua "1,2" text/csv
declare -a URLS PIDS
for ep in image proc; do
  code=$(wrk -t1 -c1 -d1s -s $W/post.lua "$URL/endpoints/$ep/invocations" | awk '/Non-2xx/{print "non-2xx"}')
  [[ -z $code ]] || { echo "endpoint $ep did not answer 200" >&2; exit 1; }
  URLS+=("$URL/endpoints/$ep/invocations")
  PIDS+=($BERTH)
done
alternate $SECS "container image" "exec: process " $W/post.lua $W/post.lua
