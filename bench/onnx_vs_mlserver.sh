#!/usr/bin/env bash
# The benchmark command for the built-in ONNX runtime: the same iris LogisticRegression served by
# berth (`berth/onnx`, through the SageMaker runtime API) and by MLServer 1.7 with
# mlserver-sklearn (V2 REST, parallel_workers 0, its fastest setting here), side by side in one
# run with wrk: requests/s, p50 and p99 at concurrency 1 and 16, and RSS after the load.
# Needs wrk and the test venv (.venv, made by scripts/test.sh); makes .venv-mlserver itself.
# Usage: bench/onnx_vs_mlserver.sh [seconds per wrk run, default 10]. Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install wrk)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || { echo "bench: run scripts/test.sh once to make .venv" >&2; exit 1; }
if [[ ! -x .venv-mlserver/bin/mlserver ]]; then
  python3 -m venv .venv-mlserver
  .venv-mlserver/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-mlserver.txt
fi
cargo build --release --locked --bin berth >&2

source "$ROOT/bench/lib.sh"
bench_workspace onnx

.venv/bin/python bench/make_iris_models.py "$WORK/model"

# berth with berth/onnx (ONNX Runtime from the test venv's onnxruntime package).
PATH="$ROOT/.venv/bin:$PATH" "$ROOT/target/release/berth" serve --listen 127.0.0.1:0 --data-dir "$WORK/berth" --file-root "$WORK/model" > "$WORK/berth.out" 2> "$WORK/berth.log" &
BERTH_PID=$!; PIDS+=($BERTH_PID)
wait_for "grep -q listening '$WORK/berth.out'"
URL=$(awk '{print $4}' "$WORK/berth.out")
SM="python3 $ROOT/bench/sagemaker_call.py $URL"
$SM CreateModel "{\"ModelName\":\"iris\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/bench\",\"PrimaryContainer\":{\"Image\":\"berth/onnx\",\"ModelDataUrl\":\"file://$WORK/model/model.onnx\"}}" >/dev/null
$SM CreateEndpointConfig '{"EndpointConfigName":"iris","ProductionVariants":[{"VariantName":"AllTraffic","ModelName":"iris","InitialInstanceCount":1,"InstanceType":"ml.m5.large"}]}' >/dev/null
$SM CreateEndpoint '{"EndpointName":"iris","EndpointConfigName":"iris"}' >/dev/null
wait_for "$SM DescribeEndpoint '{\"EndpointName\":\"iris\"}' | grep -q InService"

# MLServer with the scikit-learn original.
start_mlserver

wrk_post "$WORK/berth.lua" "5.1,3.5,1.4,0.2" text/csv
# Both answer the same row correctly before anything is timed (MLServer checked as it started).
curl -sf "$URL/endpoints/iris/invocations" -H 'Content-Type: text/csv' -d '5.1,3.5,1.4,0.2' | grep -q '"label":0'

echo "| server | c | req/s | p50 | p99 | RSS after (MB) |"
echo "|---|---|---|---|---|---|"
for name in berth mlserver; do
  if [[ $name == berth ]]; then target="$URL/endpoints/iris/invocations"; pid=$BERTH_PID; else target="http://127.0.0.1:$MLS_PORT/v2/models/iris/infer"; pid=$MLS_PID; fi
  wrk -t1 -c4 -d2s -s "$WORK/$name.lua" "$target" > /dev/null
  for c in 1 16; do
    threads=$(( c == 1 ? 1 : 2 ))
    out=$(wrk -t$threads -c$c -d"${SECS}s" --latency -s "$WORK/$name.lua" "$target")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    p50=$(awk '$1=="50%"{print $2}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    errors=$(grep -h "Non-2xx\|Socket errors" <<<"$out" || true)
    echo "| $name | $c | $rps | $p50 | $p99 | $(rss_tree_mb "$pid") |${errors:+ $errors}"
  done
done
