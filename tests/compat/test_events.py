"""Endpoint events: status and weight changes, deployment steps, instance start, crash and restart
are recorded in the state store, listed by `GET /berth/v1/events` and `berth events`, and kept
across a kill -9."""

import json
import signal
import subprocess
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import berth_binary, create_echo_model, deploy, variant, wait_status


def events(server, endpoint=None, **params):
    if endpoint:
        params["endpoint"] = endpoint
    r = requests.get(f"{server.url}/berth/v1/events", params=params, timeout=10)
    assert r.status_code == 200
    return r.json()["events"]


def wait_event(server, endpoint, kind, timeout=20):
    deadline = time.time() + timeout
    while True:
        found = [e for e in events(server, endpoint) if e["kind"] == kind]
        if found:
            return found
        assert time.time() < deadline, f"no {kind} event for {endpoint}: {events(server, endpoint)}"
        time.sleep(0.1)


def test_lifecycle_of_an_endpoint_is_recorded(berth, sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"])
    first = events(berth, ep)
    kinds = [e["kind"] for e in reversed(first)]  # oldest first
    assert kinds[0] == "StatusChanged" and "Creating" in first[-1]["message"]
    assert kinds.count("InstanceStarted") == 2
    assert kinds[-1] == "StatusChanged" and first[0]["message"] == "Status is InService"
    assert {e["variant"] for e in first if e["kind"] == "InstanceStarted"} == {"Variant1", "Variant2"}
    assert all(e["endpoint"] == ep and e["time"].endswith("Z") for e in first)

    sm.update_endpoint_weights_and_capacities(
        EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 0.25}]
    )
    (weights,) = wait_event(berth, ep, "WeightsChanged")
    assert weights["message"] == "Weights Variant1: 1 → 0.25"

    # A crash mid-request: the supervisor restarts the instance, and both are events.
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"crash", TargetVariant="Variant2")
    (crashed,) = wait_event(berth, ep, "InstanceCrashed")
    assert crashed["variant"] == "Variant2" and "exited" in crashed["message"]
    (restarted,) = wait_event(berth, ep, "InstanceRestarted")
    assert restarted["id"] > crashed["id"]

    # A blue/green update is a series of steps; the replaced instances stop.
    model = f"{ep}-next".lower()
    create_echo_model(sm, model)
    sm.create_endpoint_config(EndpointConfigName=f"{ep}-next", ProductionVariants=[variant("Variant1", model)])
    sm.update_endpoint(EndpointName=ep, EndpointConfigName=f"{ep}-next")
    wait_status(sm, ep, "InService")
    steps = [e["message"] for e in reversed(wait_event(berth, ep, "DeploymentStep"))]
    assert steps[0].startswith(f"Endpoint config {ep}-next: starting instances of Variant1 (1)")
    assert "all traffic moved to the new fleet" in steps[-1]
    stopped = wait_event(berth, ep, "InstanceStopped")
    assert {e["variant"] for e in stopped} <= {"Variant1", "Variant2"}

    sm.delete_endpoint(EndpointName=ep)
    wait_event(berth, ep, "EndpointDeleted")

    # Paging: `after` gives only newer events, `limit` bounds the answer.
    everything = events(berth, ep, limit=1000)
    newer = events(berth, ep, after=everything[3]["id"])
    assert [e["id"] for e in newer] == [e["id"] for e in everything[:3]]
    assert len(events(berth, ep, limit=2)) == 2


def test_a_failed_update_is_an_event(berth, sm):
    ep = deploy(sm, ["V"])
    model = f"{ep}-broken".lower()
    create_echo_model(sm, model, {"ECHO_EXIT_ON_START": "1"})
    sm.create_endpoint_config(EndpointConfigName=f"{ep}-broken", ProductionVariants=[variant("V", model)])
    sm.update_endpoint(EndpointName=ep, EndpointConfigName=f"{ep}-broken")
    (failed,) = wait_event(berth, ep, "DeploymentFailed")
    assert "the current variants keep serving" in failed["message"] and "exited" in failed["message"]


def test_events_survive_kill_9_and_cli_lists_them(own_berth):
    server = own_berth()
    ep = deploy(server.sm(), ["V"])
    server.sm().update_endpoint_weights_and_capacities(
        EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "V", "DesiredWeight": 2}]
    )
    before = wait_event(server, ep, "WeightsChanged")
    server.restart(signal.SIGKILL)
    after = events(server, ep)
    assert before[0]["id"] in [e["id"] for e in after]
    wait_status(server.sm(), ep, "InService")
    recovered = [e for e in events(server, ep) if "berth restarted" in e["message"]]
    assert recovered, events(server, ep)

    out = subprocess.run([berth_binary(), "events", ep, "--url", server.url], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["TIME", "ENDPOINT", "VARIANT", "KIND", "MESSAGE"]
    assert any("WeightsChanged" in line and "Weights V: 1 → 2" in line for line in lines)
    assert "StatusChanged" in lines[1] and "Creating" in lines[1]  # oldest first

    out = subprocess.run([berth_binary(), "events", "--json", "--limit", "2", "--url", server.url], capture_output=True, text=True, timeout=30)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["id"] < rows[1]["id"]
