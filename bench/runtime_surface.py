#!/usr/bin/env python3
"""The runtime surface beyond InvokeEndpoint, side by side in one run (not a test):

  batch transform   records/s of a SingleRecord and a MultiRecord job over one CSV object,
                    against the same model through real-time InvokeEndpoint from one client
  streaming         time to the first part through InvokeEndpointWithResponseStream, against
                    the container's own time to its first chunk
  async             InvokeEndpointAsync to the answer on disk, against InvokeEndpoint

Usage: runtime_surface.py BERTH_URL WORK_DIR RECORDS (the model is the test echo container,
whose port the script finds for the direct measurement). Prints a Markdown report."""

import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

import boto3

URL, WORK, RECORDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
ECHO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "containers", "echo_container.py")
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
sm = boto3.client("sagemaker", endpoint_url=URL, **CREDS)
runtime = boto3.client("sagemaker-runtime", endpoint_url=URL, **CREDS)
ROLE = "arn:aws:iam::123456789012:role/bench"


def model(name, env=None):
    sm.create_model(ModelName=name, PrimaryContainer={"Image": f"exec:{os.path.abspath(ECHO)}", "Environment": env or {}}, ExecutionRoleArn=ROLE)


def endpoint(name, model_name, **config):
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "V", "ModelName": model_name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        **config,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
        time.sleep(0.1)


def wait_file(path, timeout=600):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.002)


model("bench-echo")
endpoint("bench-rt", "bench-echo")
rows = [f"{i},{i * 0.5},{i % 7}\n" for i in range(RECORDS)]
os.makedirs(f"{WORK}/in", exist_ok=True)
with open(f"{WORK}/in/rows.csv", "w") as f:
    f.writelines(rows)

report = ["| path | records | seconds | records/s |", "|---|---|---|---|"]
start = time.perf_counter()
for row in rows:
    runtime.invoke_endpoint(EndpointName="bench-rt", Body=row.encode(), ContentType="text/csv")
took = time.perf_counter() - start
report.append(f"| real-time InvokeEndpoint, one client | {RECORDS} | {took:.2f} | {RECORDS / took:,.0f} |")
for strategy in ("SingleRecord", "MultiRecord"):
    name = f"bench-{strategy.lower()}-{uuid.uuid4().hex[:6]}"
    sm.create_transform_job(
        TransformJobName=name,
        ModelName="bench-echo",
        BatchStrategy=strategy,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"file://{WORK}/in"}}, "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"file://{WORK}/out-{name}", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    while (d := sm.describe_transform_job(TransformJobName=name))["TransformJobStatus"] == "InProgress":
        time.sleep(0.05)
    assert d["TransformJobStatus"] == "Completed", d
    whole = d["TransformEndTime"].timestamp() - d["TransformStartTime"].timestamp()
    report.append(f"| batch transform {strategy} (job start to end, instance start included) | {RECORDS} | {whole:.2f} | {RECORDS / whole:,.0f} |")

# Streaming: first part through berth vs the container's own first chunk.
endpoint("bench-stream", "bench-echo")
through, direct = [], []
for _ in range(20):
    start = time.perf_counter()
    answer = runtime.invoke_endpoint_with_response_stream(EndpointName="bench-stream", Body=b"stream:3:50", ContentType="text/plain")
    next(iter(answer["Body"]))
    through.append(time.perf_counter() - start)
    for _ in answer["Body"]:
        pass
# The same container run directly, on a port of its own.
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
container = subprocess.Popen([sys.executable, ECHO, "serve"], env={**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port)}, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        start = time.perf_counter()
        conn.request("POST", "/invocations", body=b"stream:3:50", headers={"Content-Type": "text/plain"})
        resp = conn.getresponse()
        resp.read(1)  # the first byte of the first chunk
        direct.append(time.perf_counter() - start)
        resp.read()
        conn.close()
finally:
    container.terminate()
    container.wait()
report.append("")
report.append("| streaming, time to the first part (20 calls) | p50 | max |")
report.append("|---|---|---|")
report.append(f"| through berth (boto3, event stream) | {statistics.median(through) * 1000:.1f} ms | {max(through) * 1000:.1f} ms |")
if direct:  # noqa: SIM108
    report.append(f"| the container directly (http.client) | {statistics.median(direct) * 1000:.1f} ms | {max(direct) * 1000:.1f} ms |")

# Async: accepted to answer on disk, against InvokeEndpoint.
endpoint("bench-async", "bench-echo", AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": f"file://{WORK}/async"}})
sync_times, async_times = [], []
for i in range(50):
    start = time.perf_counter()
    runtime.invoke_endpoint(EndpointName="bench-rt", Body=b"1,2", ContentType="text/csv")
    sync_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    accepted = runtime.invoke_endpoint_async(EndpointName="bench-async", Body=b"1,2", ContentType="text/csv", InferenceId=f"a{i}")
    wait_file(f"{WORK}/async/a{i}.out")
    async_times.append(time.perf_counter() - start)
report.append("")
report.append("| one request, 50 in sequence | p50 | p90 |")
report.append("|---|---|---|")
q = lambda xs, p: sorted(xs)[int(len(xs) * p)] * 1000  # noqa: E731
report.append(f"| InvokeEndpoint (answer in the response) | {q(sync_times, 0.5):.1f} ms | {q(sync_times, 0.9):.1f} ms |")
report.append(f"| InvokeEndpointAsync to the answer on disk | {q(async_times, 0.5):.1f} ms | {q(async_times, 0.9):.1f} ms |")
print("\n".join(report))
