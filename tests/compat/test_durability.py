"""State survives kill -9; worker crashes are survived; no worker outlives the server; limits."""

import json
import os
import signal
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Load, create_echo_model, deploy, error_code, unique, variant, wait_status


def pids_of(runtime, endpoint, n=30, **kw):
    return {json.loads(runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x", **kw)["Body"].read())["pid"] for _ in range(n)}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def wait_gone(pids, timeout=15):
    deadline = time.time() + timeout
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_kill_9_and_restart_keeps_everything(own_berth):
    server = own_berth()
    sm = server.sm()
    ep = deploy(sm, [("Variant1", 1.0), ("Variant2", 3.0)])
    spare_model = unique("spare")
    create_echo_model(sm, spare_model)
    sm.create_endpoint_config(EndpointConfigName=unique("spare-cfg"), ProductionVariants=[variant("V", spare_model)])
    sm.add_tags(ResourceArn=sm.describe_endpoint(EndpointName=ep)["EndpointArn"], Tags=[{"Key": "owner", "Value": "ab-test"}])
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 2}, {"VariantName": "Variant2", "DesiredWeight": 2}]
    )
    wait_status(sm, ep, "InService")
    before = {
        "models": sorted(m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"]),
        "configs": sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]),
        "endpoint": sm.describe_endpoint(EndpointName=ep),
    }
    workers = pids_of(server.runtime(), ep, 40)

    server.restart(signal.SIGKILL)
    # The old server's workers die with it.
    assert wait_gone(workers) == []

    sm = server.sm()
    assert sorted(m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"]) == before["models"]
    assert sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]) == before["configs"]
    d = wait_status(sm, ep, "InService", timeout=60)
    assert d["EndpointArn"] == before["endpoint"]["EndpointArn"]
    assert d["CreationTime"] == before["endpoint"]["CreationTime"]
    assert {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]} == {"Variant1": 2.0, "Variant2": 2.0}
    assert sm.list_tags(ResourceArn=d["EndpointArn"])["Tags"] == [{"Key": "owner", "Value": "ab-test"}]
    counts = {}
    rt = server.runtime()
    for _ in range(200):
        v = rt.invoke_endpoint(EndpointName=ep, Body=b"x")["InvokedProductionVariant"]
        counts[v] = counts.get(v, 0) + 1
    assert set(counts) == {"Variant1", "Variant2"}


def test_restart_during_creation_finishes_the_endpoint(own_berth):
    server = own_berth()
    sm = server.sm()
    name = unique("slow")
    create_echo_model(sm, name, {"ECHO_STARTUP_DELAY": "1.5"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"
    server.restart(signal.SIGKILL)
    d = wait_status(server.sm(), name, timeout=60)
    assert d["EndpointStatus"] == "InService"
    assert server.runtime().invoke_endpoint(EndpointName=name, Body=b"x")["InvokedProductionVariant"] == "V"


def test_deleted_endpoint_stays_deleted_after_kill_9(own_berth):
    server = own_berth()
    sm = server.sm()
    ep = deploy(sm, ["V"])
    sm.delete_endpoint(EndpointName=ep)
    server.restart(signal.SIGKILL)
    sm = server.sm()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            sm.describe_endpoint(EndpointName=ep)
            time.sleep(0.1)
        except ClientError as e:
            assert "Could not find endpoint" in e.response["Error"]["Message"]
            return
    pytest.fail("the deleted endpoint came back")


def test_worker_crash_is_survived(berth, sm):
    ep = deploy(sm, ["Variant1"])
    rt = berth.runtime()
    (pid,) = pids_of(rt, ep, 5)
    # A request that crashes its worker gets a ModelError, not a hang.
    with pytest.raises(rt.exceptions.ModelError):
        rt.invoke_endpoint(EndpointName=ep, Body=b"crash")
    assert wait_gone([pid]) == []
    # The instance is restarted and serves again.
    deadline = time.time() + 30
    while True:
        try:
            (new_pid,) = pids_of(rt, ep, 3)
            break
        except ClientError as e:
            assert error_code_of(e) in ("ModelNotReadyException", "ServiceUnavailable"), e
            assert time.time() < deadline, "the worker was not restarted"
            time.sleep(0.1)
    assert new_pid != pid
    # The restart is counted for Prometheus.
    from test_metrics import scrape

    assert scrape(berth, ep)[("berth_instance_restarts_total", "Variant1", ())] == 1


def error_code_of(e):
    return e.response["Error"]["Code"]


def test_killed_worker_under_load_fails_no_request_on_other_instances(berth, sm):
    name = deploy(sm, ["V"], count=2)
    pids = pids_of(berth.runtime(), name, 40)
    assert len(pids) == 2
    victim = sorted(pids)[0]
    with Load(berth, name) as load:
        load.wait_for(20)
        os.kill(victim, signal.SIGKILL)
        load.wait_for(sum(load.counts.values()) + 200)
    # Only the one request in flight on the killed worker may fail, and as a ModelError; requests
    # sent to the dead instance afterwards are refused at connect and retried on the healthy one.
    assert len(load.failures) <= 1, load.failures
    assert all("ModelError" in f for f in load.failures), load.failures
    deadline = time.time() + 30
    while len(pids_of(berth.runtime(), name, 40)) < 2:
        assert time.time() < deadline, "the killed worker was not replaced"
        time.sleep(0.2)


def test_sigterm_stops_workers(own_berth):
    server = own_berth()
    sm = server.sm()
    ep = deploy(sm, ["V"])
    workers = pids_of(server.runtime(), ep, 5)
    assert server.stop(signal.SIGTERM) == 0
    assert wait_gone(workers) == []
    assert "berth stopped" in server.log_text()


def test_resource_limits(own_berth):
    server = own_berth("--max-endpoints", "1", "--max-instances", "2")
    sm = server.sm()
    deploy(sm, ["V"])
    name = unique("over")
    create_echo_model(sm, name)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name)])
    with pytest.raises(ClientError) as e:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert error_code(e) == "ResourceLimitExceeded"

    big = unique("big")
    create_echo_model(sm, big)
    sm.create_endpoint_config(EndpointConfigName=big, ProductionVariants=[variant("V", big, 1.0, 5)])
    server2 = own_berth("--max-instances", "2")
    sm2 = server2.sm()
    create_echo_model(sm2, big)
    sm2.create_endpoint_config(EndpointConfigName=big, ProductionVariants=[variant("V", big, 1.0, 5)])
    with pytest.raises(ClientError) as e:
        sm2.create_endpoint(EndpointName=big, EndpointConfigName=big)
    assert error_code(e) == "ResourceLimitExceeded"
    assert "instance" in e.value.response["Error"]["Message"].lower()


def test_model_and_config_limits_name_their_flags(own_berth):
    server = own_berth("--max-models", "1", "--max-endpoint-configs", "1")
    sm = server.sm()
    first = unique("first")
    create_echo_model(sm, first)
    with pytest.raises(ClientError) as e:
        create_echo_model(sm, unique("second"))
    assert error_code(e) == "ResourceLimitExceeded"
    assert "--max-models" in e.value.response["Error"]["Message"]
    sm.create_endpoint_config(EndpointConfigName=unique("c1"), ProductionVariants=[variant("V", first)])
    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(EndpointConfigName=unique("c2"), ProductionVariants=[variant("V", first)])
    assert error_code(e) == "ResourceLimitExceeded"
    assert "--max-endpoint-configs" in e.value.response["Error"]["Message"]
