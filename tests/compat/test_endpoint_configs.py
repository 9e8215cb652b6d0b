"""CreateEndpointConfig / DescribeEndpointConfig / ListEndpointConfigs / DeleteEndpointConfig."""

import pytest
from botocore.exceptions import ClientError

from conftest import create_echo_model, error_code, error_message, unique, variant


def test_create_describe_list_delete(sm):
    model = unique("cfgmodel")
    create_echo_model(sm, model)
    name = unique("Config")
    arn = sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            variant("Variant1", model, 0.5, 2, RoutingConfig={"RoutingStrategy": "RANDOM"}),
            variant("Variant2", model, 0.5, ContainerStartupHealthCheckTimeoutInSeconds=120),
        ],
    )["EndpointConfigArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name.lower()}"

    d = sm.describe_endpoint_config(EndpointConfigName=name)
    assert d["EndpointConfigName"] == name
    assert d["EndpointConfigArn"] == arn
    v1, v2 = d["ProductionVariants"]
    assert v1["VariantName"] == "Variant1" and v1["ModelName"] == model
    assert v1["InitialInstanceCount"] == 2 and v1["InstanceType"] == "ml.m5.large"
    assert v1["InitialVariantWeight"] == 0.5
    assert v1["RoutingConfig"] == {"RoutingStrategy": "RANDOM"}
    assert v2["ContainerStartupHealthCheckTimeoutInSeconds"] == 120
    assert "CreationTime" in d

    listed = sm.list_endpoint_configs(NameContains=name)["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in listed] == [name]
    assert listed[0]["EndpointConfigArn"] == arn

    sm.delete_endpoint_config(EndpointConfigName=name)
    with pytest.raises(ClientError) as e:
        sm.describe_endpoint_config(EndpointConfigName=name)
    assert error_code(e) == "ValidationException"
    assert error_message(e) == f'Could not find endpoint configuration "{arn}".'


def test_config_errors(sm):
    model = unique("cfgerr")
    create_echo_model(sm, model)

    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(EndpointConfigName=unique("c"), ProductionVariants=[variant("V", unique("nomodel"))])
    assert error_code(e) == "ValidationException"
    assert "Could not find model" in error_message(e)

    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(
            EndpointConfigName=unique("c"),
            ProductionVariants=[{**variant("V", model), "InstanceType": "ml.m5.gigantic"}],
        )
    assert error_code(e) == "ValidationException"
    assert "ml.m5.gigantic" in error_message(e)

    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(EndpointConfigName=unique("c"), ProductionVariants=[variant("V", model), variant("V", model)])
    assert error_code(e) == "ValidationException"

    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(
            EndpointConfigName=unique("c"),
            ProductionVariants=[variant("V", model, RoutingConfig={"RoutingStrategy": "ROUND_ROBIN"})],
        )
    assert error_code(e) == "ValidationException"

    name = unique("c")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", model)])
    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", model)])
    assert error_code(e) == "ValidationException"
    assert error_message(e).startswith("Cannot create already existing endpoint configuration")


def test_unsupported_features_are_named(sm):
    model = unique("unsup")
    create_echo_model(sm, model)
    # Asynchronous inference is served (test_async_inference.py); what it cannot do is named.
    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(
            EndpointConfigName=unique("c"),
            ProductionVariants=[variant("V", model)],
            AsyncInferenceConfig={"OutputConfig": {"S3FailurePath": "s3://bucket/failures"}},
        )
    assert error_code(e) == "ValidationException"
    assert "AsyncInferenceConfig.OutputConfig.S3OutputPath is required" in error_message(e)

    # Members that would change what the endpoint does are refused by name, never ignored.
    refused = [
        ({"ExplainerConfig": {"ClarifyExplainerConfig": {"ShapConfig": {"ShapBaselineConfig": {"MimeType": "text/csv"}}}}}, {}, "ExplainerConfig"),
        ({}, {"InstancePools": [{"InstanceType": "ml.m5.large", "Priority": 1}]}, "InstancePools"),
        # Managed instance scaling is for variants hosting inference components (no ModelName).
        ({}, {"ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2}}, "ManagedInstanceScaling"),
    ]
    for config_extra, variant_extra, member in refused:
        with pytest.raises(ClientError) as e:
            sm.create_endpoint_config(EndpointConfigName=unique("c"), ProductionVariants=[variant("V", model, **variant_extra)], **config_extra)
        assert error_code(e) == "ValidationException" and member in error_message(e), error_message(e)
    for container_extra, member in [
        ({"Mode": "MultiModel"}, "MultiModel"),
        ({"MultiModelConfig": {"ModelCacheSetting": "Enabled"}}, "MultiModel"),
        ({"AdditionalModelDataSources": [{"ChannelName": "draft", "S3DataSource": {"S3Uri": "s3://b/k", "S3DataType": "S3Prefix", "CompressionType": "None"}}]}, "AdditionalModelDataSources"),
    ]:
        with pytest.raises(ClientError) as e:
            sm.create_model(ModelName=unique("m"), PrimaryContainer={"Image": "berth/onnx", **container_extra}, ExecutionRoleArn="arn:aws:iam::123456789012:role/r")
        assert error_code(e) == "ValidationException" and member in error_message(e), error_message(e)
    # Settings without meaning on one machine are accepted.
    name = unique("c")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", model, VolumeSizeInGB=30, ManagedInstanceScaling={"Status": "DISABLED"})])
    assert sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]["VariantName"] == "V"


def test_list_endpoint_configs_pages(sm):
    model = unique("pg")
    create_echo_model(sm, model)
    tag = unique("cfgpage")
    names = [f"{tag}-{i}" for i in range(5)]
    for n in names:
        sm.create_endpoint_config(EndpointConfigName=n, ProductionVariants=[variant("V", model)])
    pages = list(sm.get_paginator("list_endpoint_configs").paginate(NameContains=tag, SortBy="Name", SortOrder="Descending", PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    assert [c["EndpointConfigName"] for p in pages for c in p["EndpointConfigs"]] == sorted(names, reverse=True)
