#!/usr/bin/env python3
"""Container image benchmark, control-plane half (not a test): CreateEndpoint → InService for an
endpoint of one instance of a small container image, beside the same server as an `exec:`
program, in alternating rounds against one berth server; then leaves one endpoint of each
(`image`, `proc`) running for the invocation half of bench/docker.sh.

    docker_startup.py URL IMAGE ROUNDS
"""

import statistics
import subprocess
import sys
import time

import boto3

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/bench"


def main():
    url, image, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b")
    images = {"image": image, "proc": f"exec:{ROOT}/bench/nginx_container.sh"}
    for kind, img in images.items():
        sm.create_model(ModelName=kind, PrimaryContainer={"Image": img}, ExecutionRoleArn=ROLE)
        sm.create_endpoint_config(
            EndpointConfigName=kind, ProductionVariants=[{"VariantName": "V", "ModelName": kind, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]
        )

    def in_service(name, config):
        began = time.perf_counter()
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        while (status := sm.describe_endpoint(EndpointName=name)["EndpointStatus"]) == "Creating":
            time.sleep(0.005)
        assert status == "InService", sm.describe_endpoint(EndpointName=name).get("FailureReason")
        return (time.perf_counter() - began) * 1000

    def gone(name):
        sm.delete_endpoint(EndpointName=name)
        while subprocess.run(["docker", "ps", "-aq", "--filter", f"label=berth.endpoint={name}"], capture_output=True, text=True).stdout.strip():
            time.sleep(0.05)
        while any(e["EndpointName"] == name for e in sm.list_endpoints()["Endpoints"]):
            time.sleep(0.05)

    times = {kind: [] for kind in images}
    for i in range(rounds):
        for kind in images:
            times[kind].append(in_service(f"start-{kind}-{i}", kind))
            gone(f"start-{kind}-{i}")
    print("| instance of | CreateEndpoint → InService, ms: min / median / max |")
    print("|---|---|")
    for kind, label in (("image", f"container image `{image.split('/')[-1]}` (Docker)"), ("proc", "`exec:bench/nginx_container.sh` (process)")):
        t = sorted(times[kind])
        print(f"| {label} | {t[0]:.0f} / {statistics.median(t):.0f} / {t[-1]:.0f} |")
    for kind in images:
        in_service(kind, kind)


if __name__ == "__main__":
    main()
