"""CreateModel / DescribeModel / ListModels / DeleteModel through boto3."""

import datetime

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from conftest import ECHO_IMAGE, ROLE, create_echo_model, error_code, error_message, http_status, model_dir, unique


def test_create_describe_delete(sm, tmp_path):
    name = unique("Model-Mixed")
    d = model_dir(tmp_path, "v1")
    arn = sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": ECHO_IMAGE, "ModelDataUrl": f"file://{d}", "Environment": {"K": "V"}},
        ExecutionRoleArn=ROLE,
        Tags=[{"Key": "team", "Value": "ml"}],
    )["ModelArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:model/{name.lower()}"

    got = sm.describe_model(ModelName=name)
    assert got["ModelName"] == name
    assert got["ModelArn"] == arn
    assert got["ExecutionRoleArn"] == ROLE
    assert got["PrimaryContainer"]["Image"] == ECHO_IMAGE
    assert got["PrimaryContainer"]["ModelDataUrl"] == f"file://{d}"
    assert got["PrimaryContainer"]["Environment"] == {"K": "V"}
    assert isinstance(got["CreationTime"], datetime.datetime)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - got["CreationTime"]).total_seconds()) < 60
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]

    # Names are case-insensitive, as in SageMaker.
    assert sm.describe_model(ModelName=name.upper())["ModelName"] == name

    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as e:
        sm.describe_model(ModelName=name)
    assert error_code(e) == "ValidationException"
    assert http_status(e) == 400
    assert error_message(e) == f'Could not find model "{arn}".'


def test_duplicate_model_is_refused(sm):
    name = unique("dup")
    create_echo_model(sm, name)
    with pytest.raises(ClientError) as e:
        create_echo_model(sm, name)
    assert error_code(e) == "ValidationException"
    assert error_message(e).startswith("Cannot create already existing model")


def test_delete_missing_model(sm):
    with pytest.raises(ClientError) as e:
        sm.delete_model(ModelName=unique("missing"))
    assert error_code(e) == "ValidationException"
    assert "Could not find model" in error_message(e)


@pytest.mark.parametrize("bad", ["has_underscore", "-leading-hyphen", "x" * 64, "spaces here"])
def test_invalid_model_names(sm, bad):
    with pytest.raises(ClientError) as e:
        sm.create_model(ModelName=bad, PrimaryContainer={"Image": ECHO_IMAGE}, ExecutionRoleArn=ROLE)
    assert error_code(e) == "ValidationException"
    assert "ModelName" in error_message(e) or "modelName" in error_message(e)


def test_missing_required_member_is_caught(berth):
    # boto3 validates required members itself; the server must also refuse a raw request.
    import requests

    with pytest.raises(ParamValidationError):
        berth.sm().create_model(PrimaryContainer={"Image": ECHO_IMAGE})
    with pytest.raises(ClientError) as e:
        berth.sm().create_model(ModelName=unique("m"))
    assert error_code(e) == "ValidationException"
    r = requests.post(
        berth.url,
        data="{}",
        headers={"X-Amz-Target": "SageMaker.CreateModel", "Content-Type": "application/x-amz-json-1.1"},
    )
    assert r.status_code == 400
    assert r.json()["__type"].endswith("ValidationException")


def test_unknown_operation_and_bad_json(berth):
    import requests

    h = {"Content-Type": "application/x-amz-json-1.1"}
    r = requests.post(berth.url, data="{}", headers={**h, "X-Amz-Target": "SageMaker.CreateNotebookInstance"})
    assert r.status_code == 400
    assert "UnknownOperation" in r.json()["__type"] or "not supported" in r.json()["Message"]
    r = requests.post(berth.url, data="{not json", headers={**h, "X-Amz-Target": "SageMaker.ListModels"})
    assert r.status_code == 400
    assert "SerializationException" in r.json()["__type"] or "ValidationException" in r.json()["__type"]


def test_bad_image_and_data_url(sm, tmp_path):
    with pytest.raises(ClientError) as e:
        sm.create_model(ModelName=unique("m"), PrimaryContainer={"Image": "exec:/no/such/program"}, ExecutionRoleArn=ROLE)
    assert error_code(e) == "ValidationException"
    assert "/no/such/program" in error_message(e)
    with pytest.raises(ClientError) as e:
        sm.create_model(
            ModelName=unique("m"),
            PrimaryContainer={"Image": ECHO_IMAGE, "ModelDataUrl": f"file://{tmp_path}/absent.tar.gz"},
            ExecutionRoleArn=ROLE,
        )
    assert error_code(e) == "ValidationException"
    assert "absent.tar.gz" in error_message(e)
    with pytest.raises(ClientError) as e:
        sm.create_model(
            ModelName=unique("m"),
            PrimaryContainer={"Image": ECHO_IMAGE, "ModelDataUrl": "ftp://example/model.tar.gz"},
            ExecutionRoleArn=ROLE,
        )
    assert error_code(e) == "ValidationException"


def test_list_models_pagination_filters_and_sorting(sm):
    tag = unique("lst").lower()
    names = [f"{tag}-{i}" for i in range(7)]
    for n in names:
        create_echo_model(sm, n)

    page1 = sm.list_models(NameContains=tag, MaxResults=3)
    assert len(page1["Models"]) == 3
    assert "NextToken" in page1
    seen = [m["ModelName"] for m in page1["Models"]]
    token = page1["NextToken"]
    while token:
        page = sm.list_models(NameContains=tag, MaxResults=3, NextToken=token)
        seen += [m["ModelName"] for m in page["Models"]]
        token = page.get("NextToken")
    # Default order: newest first.
    assert seen == list(reversed(names))

    by_name = sm.list_models(NameContains=tag, SortBy="Name", SortOrder="Ascending")["Models"]
    assert [m["ModelName"] for m in by_name] == sorted(names)
    assert all(m["ModelArn"].endswith(m["ModelName"]) for m in by_name)

    # boto3's paginator drives NextToken by itself.
    paginated = [m["ModelName"] for p in sm.get_paginator("list_models").paginate(NameContains=tag, PaginationConfig={"PageSize": 2}) for m in p["Models"]]
    assert sorted(paginated) == sorted(names)

    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    assert sm.list_models(NameContains=tag, CreationTimeAfter=future)["Models"] == []
    assert len(sm.list_models(NameContains=tag, CreationTimeBefore=future)["Models"]) == 7

    with pytest.raises(ClientError) as e:
        sm.list_models(NextToken="not-a-token")
    assert error_code(e) == "ValidationException"


def test_vpc_config_is_kept_and_validated(sm, runtime):
    """Production code often sets VpcConfig: berth keeps and shows it (its instances run on the
    machine's own network) and checks it as SageMaker does."""
    name = unique("vpc")
    vpc = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"]}
    sm.create_model(ModelName=name, PrimaryContainer={"Image": ECHO_IMAGE, "Environment": {"ECHO_NAME": name}}, ExecutionRoleArn=ROLE, VpcConfig=vpc)
    assert sm.describe_model(ModelName=name)["VpcConfig"] == vpc
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{"VariantName": "V", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"x")["ResponseMetadata"]["HTTPStatusCode"] == 200
    plain = unique("novpc")
    create_echo_model(sm, plain)
    assert "VpcConfig" not in sm.describe_model(ModelName=plain)

    for bad, says in [
        ({"SecurityGroupIds": [f"sg-{i}" for i in range(6)], "Subnets": ["subnet-1"]}, "vpcConfig.securityGroupIds"),
        ({"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet_with_underscore"]}, "regular expression pattern"),
    ]:
        with pytest.raises(ClientError) as e:
            sm.create_model(ModelName=unique("vpc-bad"), PrimaryContainer={"Image": ECHO_IMAGE}, ExecutionRoleArn=ROLE, VpcConfig=bad)
        assert error_code(e) == "ValidationException" and says in error_message(e), error_message(e)
