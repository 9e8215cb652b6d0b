# Shared by the side-by-side benchmark scripts (sourced, not run).

# wrk_post FILE BODY [CONTENT-TYPE]: a wrk script that POSTs BODY (a Lua long string: any text
# without "]]").
wrk_post() {
  { echo 'wrk.method = "POST"'; echo "wrk.body = [[$2]]"; [[ -z ${3:-} ]] || echo "wrk.headers[\"Content-Type\"] = \"$3\""; } > "$1"
}

# CPU time (user + system, in clock ticks) of a process, for berth's cost per request.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure LABEL PID URL LUA SECS: one wrk run at c=1 (p50, p99, req/s, CPU per request of PID)
# and one at c=16 (req/s), printed on one line.
measure() {
  local label=$1 pid=$2 url=$3 lua=$4 secs=$5 t1 t2 out one many
  local tick_us=$((1000000 / $(getconf CLK_TCK)))
  t1=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c1 -d"${secs}"s --latency -s "$lua" "$url")
  t2=$(cpu_ticks "$pid")
  one=$(awk -v t=$((t2 - t1)) -v us=$tick_us '$1=="50%"{p=$2} $1=="99%"{q=$2} /Requests\/sec/{r=$2} /requests in/{n=$1} END{printf "p50 %s p99 %s rps %s cpu/req %.1fus", p, q, r, t*us/n}' <<<"$out")
  many=$(wrk -t2 -c16 -d"${secs}"s -s "$lua" "$url" | awk '/Requests\/sec/{print "rps16", $2} /Non-2xx/{print "NON-2XX", $NF}')
  # An answer other than 2xx (an endpoint that failed to start answers fast) makes the run void.
  grep -q Non-2xx <<<"$out" && one="$one NON-2XX $(awk '/Non-2xx/{print $NF}' <<<"$out")"
  echo "$label: c=1 $one; c=16 $(echo $many)"
}

# alternate SECS LABEL0 LABEL1 LUA0 LUA1: three rounds measuring the two servers of the arrays
# PIDS and URLS in turn, so that both see the same noise.
alternate() {
  local secs=$1 round j
  local labels=("$2" "$3") luas=("$4" "$5")
  for round in 1 2 3; do
    for j in 0 1; do
      measure "round $round ${labels[$j]}" "${PIDS[$j]}" "${URLS[$j]}" "${luas[$j]}" "$secs"
    done
  done
}

# For scripts that start servers of their own: a scratch directory WORK, the PIDS started (ended
# by SIGTERM at exit, then WORK removed), a free loopback port, a bounded wait for a condition,
# and the RSS of a process tree. `bench_workspace NAME` sets up WORK and the trap.
bench_workspace() {
  WORK=$(mktemp -d -t "berth-$1-bench.XXXXXX")
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1200); do eval "$1" && return 0; sleep 0.05; done; echo "bench: timed out waiting for: $1" >&2; exit 1; }
rss_tree_kb() { local total=0 p; total=$(awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
  for p in $(pgrep -P "$1" 2>/dev/null); do total=$((total + $(rss_tree_kb "$p"))); done; echo "$total"; }
rss_tree_mb() { echo $(( $(rss_tree_kb "$1") / 1024 )); }

# MLServer 1.7 (.venv-mlserver) serving WORK/model/model.joblib as model "iris" with
# mlserver-sklearn (V2 REST, parallel_workers 0); sets MLS_PORT and MLS_PID once it is ready and
# answers the iris row with class 0, and writes that request as WORK/mlserver.lua for wrk.
start_mlserver() {
  MLS_PORT=$(free_port)
  mkdir -p "$WORK/mlserver/iris"
  cp "$WORK/model/model.joblib" "$WORK/mlserver/iris/"
  echo '{"name":"iris","implementation":"mlserver_sklearn.SKLearnModel","parameters":{"uri":"./model.joblib"}}' > "$WORK/mlserver/iris/model-settings.json"
  echo "{\"parallel_workers\":0,\"http_port\":$MLS_PORT,\"grpc_port\":$(free_port),\"metrics_port\":$(free_port),\"host\":\"127.0.0.1\"}" > "$WORK/mlserver/settings.json"
  (cd "$WORK/mlserver" && exec "$ROOT/.venv-mlserver/bin/mlserver" start . > "$WORK/mlserver.log" 2>&1) &
  MLS_PID=$!; PIDS+=($MLS_PID)
  wait_for "curl -sf http://127.0.0.1:$MLS_PORT/v2/models/iris/ready -o /dev/null"
  local row='{"inputs":[{"name":"predict","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
  wrk_post "$WORK/mlserver.lua" "$row" application/json
  curl -sf "http://127.0.0.1:$MLS_PORT/v2/models/iris/infer" -H 'Content-Type: application/json' -d "$row" | grep -q '"data":\[0\]'
}
