#!/usr/bin/env python3
"""Scaling benchmark (not a test): cold start of a serverless `berth/onnx` variant (the first
request after scale-to-zero, client side) beside a warm request, and the time for a scale-out
instance to take traffic (UpdateEndpointWeightsAndCapacities → the new instance answers).
Run with the test venv's Python after a release build (bench/scaling.sh does both). Prints a
Markdown report on stdout."""

import http.client
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/bench"
IRIS = ROOT / "crates" / "berth" / "demo" / "iris-logistic.onnx"
ROW = b"5.1,3.5,1.4,0.2"


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory(prefix="berth-scaling-bench.") as tmp:
        env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
        proc = subprocess.Popen(
            [str(ROOT / "target/release/berth"), "serve", "--listen", "127.0.0.1:0", "--data-dir", f"{tmp}/data", "--serverless-idle", "1",
             "--file-root", str(IRIS.parent)],
            stdout=subprocess.PIPE, stderr=open(f"{tmp}/berth.log", "wb"), env=env,
        )
        url = proc.stdout.readline().decode().split()[-1]
        try:
            run(url, rounds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def healthy(url, ep):
    import json
    import urllib.request

    overview = json.load(urllib.request.urlopen(f"{url}/berth/v1/overview?window=10&period=1"))
    return [v["healthy_instances"] for e in overview["endpoints"] if e["name"] == ep for v in e["variants"]][0]


def run(url, rounds):
    sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b")
    sm.create_model(ModelName="iris", PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{IRIS}"}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(
        EndpointConfigName="sls", ProductionVariants=[{"VariantName": "V", "ModelName": "iris", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]
    )
    sm.create_endpoint_config(
        EndpointConfigName="fixed", ProductionVariants=[{"VariantName": "V", "ModelName": "iris", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]
    )
    for ep in ("sls", "fixed"):
        sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
        while sm.describe_endpoint(EndpointName=ep)["EndpointStatus"] != "InService":
            time.sleep(0.01)
    host, port = url.removeprefix("http://").split(":")

    def invoke(ep):
        c = http.client.HTTPConnection(host, int(port))
        t = time.perf_counter()
        c.request("POST", f"/endpoints/{ep}/invocations", body=ROW, headers={"Content-Type": "text/csv"})
        r = c.getresponse()
        r.read()
        assert r.status == 200
        return (time.perf_counter() - t) * 1000

    cold, warm = [], []
    for _ in range(rounds):
        while healthy(url, "sls") != 0:  # wait for scale-to-zero (1 s idle)
            time.sleep(0.1)
        cold.append(invoke("sls"))
        warm.append(invoke("sls"))
    scale = []
    for i in range(rounds):
        want = 2 if i % 2 == 0 else 1
        t = time.perf_counter()
        sm.update_endpoint_weights_and_capacities(EndpointName="fixed", DesiredWeightsAndCapacities=[{"VariantName": "V", "DesiredInstanceCount": want}])
        if want == 2:
            while healthy(url, "fixed") < 2:
                time.sleep(0.002)
            scale.append((time.perf_counter() - t) * 1000)
        while sm.describe_endpoint(EndpointName="fixed")["EndpointStatus"] != "InService":
            time.sleep(0.01)

    def row(label, xs):
        print(f"| {label} | {len(xs)} | {min(xs):.0f} ms | {statistics.median(xs):.0f} ms | {max(xs):.0f} ms |")

    print("| what (berth/onnx iris, one instance) | n | min | median | max |")
    print("|---|---|---|---|---|")
    row("serverless cold start: first request after scale-to-zero", cold)
    row("serverless warm request right after", warm)
    row("scale-out 1 → 2: UpdateEndpointWeightsAndCapacities → new instance in the route", scale)


if __name__ == "__main__":
    main()
