"""Wire details a run of moto's own SageMaker tests against berth turned up, each as SageMaker
answers it: ARNs naming a resource in its original case, the weight-update errors' wording,
and the sort keys each List* operation takes."""

import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import deploy, error_code, error_message


def test_tags_find_a_resource_whose_arn_spells_its_name_as_chosen(sm):
    name = f"MyEndpoint-{uuid.uuid4().hex[:8]}"
    deploy(sm, ["A"], name=name)
    arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
    assert arn.endswith(f":endpoint/{name.lower()}")
    as_named = arn[: -len(name)] + name
    sm.add_tags(ResourceArn=as_named, Tags=[{"Key": "team", "Value": "search"}])
    assert sm.list_tags(ResourceArn=as_named)["Tags"] == [{"Key": "team", "Value": "search"}]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "search"}]
    sm.delete_tags(ResourceArn=as_named, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []
    with pytest.raises(Exception) as e:
        sm.list_tags(ResourceArn=arn[: -len(name)] + "NoSuchEndpoint")
    assert error_code(e) == "ValidationException"


def test_weight_update_errors_are_worded_as_sagemaker_words_them(sm):
    name = deploy(sm, ["A", "B"])
    config = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    update = lambda *variants: sm.update_endpoint_weights_and_capacities(  # noqa: E731
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": v, "DesiredWeight": 1} for v in variants]
    )
    with pytest.raises(Exception) as e:
        update("A", "Nope")
    assert error_message(e) == f'The variant name(s) "Nope" is/are not present within endpoint configuration "{config}".'
    with pytest.raises(Exception) as e:
        update("A", "A")
    assert error_message(e) == 'The variant name "A" was non-unique within the request.'


def test_each_list_operation_takes_its_own_sort_keys(sm):
    sm.list_endpoints(SortBy="Status")
    for call in (sm.list_endpoint_configs, sm.list_models):
        with pytest.raises(Exception) as e:
            call(SortBy="Status")
        assert error_code(e) == "ValidationException"
        assert "[Name, CreationTime]" in error_message(e), error_message(e)


def test_every_answer_carries_its_request_id_and_the_log_names_it(own_berth):
    """One id per request: in the answer's x-amzn-RequestId (as boto3 reports it) and in the
    span of what berth logs while handling it."""
    server = own_berth()
    sm = server.sm()
    name = deploy(sm, ["A"])
    created = sm.describe_endpoint(EndpointName=name)["ResponseMetadata"]["RequestId"]
    answer = server.runtime().invoke_endpoint(EndpointName=name, Body=b"x")
    ids = {created, answer["ResponseMetadata"]["RequestId"]}
    assert len(ids) == 2 and all(len(i) == 36 for i in ids), ids
    with pytest.raises(Exception) as e:
        sm.describe_endpoint(EndpointName="no-such-endpoint")
    failed = e.value.response["ResponseMetadata"]["RequestId"]
    assert len(failed) == 36 and failed not in ids
    # CreateEndpoint logs "endpoint creating" inside its request's span.
    config = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    second = sm.create_endpoint(EndpointName=f"{name}-2", EndpointConfigName=config)["ResponseMetadata"]["RequestId"]
    lines = [l for l in server.log_text().splitlines() if "endpoint creating" in l and f"{name}-2" in l]
    assert lines and f"id={second}" in lines[0] and "operation{name=CreateEndpoint}" in lines[0], lines


def test_runtime_members_berth_lacks_are_refused_by_name_not_ignored(sm, runtime):
    name = deploy(sm, ["A"])
    members = {
        "SessionId": "NEW_SESSION",
        "EnableExplanations": "`true`",
    }
    for member, value in members.items():
        with pytest.raises(ClientError) as e:
            runtime.invoke_endpoint(EndpointName=name, Body=b"x", ContentType="text/plain", **{member: value})
        assert error_code(e) == "ValidationError", member
        assert f"{member} is not supported by this version of berth" in error_message(e)
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"x", ContentType="text/plain")["ResponseMetadata"]["HTTPStatusCode"] == 200
    # InferenceComponentName is served (test_inference_components.py); an endpoint of models refuses it.
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x", ContentType="text/plain", InferenceComponentName="ic")
    assert error_code(e) == "ValidationError" and "Inference Component Name header is not allowed" in error_message(e)
    # TargetModel is served (multi-model endpoints, test_multi_model.py); here it is refused by reason.
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x", ContentType="text/plain", TargetModel="model-a.tar.gz")
    assert error_code(e) == "ValidationError" and "does not serve multiple models" in error_message(e)


def test_unknown_runtime_paths_answer_in_sagemakers_error_shape(berth):
    import requests

    for method, path in [("POST", "/endpoints/e/unknown"), ("GET", "/endpoints/e/invocations"), ("POST", "/endpoints/e")]:
        r = requests.request(method, f"{berth.url}{path}", data=b"x", timeout=10)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.headers["x-amzn-errortype"] == "UnknownOperationException" and r.headers.get("x-amzn-requestid")
        assert "is not an operation of SageMaker's runtime" in r.json()["message"]
