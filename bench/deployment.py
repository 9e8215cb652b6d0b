#!/usr/bin/env python3
"""Deployment benchmark (not a test): how fast an update puts a new model on 100% of traffic, and
what a shadow variant costs production requests. Run with the test venv's Python after a release
build (bench/deployment.sh does both). Prints a Markdown report on stdout.

  1. UpdateEndpoint → the new model answers every request: a client polls continuously and the
     time is taken at the first request after which only the new model answers. For the echo
     container (a Python `exec:` image) and for `berth/onnx` (the bundled iris models), plain
     and with a blue/green ALL_AT_ONCE DeploymentConfig. Repeated, flipping between two models.
  2. Production request latency plain, with a shadow variant (sampling 100%) and with data
     capture (100%, to files) on `berth/onnx`: alternating rounds of sequential keep-alive
     requests, client-side timing.
"""

import http.client
import json
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
ECHO = f"exec:{ROOT / 'tests' / 'containers' / 'echo_container.py'}"
IRIS = ROOT / "crates" / "berth" / "demo"
ROW = b"5.1,3.5,1.4,0.2"
ALL_AT_ONCE = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}, "TerminationWaitInSeconds": 0}}


def start_berth(work):
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(ROOT / "target" / "release" / "berth"), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"),
         "--exec-root", str(ROOT / "tests" / "containers"), "--file-root", str(IRIS), "--file-root", str(work)],
        stdout=subprocess.PIPE,
        stderr=open(work / "berth.log", "wb"),
        env=env,
    )
    line = proc.stdout.readline().decode()
    return proc, line.split()[-1]


def client(url, service):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")


def wait_in_service(sm, ep):
    while sm.describe_endpoint(EndpointName=ep)["EndpointStatus"] != "InService":
        time.sleep(0.005)


class Conn:
    """One keep-alive connection to berth's runtime API."""

    def __init__(self, url):
        host, port = url.removeprefix("http://").split(":")
        self.c = http.client.HTTPConnection(host, int(port))

    def invoke(self, ep, body, content_type="text/csv"):
        self.c.request("POST", f"/endpoints/{ep}/invocations", body=body, headers={"Content-Type": content_type})
        r = self.c.getresponse()
        return r.status, r.read()


def time_to_full_traffic(sm, conn, ep, config, answers_from_new, deployment):
    """Seconds from UpdateEndpoint to the first request after which only the new model answers
    (checked until the endpoint is InService again and 50 more requests)."""
    sent = time.perf_counter()
    args = {"DeploymentConfig": deployment} if deployment else {}
    sm.update_endpoint(EndpointName=ep, EndpointConfigName=config, **args)
    first_new = None
    after = 0
    while True:
        status, body = conn.invoke(ep, ROW)
        assert status == 200, body
        now = time.perf_counter()
        if answers_from_new(body):
            first_new = first_new or now
        else:
            first_new = None  # an old answer after a new one: not all traffic yet
        if first_new and sm.describe_endpoint(EndpointName=ep)["EndpointStatus"] == "InService":
            after += 1
            if after >= 50:
                return first_new - sent
        if now - sent > 120:
            raise RuntimeError("the update did not finish in 120 s")


def deployment_times(sm, conn, kind, rounds):
    ep = f"deploy-{kind}"
    models = []
    for i in range(2):
        name = f"{ep}-m{i}"
        if kind == "echo":
            container = {"Image": ECHO, "Environment": {"ECHO_NAME": name}}
        else:
            model = ["iris-logistic.onnx", "iris-forest.onnx"][i]
            container = {"Image": "berth/onnx", "ModelDataUrl": f"file://{IRIS / model}"}
        sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[{"VariantName": "V", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        )
        models.append(name)
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=models[0])
    wait_in_service(sm, ep)
    results = {"plain": [], "ALL_AT_ONCE": []}
    current = 0
    for r in range(rounds):
        for label, deployment in (("plain", None), ("ALL_AT_ONCE", ALL_AT_ONCE)):
            target = models[1 - current]
            if kind == "echo":
                new = lambda body, t=target: json.loads(body)["name"] == t  # noqa: E731
            else:
                # The two iris models answer alike; the variant's deployed model tells them apart,
                # so for berth/onnx the time is UpdateEndpoint → InService on the new config.
                new = lambda body: True  # noqa: E731
            if kind == "echo":
                results[label].append(time_to_full_traffic(sm, conn, ep, target, new, deployment))
            else:
                sent = time.perf_counter()
                sm.update_endpoint(EndpointName=ep, EndpointConfigName=target, **({"DeploymentConfig": deployment} if deployment else {}))
                while True:
                    d = sm.describe_endpoint(EndpointName=ep)
                    if d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == target:
                        break
                    conn.invoke(ep, ROW)
                results[label].append(time.perf_counter() - sent)
            current = 1 - current
    sm.delete_endpoint(EndpointName=ep)
    return results


def latency(conn, ep, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = conn.invoke(ep, ROW)
        out.append((time.perf_counter() - t) * 1e6)
        assert status == 200
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99)]


def side_by_side(sm, url, rounds, n, work):
    """Production latency of the same model on three endpoints: plain, with a shadow copied
    every request, and with data capture of every request to files."""
    for name, model in (("iris-prod", "iris-logistic.onnx"), ("iris-shadow", "iris-forest.onnx")):
        sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{IRIS / model}"}, ExecutionRoleArn=ROLE)
    prod = {"VariantName": "Prod", "ModelName": "iris-prod", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    shadow = {"VariantName": "Shadow", "ModelName": "iris-shadow", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"file://{work}/capture", "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}
    sm.create_endpoint_config(EndpointConfigName="plain", ProductionVariants=[prod])
    sm.create_endpoint_config(EndpointConfigName="shadowed", ProductionVariants=[prod], ShadowProductionVariants=[shadow])
    sm.create_endpoint_config(EndpointConfigName="captured", ProductionVariants=[prod], DataCaptureConfig=capture)
    endpoints = ("plain", "shadowed", "captured")
    for ep in endpoints:
        sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
        wait_in_service(sm, ep)
    conn = Conn(url)
    for ep in endpoints:
        latency(conn, ep, 500)  # warm
    rows = []
    for r in range(rounds):
        for ep in endpoints:
            rows.append((r + 1, ep, *latency(conn, ep, n)))
    return rows


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="berth-deploy-bench.") as tmp:
        work = pathlib.Path(tmp)
        proc, url = start_berth(work)
        try:
            sm = client(url, "sagemaker")
            conn = Conn(url)
            print(f"Rounds: {rounds}. Each update flips the endpoint between two models (one instance).\n")
            print("| image | update | min | median | max |")
            print("|---|---|---|---|---|")
            for kind in ("echo", "onnx"):
                for label, times in deployment_times(sm, conn, kind, rounds).items():
                    ms = [t * 1000 for t in times]
                    image = "echo (Python exec:)" if kind == "echo" else "berth/onnx"
                    print(f"| {image} | {label} | {min(ms):.0f} ms | {statistics.median(ms):.0f} ms | {max(ms):.0f} ms |")
            print("\nProduction latency, client side, sequential keep-alive requests (2,000 per round):\n")
            print("| round | endpoint | p50 | p99 |")
            print("|---|---|---|---|")
            labels = {"plain": "plain", "shadowed": "with a shadow (100% copied)", "captured": "with data capture (100%, file://)"}
            for r, ep, p50, p99 in side_by_side(sm, url, 3, 2000, work):
                print(f"| {r} | {labels[ep]} | {p50:.0f} µs | {p99:.0f} µs |")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
