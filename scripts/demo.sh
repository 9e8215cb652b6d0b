#!/usr/bin/env bash
# A two-variant A/B endpoint on berth in one command, spoken in SageMaker's own wire protocol
# (plain curl, so nothing but berth and python3 is needed). berth keeps running afterwards, so
# boto3, the SageMaker SDK or the AWS CLI can be pointed at it; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LISTEN=${BERTH_LISTEN:-127.0.0.1:8080}
DATA_DIR=${BERTH_DATA_DIR:-$(mktemp -d -t berth-demo.XXXXXX)}

cargo build --release --locked --bin berth
mkdir -p "$DATA_DIR"
"$ROOT/target/release/berth" serve --listen "$LISTEN" --data-dir "$DATA_DIR" > "$DATA_DIR/stdout" 2> "$DATA_DIR/berth.log" &
BERTH_PID=$!
trap 'kill -TERM $BERTH_PID 2>/dev/null; wait $BERTH_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$DATA_DIR/stdout" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$DATA_DIR/stdout" || { echo "berth did not start:" >&2; cat "$DATA_DIR/berth.log" >&2; exit 1; }
URL=$(awk '{print $4}' "$DATA_DIR/stdout")

sagemaker() { # operation json
  curl -sS --fail-with-body "$URL/" -H "X-Amz-Target: SageMaker.$1" -H "Content-Type: application/x-amz-json-1.1" -d "$2"
  echo
}
split() { # endpoint n
  for _ in $(seq "$2"); do
    curl -sS -o /dev/null -D - "$URL/endpoints/$1/invocations" -H "Content-Type: text/csv" -d "1.0,2.0,3.0" |
      tr -d '\r' | awk -F': ' 'tolower($1)=="x-amzn-invoked-production-variant"{print $2}'
  done | sort | uniq -c
}

IMAGE="exec:$ROOT/tests/containers/echo_container.py"
for v in 1 2; do
  mkdir -p "$DATA_DIR/artifacts/model-$v" && echo "model $v" > "$DATA_DIR/artifacts/model-$v/model.txt"
  sagemaker CreateModel "{\"ModelName\":\"demo-model-$v\",\"ExecutionRoleArn\":\"arn:aws:iam::123456789012:role/demo\",
    \"PrimaryContainer\":{\"Image\":\"$IMAGE\",\"ModelDataUrl\":\"file://$DATA_DIR/artifacts/model-$v\"}}"
done
sagemaker CreateEndpointConfig '{"EndpointConfigName":"demo-config","ProductionVariants":[
  {"VariantName":"Variant1","ModelName":"demo-model-1","InitialInstanceCount":1,"InstanceType":"ml.c5.4xlarge","InitialVariantWeight":1},
  {"VariantName":"Variant2","ModelName":"demo-model-2","InitialInstanceCount":1,"InstanceType":"ml.m5.4xlarge","InitialVariantWeight":1}]}'
START=$(date +%s.%N)
sagemaker CreateEndpoint '{"EndpointName":"demo","EndpointConfigName":"demo-config"}'
until sagemaker DescribeEndpoint '{"EndpointName":"demo"}' | grep -q '"EndpointStatus":"InService"'; do sleep 0.05; done
echo "endpoint 'demo' InService after $(python3 -c "import time;print(f'{time.time()-$START:.2f}')") s"

echo "== 200 requests at weights 1:1"; split demo 200
sagemaker UpdateEndpointWeightsAndCapacities '{"EndpointName":"demo","DesiredWeightsAndCapacities":[
  {"VariantName":"Variant1","DesiredWeight":25},{"VariantName":"Variant2","DesiredWeight":75}]}'
echo "== 200 requests at weights 25:75"; split demo 200

cat <<MSG

berth is serving at $URL (data in $DATA_DIR, its log in $DATA_DIR/berth.log). Try:
  aws sagemaker describe-endpoint --endpoint-name demo --endpoint-url $URL
  aws sagemaker-runtime invoke-endpoint --endpoint-name demo --body 1,2,3 --content-type text/csv --endpoint-url $URL /dev/stdout
Ctrl-C stops berth and its workers.
MSG
wait $BERTH_PID
