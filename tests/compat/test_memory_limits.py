"""Worker memory limits: where the kernel lets berth create memory cgroups (cgroup v2 with the
controller delegated, or v1's memory hierarchy as root), each instance runs limited to its
serverless memory size or instance type's memory. A container that starts above it fails the
endpoint with a reason saying so; one that grows past it while serving is killed, the event says
why, and the instance restarts and serves again. Deleting the endpoint removes its cgroups."""

import os
import re
import time

import pytest
import requests
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROLE, ECHO_IMAGE, unique, wait_status

LIMIT_MB = 1024


@pytest.fixture
def server(own_berth):
    server = own_berth()
    deadline = time.time() + 10
    while "worker memory limits" not in server.log_text():
        assert time.time() < deadline, server.log_text()
        time.sleep(0.05)
    if "worker memory limits not enforced" in server.log_text():
        reason = re.search(r"worker memory limits not enforced.*", server.log_text()).group(0)
        pytest.skip(f"this machine lets berth create no memory cgroup: {reason}")
    return server


def serverless(sm, env):
    ep = unique("mem")
    sm.create_model(ModelName=ep, PrimaryContainer={"Image": ECHO_IMAGE, "Environment": {"ECHO_NAME": ep, **env}}, ExecutionRoleArn=ROLE)
    config = {"MemorySizeInMB": LIMIT_MB, "MaxConcurrency": 2, "ProvisionedConcurrency": 1}
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[{"VariantName": "V", "ModelName": ep, "ServerlessConfig": config}])
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    return ep, wait_status(sm, ep)


def instance_cgroups(server):
    """The instance cgroups berth made under its own memory cgroup."""
    lines = open(f"/proc/{server.proc.pid}/cgroup").read().splitlines()
    if any(l.split(":")[1] == "memory" for l in lines):
        path = next(l.split(":", 2)[2] for l in lines if l.split(":")[1] == "memory")
        base = f"/sys/fs/cgroup/memory{path}/berth-{server.proc.pid}"
    else:
        base = f"/sys/fs/cgroup{lines[-1].split(':', 2)[2]}/berth-{server.proc.pid}"
    return [os.path.join(base, d) for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))]


def test_a_container_starting_above_its_memory_fails_the_endpoint(server):
    ep, d = serverless(server.sm(), {"ECHO_HOLD_MB": str(LIMIT_MB + 200)})
    assert d["EndpointStatus"] == "Failed", d
    assert f"killed by the kernel for going past its memory limit of {LIMIT_MB} MiB (serverless-{LIMIT_MB}mb)" in d["FailureReason"]


def test_an_instance_growing_past_its_memory_is_killed_and_restarted(server):
    sm, runtime = server.sm(), server.runtime()
    ep, d = serverless(sm, {"ECHO_HOLD_MB": "200"})
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    assert runtime.invoke_endpoint(EndpointName=ep, Body=b"grow:100")["ResponseMetadata"]["HTTPStatusCode"] == 200
    cgroups = instance_cgroups(server)
    assert len(cgroups) == 1, cgroups
    limit_file = "memory.limit_in_bytes" if "/memory/" in cgroups[0] else "memory.max"
    assert int(open(os.path.join(cgroups[0], limit_file)).read()) == LIMIT_MB * 1024 * 1024

    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=ep, Body=f"grow:{LIMIT_MB}".encode())
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (424, 503), e.value.response

    deadline = time.time() + 30
    while True:
        events = requests.get(f"{server.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]
        kinds = [e["kind"] for e in events]
        if "InstanceRestarted" in kinds:
            break
        assert time.time() < deadline, events
        time.sleep(0.1)
    crashes = [e for e in events if e["kind"] == "InstanceCrashed"]
    assert len(crashes) == 1, [(e["kind"], e["message"]) for e in events]
    (crash,) = crashes
    assert f"killed by the kernel for going past its memory limit of {LIMIT_MB} MiB" in crash["message"], crash
    assert runtime.invoke_endpoint(EndpointName=ep, Body=b"after")["ResponseMetadata"]["HTTPStatusCode"] == 200
    families = text_string_to_metric_families(requests.get(f"{server.url}/metrics", timeout=10).text)
    kills = {s.labels["endpoint"]: s.value for f in families if f.name == "berth_instance_oom_kills" for s in f.samples if s.name.endswith("_total")}
    assert kills.get(ep) == 1, kills

    sm.delete_endpoint(EndpointName=ep)
    deadline = time.time() + 20
    while instance_cgroups(server):
        assert time.time() < deadline, instance_cgroups(server)
        time.sleep(0.1)
