"""Serverless variants (ServerlessConfig) through boto3: no instance runs while idle, the first
request after idle starts one and waits for it (queued, not failed), a burst above MaxConcurrency
is throttled with ThrottlingException and never hangs, ProvisionedConcurrency keeps an instance
warm, and cold starts show in ModelSetupTime and Prometheus. berth runs with --serverless-idle 2."""

import concurrent.futures
import datetime
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ROLE, ECHO_IMAGE, error_code, error_message, unique, wait_status


def serverless_endpoint(sm, memory=2048, concurrency=2, provisioned=None, env=None):
    ep = unique("sls")
    sm.create_model(ModelName=ep, PrimaryContainer={"Image": ECHO_IMAGE, "Environment": {"ECHO_NAME": ep, **(env or {})}}, ExecutionRoleArn=ROLE)
    config = {"MemorySizeInMB": memory, "MaxConcurrency": concurrency}
    if provisioned:
        config["ProvisionedConcurrency"] = provisioned
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[{"VariantName": "V", "ModelName": ep, "ServerlessConfig": config}])
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    d = wait_status(sm, ep)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    return ep, config


def variant_view(server, ep):
    overview = requests.get(f"{server.url}/berth/v1/overview", params={"window": 10, "period": 1}, timeout=10).json()
    (e,) = [e for e in overview["endpoints"] if e["name"] == ep]
    return e["variants"][0]


def wait_instances(server, ep, want, timeout=20):
    deadline = time.time() + timeout
    while variant_view(server, ep)["healthy_instances"] != want:
        assert time.time() < deadline, f"{ep} never had {want} healthy instances"
        time.sleep(0.1)


@pytest.fixture
def server(own_berth):
    return own_berth("--serverless-idle", "2")


def test_scale_to_zero_and_cold_start(server):
    sm, runtime = server.sm(), server.runtime()
    ep, config = serverless_endpoint(sm)
    d = sm.describe_endpoint(EndpointName=ep)
    v = d["ProductionVariants"][0]
    assert v["CurrentServerlessConfig"] == config and v["DesiredServerlessConfig"] == config
    assert "CurrentInstanceCount" not in v
    assert sm.describe_endpoint_config(EndpointConfigName=ep)["ProductionVariants"][0]["ServerlessConfig"] == config
    assert variant_view(server, ep)["healthy_instances"] == 0, "nothing runs before the first request"

    started = time.time()
    r = runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    cold = time.time() - started
    assert r["InvokedProductionVariant"] == "V" and b'"name"' in r["Body"].read()
    assert cold < 30
    view = variant_view(server, ep)
    assert view["healthy_instances"] == 1 and view["serverless"]["cold_starts"] == 1

    wait_instances(server, ep, 0, timeout=15)  # idle for 2 s: scaled to zero
    runtime.invoke_endpoint(EndpointName=ep, Body=b"x")  # and back
    assert variant_view(server, ep)["serverless"]["cold_starts"] == 2

    cw = server.client("cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc)
    setup = cw.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="ModelSetupTime",
        Dimensions=[{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": "V"}],
        StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=1), Period=3600, Statistics=["SampleCount"],
    )
    deadline = time.time() + 10
    while sum(p["SampleCount"] for p in setup["Datapoints"]) < 2 and time.time() < deadline:
        time.sleep(0.3)
        setup = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="ModelSetupTime",
            Dimensions=[{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": "V"}],
            StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=1), Period=3600, Statistics=["SampleCount"],
        )
    assert sum(p["SampleCount"] for p in setup["Datapoints"]) == 2, "one ModelSetupTime sample per cold start"
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert f'berth_serverless_cold_starts_total{{endpoint="{ep}",variant="V"}} 2' in text


def test_a_burst_above_max_concurrency_is_throttled_not_hung(server):
    sm = server.sm()
    ep, _ = serverless_endpoint(sm, concurrency=2, env={"ECHO_DELAY_MS": "800"})
    runtime = server.runtime(max_pool_connections=10)
    runtime.invoke_endpoint(EndpointName=ep, Body=b"warm")

    def call(_):
        try:
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert time.time() - started < 10, "nothing hung"
    assert results.count("ok") >= 2
    throttled = [r for r in results if r != "ok"]
    assert throttled and all(r == ("ThrottlingException", 429) for r in throttled), results
    # The suite's clients retry once, so the server may have refused more attempts than requests.
    assert len(throttled) <= variant_view(server, ep)["serverless"]["throttled"] <= 2 * len(results)


def test_provisioned_concurrency_keeps_an_instance_warm(server):
    sm = server.sm()
    ep, _ = serverless_endpoint(sm, provisioned=1)
    wait_instances(server, ep, 1)
    time.sleep(4)  # twice the idle time
    assert variant_view(server, ep)["healthy_instances"] == 1
    started = time.time()
    server.runtime().invoke_endpoint(EndpointName=ep, Body=b"x")
    assert variant_view(server, ep)["serverless"]["cold_starts"] == 0, "warm: no cold start"
    assert time.time() - started < 5


def test_serverless_errors(server):
    sm = server.sm()
    ep = unique("sls")
    sm.create_model(ModelName=ep, PrimaryContainer={"Image": ECHO_IMAGE}, ExecutionRoleArn=ROLE)

    unchecked = server.client("sagemaker", parameter_validation=False)  # let berth see what boto3 would refuse

    def refused(variant, text):
        with pytest.raises(ClientError) as e:
            unchecked.create_endpoint_config(EndpointConfigName=unique("cfg"), ProductionVariants=[{"VariantName": "V", "ModelName": ep, **variant}])
        assert error_code(e) == "ValidationException" and text in error_message(e), error_message(e)

    refused({"ServerlessConfig": {"MemorySizeInMB": 1000, "MaxConcurrency": 1}}, "memorySizeInMB")
    refused({"ServerlessConfig": {"MemorySizeInMB": 1500, "MaxConcurrency": 1}}, "memorySizeInMB")
    refused({"ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 500}}, "maxConcurrency")
    refused({"ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 3}}, "ProvisionedConcurrency")
    refused({"ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2}, "InstanceType": "ml.m5.large"}, "takes no InstanceType")
    ep2, _ = serverless_endpoint(sm)
    with pytest.raises(ClientError) as e:
        sm.update_endpoint_weights_and_capacities(EndpointName=ep2, DesiredWeightsAndCapacities=[{"VariantName": "V", "DesiredInstanceCount": 2}])
    assert "serverless" in error_message(e)
    aas = server.client("application-autoscaling")
    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=f"endpoint/{ep2}/variant/V", ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=2
        )
    assert "serverless" in e.value.response["Error"]["Message"]


def test_serverless_update_config_changes_concurrency(server):
    sm = server.sm()
    ep, _ = serverless_endpoint(sm, concurrency=2)
    assert variant_view(server, ep)["healthy_instances"] == 0
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "V", "ServerlessUpdateConfig": {"MaxConcurrency": 7, "ProvisionedConcurrency": 1}}]
    )
    v = sm.describe_endpoint(EndpointName=ep)["ProductionVariants"][0]
    assert v["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 7, "ProvisionedConcurrency": 1}
    assert variant_view(server, ep)["serverless"]["max_concurrency"] == 7
    wait_instances(server, ep, 1)  # provisioned: warm without a request
