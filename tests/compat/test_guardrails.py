"""Deployment guardrails through boto3: UpdateEndpoint with a DeploymentConfig (blue/green canary
and linear traffic shifting, rolling updates) moves traffic in the steps the policy says, rolls
back by itself when a rollback alarm fires, and a client sending requests all along sees no
failure."""

import json
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import Load, create_echo_model, put_alarm, deploy, error_code, error_message, unique, variant, wait_status


def new_config(sm, ep, count=1, env=None, variant_name="V"):
    """A new endpoint config for `ep` with one variant on a new echo model; returns the model name."""
    model = unique("next").lower()
    create_echo_model(sm, model, env)
    sm.create_endpoint_config(EndpointConfigName=model, ProductionVariants=[variant(variant_name, model, count=count)])
    return model


def watch_phases(sm, ep, timeout=90):
    """Polls DescribeEndpoint until the deployment ends; returns [(time, new fleet's share, status)]
    of each phase seen, and the final description."""
    phases = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = sm.describe_endpoint(EndpointName=ep)
        pending = d.get("PendingDeploymentSummary")
        if pending:
            v = pending["ProductionVariants"][0]
            share = round(v["CurrentWeight"] / v["DesiredWeight"], 3)
            status = v["VariantStatus"][0]["Status"]
            if not phases or phases[-1][1:] != (share, status):
                phases.append((time.time(), share, status))
        elif d["EndpointStatus"] in ("InService", "Failed"):
            return phases, d
        time.sleep(0.05)
    raise AssertionError(f"the deployment of {ep} did not end in {timeout}s")


def canary(kind, value, wait, bake=0):
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": kind, "Value": value}, "WaitIntervalInSeconds": wait},
            "TerminationWaitInSeconds": bake,
        }
    }


def test_canary_moves_a_slice_then_everything(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    old = f"{ep}-v".lower()
    new = new_config(sm, ep, count=2)
    config = canary("CAPACITY_PERCENT", 25, wait=4, bake=2)
    with Load(berth, ep) as client:
        client_started = time.time()
        while len(client.answers) < 20:
            time.sleep(0.01)
        update_sent = time.time()
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=new, DeploymentConfig=config)
        phases, final = watch_phases(sm, ep)
        time.sleep(0.5)
    assert client.failures == []
    assert final["EndpointStatus"] == "InService" and final["EndpointConfigName"] == new
    assert "FailureReason" not in final
    assert final["LastDeploymentConfig"] == config

    steps = [(share, status) for _, share, status in phases]
    assert (0.25, "ActivatingTraffic") in steps and (1.0, "Baking") in steps, steps
    canary_start = next(t for t, share, status in phases if status == "ActivatingTraffic")
    bake_start = next(t for t, share, status in phases if status == "Baking")
    # The canary slice: about a quarter of requests to the new model while it lasted.
    fraction, n = client.share(new, canary_start + 0.3, bake_start - 0.3)
    assert n > 50 and 0.12 < fraction < 0.4, (fraction, n)
    assert client.share(new, client_started, update_sent)[0] == 0.0, "nothing before the canary"
    assert client.share(new, bake_start + 0.3, time.time())[0] == 1.0
    assert old != new


def test_linear_steps_follow_the_policy(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    new = new_config(sm, ep, count=2)
    config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}, "WaitIntervalInSeconds": 3},
            "TerminationWaitInSeconds": 1,
        }
    }
    with Load(berth, ep) as client:
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=new, DeploymentConfig=config)
        phases, final = watch_phases(sm, ep)
    assert client.failures == []
    assert final["EndpointConfigName"] == new
    shares = [share for _, share, status in phases if status in ("ActivatingTraffic", "Baking")]
    assert shares == [0.25, 0.5, 0.75, 1.0], phases
    # Each step's observed fraction matches its share.
    windows = [(t, share) for t, share, status in phases if status in ("ActivatingTraffic", "Baking")]
    for (start, share), (end, _) in zip(windows, windows[1:]):
        fraction, n = client.share(new, start + 0.3, end - 0.3)
        assert n > 30 and abs(fraction - share) < 0.17, (share, fraction, n)


def latency_alarm(cw, ep, threshold_us=25_000):
    return put_alarm(
        cw,
        ep,
        "ModelLatency",
        ExtendedStatistic="p90",
        Period=1,
        EvaluationPeriods=2,
        DatapointsToAlarm=1,
        Threshold=threshold_us,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )


def test_a_latency_alarm_rolls_a_canary_back_without_failing_requests(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    old_config = sm.describe_endpoint(EndpointName=ep)["EndpointConfigName"]
    cw = berth.client("cloudwatch")
    alarm = latency_alarm(cw, ep)
    slow = new_config(sm, ep, count=2, env={"ECHO_DELAY_MS": "60"})
    config = canary("INSTANCE_COUNT", 1, wait=20, bake=5)
    config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": alarm}]}
    with Load(berth, ep) as client:
        time.sleep(1.5)
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=slow, DeploymentConfig=config)
        phases, final = watch_phases(sm, ep)
        rolled_back_at = time.time()
        time.sleep(1.0)
    assert client.failures == []
    assert final["EndpointStatus"] == "InService"
    assert final["EndpointConfigName"] == old_config, "back on the old config"
    assert alarm in final["FailureReason"] and "rolled back" in final["FailureReason"]
    assert (0.5, "ActivatingTraffic") in [(share, status) for _, share, status in phases], phases
    events = requests.get(f"{berth.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]
    assert any(e["kind"] == "DeploymentRolledBack" and alarm in e["message"] for e in events)
    # (Requests already on the slow fleet when traffic moved back finish there: 60 ms at most.)
    assert client.share(slow, rolled_back_at + 0.2, time.time())[0] == 0.0, "all traffic back on the old fleet"
    assert cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] == "ALARM"
    assert final["ProductionVariants"][0]["CurrentInstanceCount"] == 2


def test_a_failing_model_trips_an_error_alarm_and_rolls_back(berth, sm, runtime):
    ep = deploy(sm, ["V"], count=2)
    cw = berth.client("cloudwatch")
    alarm = put_alarm(
        cw,
        ep,
        "Invocation5XXErrors",
        Statistic="Sum",
        Period=1,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    broken = new_config(sm, ep, count=2, env={"ECHO_STATUS": "500"})
    config = canary("INSTANCE_COUNT", 1, wait=20)
    config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": alarm}]}
    with Load(berth, ep) as client:
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=broken, DeploymentConfig=config)
        _, final = watch_phases(sm, ep)
    assert final["EndpointConfigName"] != broken and alarm in final["FailureReason"]
    # The only failures are the broken model's own 500s during the canary.
    assert client.failures and all("ModelError" in f for f in client.failures), client.failures[:3]
    r = runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    assert json.loads(r["Body"].read())["name"] == f"{ep}-v".lower()


def test_rolling_update_replaces_instances_in_batches(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    new = new_config(sm, ep, count=2)
    config = {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 3}}
    with Load(berth, ep) as client:
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=new, DeploymentConfig=config)
        phases, final = watch_phases(sm, ep)
        time.sleep(0.5)
    assert client.failures == []
    assert final["EndpointConfigName"] == new and final["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    baking = [(t, share) for t, share, status in phases if status == "Baking"]
    assert len(baking) == 2, phases
    # First batch: one new instance beside two old ones serves about a third.
    fraction, n = client.share(new, baking[0][0] + 0.3, baking[0][0] + 2.5)
    assert n > 30 and 0.15 < fraction < 0.55, (fraction, n)
    assert client.share(new, time.time() - 0.4, time.time())[0] == 1.0


def test_rolling_update_rolls_back_on_alarm(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    old = f"{ep}-v".lower()
    cw = berth.client("cloudwatch")
    alarm = latency_alarm(cw, ep, threshold_us=10_000_000)  # never crosses by itself
    new = new_config(sm, ep, count=2)
    config = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": 3,
            "RollbackMaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    with Load(berth, ep) as client:
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=new, DeploymentConfig=config)
        # Wait for the second batch, then fire the alarm by hand.
        deadline = time.time() + 60
        while True:
            d = sm.describe_endpoint(EndpointName=ep)
            pending = d.get("PendingDeploymentSummary")
            if pending and "2 of 2" in pending["ProductionVariants"][0]["VariantStatus"][0]["StatusMessage"]:
                break
            assert time.time() < deadline
            time.sleep(0.05)
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="operator says no")
        _, final = watch_phases(sm, ep)
        time.sleep(0.5)
    assert client.failures == []
    assert "operator says no" in final["FailureReason"]
    assert final["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert client.share(old, time.time() - 0.4, time.time())[0] == 1.0


def test_impossible_deployments_are_refused(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    new = new_config(sm, ep, count=2)

    def refused(config, text):
        with pytest.raises(ClientError) as e:
            sm.update_endpoint(EndpointName=ep, EndpointConfigName=new, DeploymentConfig=config)
        assert error_code(e) == "ValidationException"
        assert text in error_message(e), error_message(e)

    refused(canary("INSTANCE_COUNT", 2, wait=1), "at most 50%")
    refused(canary("INSTANCE_COUNT", 1, wait=5000), "between 0 and 3600")
    refused({**canary("INSTANCE_COUNT", 1, wait=1), "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "no-such-alarm"}]}}, "no-such-alarm")
    refused({**canary("INSTANCE_COUNT", 1, wait=1), "RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 1}}, "Only one update policy")
    two = unique("two").lower()
    create_echo_model(sm, two)
    sm.create_endpoint_config(EndpointConfigName=two, ProductionVariants=[variant("A", two), variant("B", two)])
    with pytest.raises(ClientError) as e:
        sm.update_endpoint(
            EndpointName=ep,
            EndpointConfigName=two,
            DeploymentConfig={"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 1}},
        )
    assert "rolling deployment needs an endpoint with one variant" in error_message(e)
    # One deployment at a time.
    sm.update_endpoint(EndpointName=ep, EndpointConfigName=new, DeploymentConfig=canary("INSTANCE_COUNT", 1, wait=30))
    with pytest.raises(ClientError) as e:
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=new)
    assert "Cannot update in-progress endpoint" in error_message(e)
    sm.delete_endpoint(EndpointName=ep)


def test_retain_deployment_config_reuses_the_last_one(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    first = new_config(sm, ep, count=2)
    config = canary("CAPACITY_PERCENT", 50, wait=1)
    sm.update_endpoint(EndpointName=ep, EndpointConfigName=first, DeploymentConfig=config)
    watch_phases(sm, ep)
    second = new_config(sm, ep, count=2)
    sm.update_endpoint(EndpointName=ep, EndpointConfigName=second, RetainDeploymentConfig=True)
    phases, final = watch_phases(sm, ep)
    assert (0.5, "ActivatingTraffic") in [(s, st) for _, s, st in phases]
    assert final["EndpointConfigName"] == second and final["LastDeploymentConfig"] == config
    wait_status(sm, ep, "InService")
