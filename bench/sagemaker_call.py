#!/usr/bin/env python3
"""Minimal SageMaker control-plane calls for the benchmark scripts (stdlib only).

  sagemaker_call.py URL Operation '{json}'          one call, prints the answer
  sagemaker_call.py URL time-endpoint NAME CONFIG N  creates and deletes endpoint NAME N times,
                                                    prints CreateEndpoint→InService seconds each
"""

import json
import sys
import time
import urllib.request


def call(url, op, body):
    req = urllib.request.Request(
        url + "/",
        data=json.dumps(body).encode(),
        headers={"X-Amz-Target": f"SageMaker.{op}", "Content-Type": "application/x-amz-json-1.1"},
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def status(url, name):
    try:
        return call(url, "DescribeEndpoint", {"EndpointName": name})["EndpointStatus"]
    except urllib.error.HTTPError:
        return None


def time_endpoint(url, name, config, n):
    for _ in range(int(n)):
        start = time.perf_counter()
        call(url, "CreateEndpoint", {"EndpointName": name, "EndpointConfigName": config})
        while (s := status(url, name)) != "InService":
            if s == "Failed":
                sys.exit(f"endpoint failed: {call(url, 'DescribeEndpoint', {'EndpointName': name}).get('FailureReason')}")
            time.sleep(0.002)
        print(f"{time.perf_counter() - start:.3f}")
        call(url, "DeleteEndpoint", {"EndpointName": name})
        while status(url, name) is not None:
            time.sleep(0.01)


if __name__ == "__main__":
    url, op = sys.argv[1], sys.argv[2]
    if op == "time-endpoint":
        time_endpoint(url, *sys.argv[3:6])
    else:
        print(json.dumps(call(url, op, json.loads(sys.argv[3]))))
