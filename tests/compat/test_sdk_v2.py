"""The seed's walkthrough through the SageMaker Python SDK v2, unchanged but for endpoint_url."""

import collections

import boto3
import pytest

from conftest import CREDENTIALS, ECHO_IMAGE, ROLE, model_tarball, unique

sagemaker = pytest.importorskip("sagemaker")
if not sagemaker.__version__.startswith("2."):
    pytest.skip("this module drives SDK v2", allow_module_level=True)

from sagemaker.session import production_variant  # noqa: E402


@pytest.fixture
def sm_session(berth):
    boto_session = boto3.Session(**CREDENTIALS)
    return sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=berth.sm(),
        sagemaker_runtime_client=berth.runtime(),
    )


def test_seed_walkthrough(berth, sm_session, tmp_path):
    sm = berth.sm()
    sm_runtime = berth.runtime()
    model_name, model_name2 = unique("seed-model-a"), unique("seed-model-b")
    model_url = f"file://{model_tarball(tmp_path, 'model-a')}"
    model_url2 = f"file://{model_tarball(tmp_path, 'model-b')}"
    endpoint_name = unique("seed-endpoint")

    # Step 1: two models.
    sm_session.create_model(name=model_name, role=ROLE, container_defs={"Image": ECHO_IMAGE, "ModelDataUrl": model_url})
    sm_session.create_model(name=model_name2, role=ROLE, container_defs={"Image": ECHO_IMAGE, "ModelDataUrl": model_url2})

    # Step 2: two variants, one endpoint; the SDK waits for InService with its own poll.
    variant1 = production_variant(model_name=model_name, instance_type="ml.c5.4xlarge", initial_instance_count=1, variant_name="Variant1", initial_weight=1)
    variant2 = production_variant(model_name=model_name2, instance_type="ml.m5.4xlarge", initial_instance_count=1, variant_name="Variant2", initial_weight=1)
    sm_session.endpoint_from_production_variants(name=endpoint_name, production_variants=[variant1, variant2])
    assert sm.describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"] == "InService"

    # Step 3: invoke; traffic splits 1:1; TargetVariant pins.
    payload = "1.0,2.0,3.0"
    counts = collections.Counter()
    for _ in range(1000):
        r = sm_runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="text/csv", Body=payload)
        counts[r["InvokedProductionVariant"]] += 1
    assert 450 <= counts["Variant1"] <= 550, counts
    for _ in range(20):
        r = sm_runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="text/csv", Body=payload, TargetVariant="Variant1")
        assert r["InvokedProductionVariant"] == "Variant1"

    # Step 6: 25/75, then 0/1.
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint_name,
        DesiredWeightsAndCapacities=[
            {"DesiredWeight": 25, "VariantName": variant1["VariantName"]},
            {"DesiredWeight": 75, "VariantName": variant2["VariantName"]},
        ],
    )
    counts = collections.Counter(
        sm_runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="text/csv", Body=payload)["InvokedProductionVariant"] for _ in range(800)
    )
    assert 150 <= counts["Variant1"] <= 250, counts
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint_name,
        DesiredWeightsAndCapacities=[{"DesiredWeight": 0, "VariantName": "Variant1"}, {"DesiredWeight": 1, "VariantName": "Variant2"}],
    )
    for _ in range(100):
        assert sm_runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="text/csv", Body=payload)["InvokedProductionVariant"] == "Variant2"

    # Step 7: a config without Variant1.
    config2 = unique("seed-config-v2")
    existing = sm.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    sm_session.create_endpoint_config_from_existing(existing, config2, new_production_variants=[variant2])
    sm_session.update_endpoint(endpoint_name, config2, wait=False)
    sm_session.wait_for_endpoint(endpoint_name, poll=1)
    d = sm.describe_endpoint(EndpointName=endpoint_name)
    assert [v["VariantName"] for v in d["ProductionVariants"]] == ["Variant2"]

    # The SDK's Predictor works too.
    from sagemaker.predictor import Predictor

    predictor = Predictor(endpoint_name, sagemaker_session=sm_session)
    assert b"model-b" in predictor.predict(payload.encode(), initial_args={"ContentType": "text/csv"})
    predictor.delete_endpoint()
