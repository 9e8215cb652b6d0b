"""CloudWatch's older AWS query protocol (form in, XML out), which SDKs from before CloudWatch's
JSON/CBOR protocols speak. boto3 is made to speak it by loading CloudWatch's own service model
with only `query` in its protocols (through AWS_DATA_PATH), so the requests and the parsing of
answers are botocore's real query serializer and parser."""

import datetime

import pytest
from botocore.exceptions import ClientError

from conftest import cloudwatch_client, deploy
from test_metrics import send


@pytest.fixture
def query_cloudwatch(berth, tmp_path, monkeypatch):
    return cloudwatch_client(berth, "query", tmp_path, monkeypatch)


def test_metrics_read_back_through_the_query_protocol(berth, sm, runtime, query_cloudwatch):
    ep = deploy(sm, ["Variant1", "Variant2"])
    send(runtime, ep, "Variant1", 7)
    send(runtime, ep, "Variant1", 2, body=b"fail")
    cw = query_cloudwatch
    dims = [{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": "Variant1"}]
    now = datetime.datetime.now(datetime.timezone.utc)
    window = {"StartTime": now - datetime.timedelta(minutes=5), "EndTime": now + datetime.timedelta(minutes=1)}
    import time

    deadline = time.time() + 15
    while True:
        out = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=dims, Period=3600, Statistics=["Sum", "SampleCount"], **window
        )
        if sum(d["Sum"] for d in out["Datapoints"]) == 9 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert sum(d["Sum"] for d in out["Datapoints"]) == 9
    assert all(isinstance(d["Timestamp"], datetime.datetime) for d in out["Datapoints"])

    latency = cw.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="ModelLatency", Dimensions=dims, Period=3600, Statistics=["Maximum"], ExtendedStatistics=["p50", "p99"], **window
    )["Datapoints"][0]
    assert latency["Unit"] == "Microseconds" and 0 < latency["ExtendedStatistics"]["p50"] <= latency["ExtendedStatistics"]["p99"]

    errors = cw.get_metric_data(
        MetricDataQueries=[
            {"Id": "e", "MetricStat": {"Metric": {"Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors", "Dimensions": dims}, "Period": 3600, "Stat": "Sum"}}
        ],
        **window,
    )["MetricDataResults"][0]
    assert errors["Id"] == "e" and sum(errors["Values"]) == 2
    assert all(isinstance(t, datetime.datetime) for t in errors["Timestamps"])

    listed = cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": ep}])["Metrics"]
    assert {"Invocations", "ModelLatency"} <= {m["MetricName"] for m in listed}

    cw.put_metric_data(
        Namespace=f"Custom/{ep}",
        MetricData=[{"MetricName": "Accuracy", "Dimensions": [{"Name": "Variant", "Value": "1"}], "Value": 0.75, "Unit": "Percent"}],
    )
    custom = cw.get_metric_statistics(
        Namespace=f"Custom/{ep}", MetricName="Accuracy", Dimensions=[{"Name": "Variant", "Value": "1"}], Period=3600, Statistics=["Average"], **window
    )["Datapoints"]
    assert [(d["Average"], d["Unit"]) for d in custom] == [(0.75, "Percent")]


def test_query_protocol_errors_are_xml_errors(query_cloudwatch):
    now = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(ClientError) as e:
        query_cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocations", StartTime=now, EndTime=now - datetime.timedelta(minutes=1), Period=60, Statistics=["Sum"]
        )
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "StartTime must be before EndTime" in e.value.response["Error"]["Message"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
