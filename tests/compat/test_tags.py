"""AddTags / ListTags / DeleteTags on models, endpoint configs and endpoints."""

import pytest
from botocore.exceptions import ClientError

from conftest import create_echo_model, error_code, unique, variant


def test_tags_roundtrip(sm):
    name = unique("tagged")
    arn = create_echo_model(sm, name)["ModelArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}])
    assert sorted(sm.list_tags(ResourceArn=arn)["Tags"], key=lambda t: t["Key"]) == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    # Adding an existing key overwrites its value.
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "one"}])
    assert {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]} == {"a": "one", "b": "2"}
    sm.delete_tags(ResourceArn=arn, TagKeys=["a"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]

    cfg = unique("tagcfg")
    cfg_arn = sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("V", name)], Tags=[{"Key": "c", "Value": "3"}])["EndpointConfigArn"]
    assert sm.list_tags(ResourceArn=cfg_arn)["Tags"] == [{"Key": "c", "Value": "3"}]

    # Tags go with the resource.
    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as e:
        sm.list_tags(ResourceArn=arn)
    assert error_code(e) == "ValidationException"


def test_tag_pagination(sm):
    arn = create_echo_model(sm, unique("manytags"))["ModelArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{i:02}", "Value": str(i)} for i in range(50)])
    # MaxResults is at least 50 for ListTags, and a resource has at most 50 tags: one page.
    pages = list(sm.get_paginator("list_tags").paginate(ResourceArn=arn, PaginationConfig={"PageSize": 50}))
    assert [len(p["Tags"]) for p in pages] == [50]
    assert sorted(t["Key"] for p in pages for t in p["Tags"]) == [f"k{i:02}" for i in range(50)]


def test_tag_errors(sm):
    arn = create_echo_model(sm, unique("tagerr"))["ModelArn"]
    with pytest.raises(ClientError) as e:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "aws:reserved", "Value": "x"}])
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        sm.add_tags(ResourceArn=arn.replace(arn.rsplit("/", 1)[1], "absent-model"), Tags=[{"Key": "k", "Value": "v"}])
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        sm.list_tags(ResourceArn="arn:aws:s3:::bucket")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert error_code(e) == "ValidationException"
