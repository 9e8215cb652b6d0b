#!/usr/bin/env bash
# Instructions per routed request of a berth binary, counted by callgrind (repeatable where
# timings are not): berth runs under valgrind in front of the nginx container; after a warm-up,
# instrumentation is switched on for a wrk run at c=1, and the instructions of that window
# (background work included) are divided by the requests wrk completed.
# Usage: bench/callgrind.sh BERTH_BINARY [seconds, default 6]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:?berth binary}; SECS=${2:-6}
W=$(mktemp -d)
printf 'wrk.method="POST"\nwrk.body="1,2"\n' > $W/post.lua
# Workers start unsandboxed: valgrind does not implement Landlock's system calls, so a sandboxed
# worker would fail to start under it (ENOSYS). The sandbox is set up per worker start, never
# per request, so the hop counted here is the same.
env ${BERTH_BENCH_ENV:-} BERTH_WORKER_SANDBOX=off BERTH_EXEC_ROOTS="$ROOT/bench" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$W/cg.out \
  "$BIN" serve --listen 127.0.0.1:0 --data-dir $W/data > $W/out 2> $W/err &
VG=$!
for _ in $(seq 300); do grep -q listening $W/out 2>/dev/null && break; sleep 0.1; done
URL=$(awk '{print $4}' $W/out)
SM="python3 $ROOT/bench/sagemaker_call.py $URL"
$SM CreateModel "{\"ModelName\":\"nginx\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/bench\",\"PrimaryContainer\":{\"Image\":\"exec:$ROOT/bench/nginx_container.sh\"}}" >/dev/null
$SM CreateEndpointConfig '{"EndpointConfigName":"nginx","ProductionVariants":[{"VariantName":"AllTraffic","ModelName":"nginx","InitialInstanceCount":1,"InstanceType":"ml.m5.large"}]}' > /dev/null
$SM CreateEndpoint '{"EndpointName":"nginx","EndpointConfigName":"nginx"}' >/dev/null
for _ in $(seq 300); do [[ $($SM DescribeEndpoint '{"EndpointName":"nginx"}' | grep -c InService) == 1 ]] && break; sleep 0.2; done
[[ $($SM DescribeEndpoint '{"EndpointName":"nginx"}' | grep -c InService) == 1 ]] || { echo "the endpoint is not InService:" >&2; $SM DescribeEndpoint '{"EndpointName":"nginx"}' >&2; kill $VG; exit 1; }
wrk -t1 -c1 -d3s -s $W/post.lua "$URL/endpoints/nginx/invocations" > /dev/null   # warm-up
callgrind_control -i on $VG > /dev/null
n=$(wrk -t1 -c1 -d${SECS}s -s $W/post.lua "$URL/endpoints/nginx/invocations" | awk '/requests in/{print $1}')
callgrind_control -i off $VG > /dev/null
callgrind_control -d $VG > /dev/null
kill $VG; wait $VG 2>/dev/null || true
total=$(cat $W/cg.out* | awk '/^totals:/{s+=$2} END{print s}')
echo "requests $n instructions $total per-request $((total / n))"
[[ -n ${KEEP:-} ]] && echo "kept $W" || rm -rf $W
