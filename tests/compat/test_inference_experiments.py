"""SageMaker's shadow testing API through boto3: CreateInferenceExperiment puts a shadow variant
beside production, Describe/List/Update show and change it, StopInferenceExperiment promotes or
removes the shadow, schedules start and end experiments by themselves, DeleteInferenceExperiment."""

import datetime
import json
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ROLE, create_echo_model, deploy, error_code, error_message, unique


def model_variant(model, name, count=1):
    return {
        "ModelName": model,
        "VariantName": name,
        "InfrastructureConfig": {"InfrastructureType": "RealTimeInference", "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count}},
    }


def experiment(sm, ep, shadow_model, percent, **extra):
    name = unique("ie")
    sm.create_inference_experiment(
        Name=name,
        Type="ShadowMode",
        RoleArn=ROLE,
        EndpointName=ep,
        ModelVariants=[model_variant(f"{ep}-prod".lower(), "Prod"), model_variant(shadow_model, "Shadow")],
        ShadowModeConfig={"SourceModelVariantName": "Prod", "ShadowModelVariants": [{"ShadowModelVariantName": "Shadow", "SamplingPercentage": percent}]},
        **extra,
    )
    return name


def wait_experiment(sm, name, want, timeout=60):
    deadline = time.time() + timeout
    while True:
        d = sm.describe_inference_experiment(Name=name)
        if d["Status"] == want:
            return d
        assert time.time() < deadline, f"{name} stayed {d['Status']}: {d.get('StatusReason')}"
        time.sleep(0.1)


def sampled(berth, ep):
    shadows = requests.get(f"{berth.url}/berth/v1/endpoints/{ep}/shadows", timeout=10).json()["shadows"]
    return shadows[0]["sampled"] if shadows else 0


def settle(berth, ep):
    """The shadow count once copies stop arriving."""
    last = -1
    while (now := sampled(berth, ep)) != last:
        last = now
        time.sleep(0.5)
    return now


def test_shadow_experiment_then_promote(berth, sm, runtime):
    ep = deploy(sm, ["Prod"])
    shadow_model = unique("candidate").lower()
    create_echo_model(sm, shadow_model)
    name = experiment(sm, ep, shadow_model, 50, Description="try the candidate")
    d = wait_experiment(sm, name, "Running")
    assert d["Arn"].endswith(f":inference-experiment/{name.lower()}") and d["Type"] == "ShadowMode"
    assert d["EndpointMetadata"]["EndpointName"] == ep and d["EndpointMetadata"]["EndpointStatus"] == "InService"
    assert {v["VariantName"]: v["Status"] for v in d["ModelVariants"]} == {"Prod": "InService", "Shadow": "InService"}
    assert d["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] == 50
    assert d["Schedule"]["EndTime"] > d["Schedule"]["StartTime"], "a default end time (7 days)"
    described = sm.describe_endpoint(EndpointName=ep)
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["Shadow"]

    for _ in range(200):
        r = runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
        assert json.loads(r["Body"].read())["name"] == f"{ep}-prod".lower()
    first = settle(berth, ep)
    assert 60 <= first <= 140, first

    sm.update_inference_experiment(
        Name=name, ShadowModeConfig={"SourceModelVariantName": "Prod", "ShadowModelVariants": [{"ShadowModelVariantName": "Shadow", "SamplingPercentage": 100}]}
    )
    for _ in range(50):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    assert settle(berth, ep) - first == 50
    listed = sm.list_inference_experiments(StatusEquals="Running")["InferenceExperiments"]
    assert name in [x["Name"] for x in listed]

    sm.stop_inference_experiment(Name=name, ModelVariantActions={"Shadow": "Promote", "Prod": "Remove"})
    d = wait_experiment(sm, name, "Completed")
    assert "CompletionTime" in d
    described = sm.describe_endpoint(EndpointName=ep)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["Prod"]
    assert "ShadowProductionVariants" not in described
    r = runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    assert json.loads(r["Body"].read())["name"] == shadow_model, "the promoted model serves production"

    sm.delete_inference_experiment(Name=name)
    with pytest.raises(ClientError) as e:
        sm.describe_inference_experiment(Name=name)
    assert error_code(e) == "ValidationException" and "Could not find inference experiment" in error_message(e)


def test_scheduled_experiment_starts_and_ends_by_itself(berth, sm, runtime):
    ep = deploy(sm, ["Prod"])
    shadow_model = unique("candidate").lower()
    create_echo_model(sm, shadow_model)
    now = datetime.datetime.now(datetime.timezone.utc)
    name = experiment(
        sm, ep, shadow_model, 100, Schedule={"StartTime": now + datetime.timedelta(seconds=2), "EndTime": now + datetime.timedelta(seconds=6)}
    )
    assert sm.describe_inference_experiment(Name=name)["Status"] == "Created"
    wait_experiment(sm, name, "Running", timeout=30)
    runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    d = wait_experiment(sm, name, "Completed", timeout=30)
    assert "EndTime" in d["StatusReason"]
    described = sm.describe_endpoint(EndpointName=ep)
    assert "ShadowProductionVariants" not in described, "the shadow is removed at the end"
    assert json.loads(runtime.invoke_endpoint(EndpointName=ep, Body=b"x")["Body"].read())["name"] == f"{ep}-prod".lower()


def test_experiment_errors(berth, sm):
    ep = deploy(sm, ["Prod"])
    shadow_model = unique("candidate").lower()
    create_echo_model(sm, shadow_model)
    with pytest.raises(ClientError) as e:
        sm.create_inference_experiment(
            Name=unique("ie"), Type="ShadowMode", RoleArn=ROLE, EndpointName=ep,
            ModelVariants=[model_variant(shadow_model, "Shadow")],
            ShadowModeConfig={"SourceModelVariantName": "Nope", "ShadowModelVariants": [{"ShadowModelVariantName": "Shadow", "SamplingPercentage": 10}]},
        )
    assert "SourceModelVariantName 'Nope'" in error_message(e)
    name = experiment(sm, ep, shadow_model, 10)
    with pytest.raises(ClientError) as e:
        experiment(sm, ep, shadow_model, 10)
    assert f"already has inference experiment {name}" in error_message(e)
    wait_experiment(sm, name, "Running")
    with pytest.raises(ClientError) as e:
        sm.delete_inference_experiment(Name=name)
    assert "stop it before deleting it" in error_message(e)
    sm.stop_inference_experiment(Name=name, ModelVariantActions={"Shadow": "Remove"}, DesiredState="Cancelled", Reason="not needed")
    d = wait_experiment(sm, name, "Cancelled")
    assert d["StatusReason"] == "not needed"
    with pytest.raises(ClientError) as e:
        sm.stop_inference_experiment(Name=name, ModelVariantActions={"Shadow": "Remove"})
    assert "only a Running experiment can be stopped" in error_message(e)
