"""`berth serve --demo`, run as the README says, answers as it says."""

import collections
import json
import re
import select
import subprocess
import time

import pytest

from conftest import BerthServer


def read_usage(server, timeout=60):
    """Reads berth's stdout after the listening line until the demo's usage text is complete."""
    text, deadline = "", time.time() + timeout
    while "update-endpoint-weights-and-capacities" not in text:
        assert time.time() < deadline, f"no demo usage printed; stdout so far: {text!r}; log: {server.log_text()[-2000:]}"
        ready, _, _ = select.select([server.proc.stdout], [], [], 0.5)
        if ready:
            line = server.proc.stdout.readline().decode()
            assert line, f"berth exited; log: {server.log_text()[-2000:]}"
            text += line
    return text


def test_demo_serves_two_iris_variants(tmp_path):
    server = BerthServer(tmp_path / "data", ["--demo"]).start()
    try:
        usage = read_usage(server)
        assert server.url in usage
        # The curl line it prints works as printed.
        curl = next(line.strip() for line in usage.splitlines() if line.strip().startswith("curl "))
        out = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert re.search(r"x-amzn-invoked-production-variant: Variant[12]", out.stdout, re.I)
        assert json.loads(out.stdout.split("\n\n", 1)[1])["predictions"][0]["label"] == 0

        rt = server.runtime()
        counts = collections.Counter()
        for _ in range(400):
            r = rt.invoke_endpoint(EndpointName="demo", ContentType="text/csv", Body="6.7,3.0,5.2,2.3")
            counts[r["InvokedProductionVariant"]] += 1
            assert json.loads(r["Body"].read())["predictions"][0]["label"] == 2
        assert 160 <= counts["Variant1"] <= 240, counts

        # A restart keeps the demo and does not deploy it twice.
        server.restart()
        usage = read_usage(server)
        sm = server.sm()
        assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["demo"]
        assert len(sm.list_models()["Models"]) == 2
    finally:
        server.stop()
