#!/usr/bin/env bash
# berth's Python runtime beside its peers (not a test): the same scikit-learn iris
# LogisticRegression (model.joblib, scikit-learn 1.9.1 everywhere) served by
#   berth    AWS's scikit-learn image URI (tag 1.9-1) through berth's Python runtime, the default
#            handlers, ml.m5.large (2 Python processes), called through berth's runtime API;
#   gunicorn the stack AWS's scikit-learn container serves with: Flask under gunicorn, 2 sync
#            workers, the inference toolkit's default handlers (bench/sklearn_flask_app.py; AWS
#            also puts nginx in front, left out here);
#   mlserver MLServer 1.7 with mlserver-sklearn (V2 REST, parallel_workers 0).
# wrk at c=1 and c=16: req/s, p50, p99, and RSS of each instance's processes after the load.
# Also CreateEndpoint → InService with the environment cache cold (a new data directory; pip's
# own download cache stays warm) and warm. Needs wrk and .venv (scripts/test.sh); makes
# .venv-gunicorn and .venv-mlserver itself. Usage: bench/python_runtime.sh [seconds, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
IMAGE=683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-1-cpu-py3
command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install wrk)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || { echo "bench: run scripts/test.sh once to make .venv" >&2; exit 1; }
for v in gunicorn mlserver; do
  if [[ ! -x .venv-$v/bin/$v ]]; then
    python3 -m venv .venv-$v
    .venv-$v/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-$v.txt
  fi
done
cargo build --release --locked --bin berth >&2

source "$ROOT/bench/lib.sh"
bench_workspace python
ms() { date +%s%3N; }

.venv/bin/python bench/make_iris_models.py "$WORK/model" >/dev/null
deploy() { # URL NAME: prints milliseconds from CreateEndpoint to InService
  local SM="python3 $ROOT/bench/sagemaker_call.py $1" t0
  $SM CreateModel "{\"ModelName\":\"$2\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/bench\",\"PrimaryContainer\":{\"Image\":\"$IMAGE\",\"ModelDataUrl\":\"file://$WORK/model/model.joblib\"}}" >/dev/null
  $SM CreateEndpointConfig "{\"EndpointConfigName\":\"$2\",\"ProductionVariants\":[{\"VariantName\":\"AllTraffic\",\"ModelName\":\"$2\",\"InitialInstanceCount\":1,\"InstanceType\":\"ml.m5.large\"}]}" >/dev/null
  t0=$(ms)
  $SM CreateEndpoint "{\"EndpointName\":\"$2\",\"EndpointConfigName\":\"$2\"}" >/dev/null
  wait_for "$SM DescribeEndpoint '{\"EndpointName\":\"$2\"}' | grep -q InService"
  echo $(( $(ms) - t0 )); }

"$ROOT/target/release/berth" serve --listen 127.0.0.1:0 --data-dir "$WORK/berth" --file-root "$WORK/model" --python-runtime on --docker off \
  > "$WORK/berth.out" 2> "$WORK/berth.log" &
BERTH_PID=$!; PIDS+=($BERTH_PID)
wait_for "grep -q listening '$WORK/berth.out'"
URL=$(awk '{print $4}' "$WORK/berth.out")
COLD=$(deploy "$URL" cold)
WARM=$(deploy "$URL" iris)
INSTANCE=$(pgrep -P "$BERTH_PID" -f "worker python serve" | tail -1)

GUNI_PORT=$(free_port)
(cd "$ROOT/bench" && MODEL_PATH="$WORK/model/model.joblib" exec "$ROOT/.venv-gunicorn/bin/gunicorn" -w 2 -k sync -b "127.0.0.1:$GUNI_PORT" sklearn_flask_app:app > "$WORK/gunicorn.log" 2>&1) &
GUNI_PID=$!; PIDS+=($GUNI_PID)
wait_for "curl -sf http://127.0.0.1:$GUNI_PORT/ping -o /dev/null"

start_mlserver

wrk_post "$WORK/csv.lua" "5.1,3.5,1.4,0.2" text/csv
# Every server answers the row with class 0 before anything is timed (MLServer checked as it started).
curl -sf "$URL/endpoints/iris/invocations" -H 'Content-Type: text/csv' -d '5.1,3.5,1.4,0.2' | grep -q '^\[0\]$'
curl -sf "http://127.0.0.1:$GUNI_PORT/invocations" -H 'Content-Type: text/csv' -d '5.1,3.5,1.4,0.2' | grep -q '^\[0\]$'

echo "$("$ROOT/target/release/berth" --version), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| server | c | req/s | p50 | p99 | RSS of the instance after (MB) |"
echo "|---|---|---|---|---|---|"
for round in 1 2; do
  for name in berth gunicorn mlserver; do
    case $name in
      berth) target="$URL/endpoints/iris/invocations"; pid=$INSTANCE; lua=csv ;;
      gunicorn) target="http://127.0.0.1:$GUNI_PORT/invocations"; pid=$GUNI_PID; lua=csv ;;
      mlserver) target="http://127.0.0.1:$MLS_PORT/v2/models/iris/infer"; pid=$MLS_PID; lua=mlserver ;;
    esac
    wrk -t1 -c4 -d2s -s "$WORK/$lua.lua" "$target" > /dev/null
    for c in 1 16; do
      out=$(wrk -t$(( c == 1 ? 1 : 2 )) -c$c -d"${SECS}s" --latency -s "$WORK/$lua.lua" "$target")
      errors=$(grep -h "Non-2xx\|Socket errors" <<<"$out" || true)
      echo "| $name (round $round) | $c | $(awk '/Requests\/sec/{print $2}' <<<"$out") | $(awk '$1=="50%"{print $2}' <<<"$out") | $(awk '$1=="99%"{print $2}' <<<"$out") | $(rss_tree_mb "$pid") |${errors:+ $errors}"
    done
  done
done
echo
echo "CreateEndpoint → InService: environment cache cold $COLD ms (pip's download cache warm), warm $WARM ms."
