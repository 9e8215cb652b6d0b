#!/usr/bin/env bash
# The cost of SigV4 verification on the invocation path: two servers of the same berth binary
# side by side, `--auth none` and `--auth sigv4`, each in front of the same near-zero-cost nginx
# container, in alternating rounds; the sigv4 server gets a request signed by botocore (replayed
# by wrk, verified in full each time). Prints p50/p99 at c=1, req/s at c=16 and berth's CPU
# time per request for each.
# Usage: bench/sigv4.sh [seconds per wrk run, default 5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-5}
BIN=${BERTH_BIN:-$ROOT/target/release/berth}
PY=$ROOT/.venv/bin/python
[[ -x $BIN ]] || cargo build --release --locked --bin berth
W=$(mktemp -d)
printf '[bench]\naws_access_key_id = AKIDBENCH\naws_secret_access_key = bench-secret\n' > $W/credentials
chmod 600 $W/credentials
declare -a URLS PIDS SCRIPTS
i=0
for auth in none sigv4; do
  extra=()
  [[ $auth == sigv4 ]] && extra=(--credentials-file $W/credentials)
  $BIN serve --listen 127.0.0.1:0 --data-dir $W/d$i --exec-root "$ROOT/bench" --auth $auth "${extra[@]}" > $W/out$i 2>/dev/null &
  PIDS+=($!)
  for _ in $(seq 50); do grep -q listening $W/out$i 2>/dev/null && break; sleep 0.1; done
  URL=$(awk '{print $4}' $W/out$i)
  AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret $PY - "$URL" "$ROOT" <<'PY'
import sys, time, boto3
url, root = sys.argv[1:3]
sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1")
sm.create_model(ModelName="nginx", ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
                PrimaryContainer={"Image": f"exec:{root}/bench/nginx_container.sh"})
sm.create_endpoint_config(EndpointConfigName="nginx", ProductionVariants=[
    {"VariantName": "AllTraffic", "ModelName": "nginx", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
sm.create_endpoint(EndpointName="nginx", EndpointConfigName="nginx")
while sm.describe_endpoint(EndpointName="nginx")["EndpointStatus"] != "InService":
    time.sleep(0.05)
PY
  if [[ $auth == sigv4 ]]; then
    $PY "$ROOT/bench/sigv4_request.py" "$URL" nginx AKIDBENCH bench-secret > $W/post$i.lua
  else
    printf 'wrk.method = "POST"\nwrk.body = "1,2"\nwrk.headers["Content-Type"] = "text/csv"\n' > $W/post$i.lua
  fi
  # The request must be answered 200 before it is measured.
  code=$(wrk -t1 -c1 -d1s -s $W/post$i.lua "$URL/endpoints/nginx/invocations" | awk '/Non-2xx/{print "non-2xx"}')
  [[ -z $code ]] || { echo "the $auth server did not answer 200" >&2; exit 1; }
  URLS+=("$URL/endpoints/nginx/invocations")
  i=$((i+1))
done
source "$ROOT/bench/lib.sh"
alternate $SECS "auth none " "auth sigv4" $W/post0.lua $W/post1.lua
for p in "${PIDS[@]}"; do kill $p; done
wait 2>/dev/null || true
rm -rf $W
