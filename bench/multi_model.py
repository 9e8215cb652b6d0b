#!/usr/bin/env python3
"""Multi-model endpoints, side by side in one run (not a test): MODELS small ONNX models (the
same iris LogisticRegression, one archive each) under a file:// prefix, behind one berth/onnx
endpoint on one instance.

  cold    the first call of each model (fetch, unpack, load, answer), one client, in turn
  memory  the worker's resident memory before any model and with all of them loaded
  warm    requests/s at c=16 and p50 at c=1 (wrk) of one loaded model through the multi-model
          endpoint against a single-model endpoint of the same archive, in alternating rounds

Usage: multi_model.py BERTH_URL WORK_DIR MODELS SECONDS BERTH_PID. Prints a Markdown report."""

import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.parse

import boto3
import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

URL, WORK, MODELS, SECS, BERTH_PID = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
sm = boto3.client("sagemaker", endpoint_url=URL, **CREDS)
ROLE = "arn:aws:iam::123456789012:role/bench"
ROW = "5.1,3.5,1.4,0.2"

X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
model = LogisticRegression(max_iter=1000).fit(X, y)
onnx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    info = tarfile.TarInfo("model.onnx")
    info.size = len(onnx)
    tar.addfile(info, io.BytesIO(onnx))
prefix = os.path.join(WORK, "models")
os.makedirs(prefix)
for i in range(MODELS):
    with open(os.path.join(prefix, f"m{i:04d}.tar.gz"), "wb") as f:
        f.write(buf.getvalue())


def endpoint(name, container):
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge"}],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    while (status := sm.describe_endpoint(EndpointName=name)["EndpointStatus"]) not in ("InService", "Failed"):
        time.sleep(0.1)
    assert status == "InService", sm.describe_endpoint(EndpointName=name).get("FailureReason")


endpoint("multi", {"Image": "berth/onnx", "Mode": "MultiModel", "ModelDataUrl": f"file://{prefix}/"})
endpoint("single", {"Image": "berth/onnx", "ModelDataUrl": f"file://{prefix}/m0000.tar.gz"})


def worker_pid():
    out = subprocess.run(["pgrep", "-f", "-P", str(BERTH_PID), "worker onnx"], capture_output=True, text=True).stdout.split()
    pids = [int(p) for p in out]
    # The multi-model endpoint's worker started first.
    return min(pids, key=lambda p: os.stat(f"/proc/{p}").st_ctime)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


pid = worker_pid()
before = rss_mb(pid)
host = urllib.parse.urlparse(URL)
conn = http.client.HTTPConnection(host.hostname, host.port)
cold = []
for i in range(MODELS):
    started = time.perf_counter()
    conn.request("POST", "/endpoints/multi/invocations", ROW, {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": f"m{i:04d}.tar.gz"})
    r = conn.getresponse()
    body = r.read()
    cold.append((time.perf_counter() - started) * 1000)
    assert r.status == 200, (r.status, body)
after = rss_mb(pid)
cold.sort()


def pct(values, p):
    return values[min(len(values) - 1, int(len(values) * p / 100))]


print(f"Models: {MODELS} archives of the same iris LogisticRegression ({len(onnx)} bytes of ONNX each), one instance (ml.m5.xlarge).\n")
print("| | |\n|---|---|")
print(f"| cold first call, p50 / p90 / p99 | {pct(cold, 50):.2f} / {pct(cold, 90):.2f} / {pct(cold, 99):.2f} ms |")
print(f"| all {MODELS} first calls, one client in turn | {sum(cold) / 1000:.1f} s |")
print(f"| worker RSS before / with {MODELS} loaded | {before:.0f} / {after:.0f} MB |")
print(f"| memory per loaded model | {(after - before) * 1024 / MODELS:.0f} KB |")

lua = os.path.join(WORK, "post.lua")
lua_multi = os.path.join(WORK, "post-multi.lua")
with open(lua, "w") as f:
    f.write(f'wrk.method="POST"\nwrk.body="{ROW}"\nwrk.headers["Content-Type"]="text/csv"\n')
with open(lua_multi, "w") as f:
    f.write(f'wrk.method="POST"\nwrk.body="{ROW}"\nwrk.headers["Content-Type"]="text/csv"\nwrk.headers["X-Amzn-SageMaker-Target-Model"]="m0007.tar.gz"\n')


def wrk(threads, conns, script, path, latency=False):
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{SECS}s", "-s", script] + (["--latency"] if latency else []) + [f"{URL}{path}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    p50 = next((line.split()[1] for line in out.splitlines() if line.strip().startswith("50%")), "")
    non2xx = [line for line in out.splitlines() if "Non-2xx" in line]
    assert not non2xx, non2xx
    return rps, p50


print("\n| round | endpoint | req/s c=16 | p50 c=1 |\n|---|---|---|---|")
ratios = []
for round_ in (1, 2, 3):
    got = {}
    for name, script in (("single", lua), ("multi", lua_multi)):
        rps, _ = wrk(2, 16, script, f"/endpoints/{name}/invocations")
        _, p50 = wrk(1, 1, script, f"/endpoints/{name}/invocations", latency=True)
        got[name] = rps
        print(f"| {round_} | {name}-model | {rps:,.0f} | {p50} |")
    ratios.append(got["multi"] / got["single"])
print(f"\nWarm multi-model requests/s over single-model: {', '.join(f'{r:.3f}' for r in ratios)} (median {statistics.median(ratios):.3f}; goal within 10%).")
