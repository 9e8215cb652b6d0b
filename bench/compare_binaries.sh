#!/usr/bin/env bash
# Two berth binaries side by side on the same kind of near-zero-cost container (nginx), in
# alternating rounds, to see whether a change costs anything on the request path.
# Usage: bench/compare_binaries.sh OLD_BERTH NEW_BERTH [seconds per wrk run, default 5]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:?old berth binary}; NEW=${2:?new berth binary}; SECS=${3:-5}
W=$(mktemp -d)
printf 'wrk.method="POST"\nwrk.body="1,2"\n' > $W/post.lua
declare -a URLS PIDS
i=0
for bin in "$OLD" "$NEW"; do
  BERTH_EXEC_ROOTS="$ROOT/bench" $bin serve --listen 127.0.0.1:0 --data-dir $W/d$i > $W/out$i 2>/dev/null &
  PIDS+=($!)
  for _ in $(seq 50); do grep -q listening $W/out$i 2>/dev/null && break; sleep 0.1; done
  URL=$(awk '{print $4}' $W/out$i)
  SM="python3 $ROOT/bench/sagemaker_call.py $URL"
  $SM CreateModel "{\"ModelName\":\"nginx\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/bench\",\"PrimaryContainer\":{\"Image\":\"exec:$ROOT/bench/nginx_container.sh\"}}" >/dev/null
  $SM CreateEndpointConfig '{"EndpointConfigName":"nginx","ProductionVariants":[{"VariantName":"AllTraffic","ModelName":"nginx","InitialInstanceCount":1,"InstanceType":"ml.m5.large"}]}' > /dev/null
  $SM CreateEndpoint '{"EndpointName":"nginx","EndpointConfigName":"nginx"}' >/dev/null
  sleep 1
  URLS+=("$URL/endpoints/nginx/invocations")
  i=$((i+1))
done
source "$ROOT/bench/lib.sh"
alternate $SECS old new $W/post.lua $W/post.lua
for p in "${PIDS[@]}"; do kill $p; done
wait 2>/dev/null || true
rm -rf $W
