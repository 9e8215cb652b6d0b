#!/usr/bin/env bash
# The benchmark command (not a test): berth's router cost beside an nginx reverse-proxy hop, and
# the time from CreateEndpoint to InService. Needs wrk and nginx (apt-get install wrk nginx-light).
# Usage: bench/run.sh [seconds per wrk run, default 10] [rounds, default 1]. Prints a Markdown
# report on stdout; with several rounds the three paths are measured in turn in each round, so
# that all see the same noise.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
ROUNDS=${2:-1}
for tool in wrk nginx python3; do command -v $tool >/dev/null || { echo "bench: $tool not found (apt-get install wrk nginx-light)" >&2; exit 1; }; done
cargo build --release --locked --bin berth >&2

source "$ROOT/bench/lib.sh"
bench_workspace router

env ${BERTH_BENCH_ENV:-} "$ROOT/target/release/berth" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --exec-root "$ROOT/bench" --exec-root "$ROOT/tests/containers" > "$WORK/berth.out" 2> "$WORK/berth.log" &
PIDS+=($!)
wait_for "grep -q listening '$WORK/berth.out'"
URL=$(awk '{print $4}' "$WORK/berth.out")
SM="python3 $ROOT/bench/sagemaker_call.py $URL"

# The container under test, started by berth; it tells us its port so we can call it directly.
$SM CreateModel "{\"ModelName\":\"nginx\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/bench\",
  \"PrimaryContainer\":{\"Image\":\"exec:$ROOT/bench/nginx_container.sh\"}}" >/dev/null
$SM CreateEndpointConfig '{"EndpointConfigName":"nginx","ProductionVariants":[{"VariantName":"AllTraffic","ModelName":"nginx","InitialInstanceCount":1,"InstanceType":"ml.m5.large"}]}' >/dev/null
$SM CreateEndpoint '{"EndpointName":"nginx","EndpointConfigName":"nginx"}' >/dev/null
wait_for "$SM DescribeEndpoint '{\"EndpointName\":\"nginx\"}' | grep -q InService"
# The container's own port, from its instance log (a sandboxed worker cannot write outside its
# scratch directory, so it cannot tell the benchmark itself).
WORKER_PORT=$(sed -n 's/.*---- berth: starting instance .* on port \([0-9]*\) ----.*/\1/p' "$WORK"/data/logs/nginx/*/*.log | tail -1)

# The reference hop: an nginx reverse proxy with keep-alive to the same container. Its temp
# paths get their own directory: nginx run as root hands them to its worker user, and $WORK
# must stay searchable by berth's workers (under a root berth they are root without capabilities).
PROXY_PORT=$(free_port)
mkdir "$WORK/proxy-tmp"
cat > "$WORK/proxy.conf" <<CONF
worker_processes 1;
pid $WORK/proxy.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/proxy-tmp; proxy_temp_path $WORK/proxy-tmp; fastcgi_temp_path $WORK/proxy-tmp; uwsgi_temp_path $WORK/proxy-tmp; scgi_temp_path $WORK/proxy-tmp;
  keepalive_requests 1000000;
  upstream worker { server 127.0.0.1:$WORKER_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / { proxy_pass http://worker/invocations; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$WORK/proxy.conf" -g 'daemon off;' 2> "$WORK/proxy.log" &
PIDS+=($!)
PROXY_MASTER=$!
wait_for "curl -sf -X POST http://127.0.0.1:$PROXY_PORT/ -o /dev/null"

wrk_post "$WORK/post.lua" "1.0,2.0,3.0,4.0" text/csv

# CPU time (user, system) in clock ticks of the process that makes the hop.
user_sys_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
declare -A HOP_PID=([direct]="" [nginx-proxy]="$(pgrep -P "$PROXY_MASTER" | head -1)" [berth]="${PIDS[0]}")
TICK_US=$((1000000 / $(getconf CLK_TCK)))

declare -A TARGETS=(
  [direct]="http://127.0.0.1:$WORKER_PORT/invocations"
  [nginx-proxy]="http://127.0.0.1:$PROXY_PORT/"
  [berth]="$URL/endpoints/nginx/invocations"
)
echo "| path | p50 c=1 | p99 c=1 | req/s c=1 | req/s c=16 | hop CPU µs/req c=1 (user + sys) |"
echo "|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
for name in direct nginx-proxy berth; do
  target=${TARGETS[$name]}
  wrk -t1 -c4 -d2s -s "$WORK/post.lua" "$target" > /dev/null   # warm-up
  pid=${HOP_PID[$name]}
  [[ -n "$pid" ]] && read -r u1 s1 < <(user_sys_ticks "$pid")
  one=$(wrk -t1 -c1 -d"${SECS}s" --latency -s "$WORK/post.lua" "$target")
  hop_cpu="—"
  if [[ -n "$pid" ]]; then
    read -r u2 s2 < <(user_sys_ticks "$pid")
    n=$(awk '/requests in/{print $1}' <<<"$one")
    hop_cpu=$(awk -v u=$((u2 - u1)) -v s=$((s2 - s1)) -v n="$n" -v t="$TICK_US" 'BEGIN{printf "%.1f + %.1f", u*t/n, s*t/n}')
  fi
  many=$(wrk -t2 -c16 -d"${SECS}s" -s "$WORK/post.lua" "$target")
  p50=$(awk '$1=="50%"{print $2}' <<<"$one")
  p99=$(awk '$1=="99%"{print $2}' <<<"$one")
  rps1=$(awk '/Requests\/sec/{print $2}' <<<"$one")
  rps16=$(awk '/Requests\/sec/{print $2}' <<<"$many")
  errors=$(grep -h "Non-2xx\|Socket errors" <<<"$one$many" || true)
  label=$name; [[ $ROUNDS -gt 1 ]] && label="$name (round $round)"
  echo "| $label | $p50 | $p99 | $rps1 | $rps16 | $hop_cpu |${errors:+ $errors}"
done
done

# CreateEndpoint → InService for small models (five runs each, seconds).
echo
$SM CreateModel "{\"ModelName\":\"echo\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/bench\",
  \"PrimaryContainer\":{\"Image\":\"exec:$ROOT/tests/containers/echo_container.py\"}}" >/dev/null
for model in nginx echo; do
  $SM CreateEndpointConfig "{\"EndpointConfigName\":\"start-$model\",\"ProductionVariants\":[
    {\"VariantName\":\"Variant1\",\"ModelName\":\"$model\",\"InitialInstanceCount\":1,\"InstanceType\":\"ml.m5.large\"},
    {\"VariantName\":\"Variant2\",\"ModelName\":\"$model\",\"InitialInstanceCount\":1,\"InstanceType\":\"ml.m5.large\"}]}" >/dev/null
  times=$($SM time-endpoint "start-$model" "start-$model" 5 | sort -n | tr '\n' ' ')
  echo "CreateEndpoint → InService, 2 variants × 1 instance of $model container (5 runs, sorted, s): $times"
done
