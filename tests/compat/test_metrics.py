"""Per-variant metrics: exact counts after a known number of requests, read through Prometheus'
own text-format parser."""

import json

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import deploy, unique, wait_status

prometheus_parser = pytest.importorskip("prometheus_client.parser")


def scrape(berth, endpoint):
    """Samples of `endpoint` from GET /metrics, as {(metric, variant, extra labels): value}."""
    r = requests.get(f"{berth.url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in prometheus_parser.text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.labels.get("endpoint") != endpoint:
                continue
            extra = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("endpoint", "variant")))
            samples[(s.name, s.labels["variant"], extra)] = s.value
    return samples


def send(runtime, endpoint, target, n, body=b"x"):
    """Sends `n` requests to a variant; a body of b"fail" makes the echo container answer 500."""
    for _ in range(n):
        try:
            runtime.invoke_endpoint(EndpointName=endpoint, Body=body, TargetVariant=target)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ModelError", e


def test_counts_per_variant_are_exact(berth, sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"], variant_env={"Variant2": {"ECHO_STATUS": "400"}})
    send(runtime, ep, "Variant1", 30)
    send(runtime, ep, "Variant1", 10, body=b"fail")
    send(runtime, ep, "Variant2", 20)

    m = scrape(berth, ep)
    assert m[("berth_invocations_total", "Variant1", ())] == 40
    assert m[("berth_invocations_total", "Variant2", ())] == 20
    assert m[("berth_invocation_5xx_errors_total", "Variant1", ())] == 10
    assert m[("berth_invocation_4xx_errors_total", "Variant1", ())] == 0
    assert m[("berth_invocation_4xx_errors_total", "Variant2", ())] == 20
    assert m[("berth_invocation_model_errors_total", "Variant1", ())] == 10
    assert m[("berth_invocation_model_errors_total", "Variant2", ())] == 20
    assert m[("berth_model_latency_seconds_count", "Variant1", ())] == 40
    assert m[("berth_overhead_latency_seconds_count", "Variant2", ())] == 20
    # Plausible latency: every request took more than nothing and less than the 60 s timeout.
    total = m[("berth_model_latency_seconds_sum", "Variant1", ())]
    assert 0 < total / 40 < 60
    assert m[("berth_model_latency_seconds_bucket", "Variant1", (("le", "+Inf"),))] == 40
    assert m[("berth_variant_instances", "Variant1", (("state", "healthy"),))] == 1

    # Counters survive a weight change (the route is republished, the counters are not reset).
    sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Variant2", "DesiredWeight": 0}])
    runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    assert scrape(berth, ep)[("berth_invocations_total", "Variant1", ())] == 41


def wait_for_sum(cw, endpoint, variant_name, metric, expected, timeout=15):
    """Polls GetMetricStatistics until the metric's Sum reaches `expected` (history closes each second)."""
    import datetime
    import time

    deadline = time.time() + timeout
    while True:
        now = datetime.datetime.now(datetime.timezone.utc)
        out = cw.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant_name}],
            StartTime=now - datetime.timedelta(minutes=10),
            EndTime=now + datetime.timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum", "SampleCount", "Average", "Minimum", "Maximum"],
            ExtendedStatistics=["p50", "p99"],
        )
        total = sum(d["Sum"] for d in out["Datapoints"])
        if total >= expected or time.time() > deadline:
            return total, out


def test_cloudwatch_get_metric_statistics(berth, sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"])
    send(runtime, ep, "Variant1", 25)
    send(runtime, ep, "Variant2", 7, body=b"fail")

    cw = berth.client("cloudwatch")
    total, out = wait_for_sum(cw, ep, "Variant1", "Invocations", 25)
    assert total == 25
    assert out["Label"] == "Invocations"
    assert wait_for_sum(cw, ep, "Variant2", "Invocations", 7)[0] == 7
    assert wait_for_sum(cw, ep, "Variant2", "Invocation5XXErrors", 7)[0] == 7
    assert wait_for_sum(cw, ep, "Variant2", "InvocationModelErrors", 7)[0] == 7
    assert wait_for_sum(cw, ep, "Variant1", "Invocation4XXErrors", 0, timeout=0)[0] == 0

    _, latency = wait_for_sum(cw, ep, "Variant1", "ModelLatency", 1)
    (point,) = latency["Datapoints"]
    assert point["Unit"] == "Microseconds"
    assert point["SampleCount"] == 25
    assert 0 < point["Minimum"] <= point["Average"] <= point["Maximum"] < 60_000_000
    assert point["Minimum"] <= point["ExtendedStatistics"]["p50"] <= point["ExtendedStatistics"]["p99"] <= point["Maximum"]

    # ListMetrics names the variant's metrics with SageMaker's dimensions.
    listed = cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": ep}])["Metrics"]
    names = {(m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]}["VariantName"]) for m in listed}
    assert ("Invocations", "Variant1") in names and ("ModelLatency", "Variant2") in names

    # Errors in CloudWatch's shape.
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="Invocations", StartTime=now, EndTime=now + datetime.timedelta(minutes=1), Period=60)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # An unknown metric has no datapoints, as on CloudWatch.
    assert cw.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="NoSuchMetric", StartTime=now - datetime.timedelta(minutes=5), EndTime=now, Period=60, Statistics=["Sum"]
    )["Datapoints"] == []


def test_cloudwatch_over_smithy_rpc_v2_cbor(berth, sm, runtime):
    """The same query in the CBOR protocol (botocore prefers JSON; other SDKs use CBOR), with
    botocore's own CBOR serializer and parser."""
    import datetime

    import botocore.parsers
    import botocore.serialize
    import botocore.session

    ep = deploy(sm, ["V"])
    send(runtime, ep, "V", 9)
    cw = berth.client("cloudwatch")
    assert wait_for_sum(cw, ep, "V", "Invocations", 9)[0] == 9

    model = botocore.session.get_session().get_service_model("cloudwatch")
    operation = model.operation_model("GetMetricStatistics")
    now = datetime.datetime.now(datetime.timezone.utc)
    params = {
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocations",
        "Dimensions": [{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": "V"}],
        "StartTime": now - datetime.timedelta(minutes=10),
        "EndTime": now + datetime.timedelta(minutes=1),
        "Period": 3600,
        "Statistics": ["Sum"],
    }
    request = botocore.serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, operation)
    assert request["url_path"] == "/service/GraniteServiceVersion20100801/operation/GetMetricStatistics"
    r = requests.post(berth.url + request["url_path"], data=request["body"], headers=dict(request["headers"]), timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/cbor"
    parser = botocore.parsers.create_parser("smithy-rpc-v2-cbor")
    parsed = parser.parse({"status_code": 200, "headers": dict(r.headers), "body": r.content}, operation.output_shape)
    assert sum(d["Sum"] for d in parsed["Datapoints"]) == 9
    assert all(isinstance(d["Timestamp"], datetime.datetime) for d in parsed["Datapoints"])

    # GetMetricData: its list of timestamps comes back as CBOR timestamps too.
    gmd = model.operation_model("GetMetricData")
    gmd_params = {
        "MetricDataQueries": [{"Id": "q", "MetricStat": {"Metric": {k: params[k] for k in ("Namespace", "MetricName", "Dimensions")}, "Period": 3600, "Stat": "Sum"}}],
        "StartTime": params["StartTime"],
        "EndTime": params["EndTime"],
    }
    request = botocore.serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(gmd_params, gmd)
    r = requests.post(berth.url + request["url_path"], data=request["body"], headers=dict(request["headers"]), timeout=10)
    assert r.status_code == 200
    result = parser.parse({"status_code": 200, "headers": dict(r.headers), "body": r.content}, gmd.output_shape)["MetricDataResults"][0]
    assert sum(result["Values"]) == 9 and all(isinstance(t, datetime.datetime) for t in result["Timestamps"])

    del params["Statistics"]
    request = botocore.serialize.create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, operation)
    r = requests.post(berth.url + request["url_path"], data=request["body"], headers=dict(request["headers"]), timeout=10)
    assert r.status_code == 400
    error = parser.parse({"status_code": 400, "headers": dict(r.headers), "body": r.content}, operation.output_shape)
    assert error["Error"]["Code"] == "MissingParameter"


def test_metric_history_survives_kill_9(own_berth):
    import signal
    import time

    server = own_berth()
    sm, rt = server.sm(), server.runtime()
    ep = deploy(sm, ["V"])
    send(rt, ep, "V", 12)
    assert wait_for_sum(server.client("cloudwatch"), ep, "V", "Invocations", 12)[0] == 12
    # Wait until the seconds that held the requests are in the state store.
    import sqlite3

    deadline = time.time() + 10
    while True:
        with sqlite3.connect(server.data_dir / "state.db") as db:
            bodies = db.execute("SELECT body FROM metric_samples WHERE endpoint = ? AND resolution = 1", (ep,)).fetchall()
        if sum(json.loads(b)["invocations"] for (b,) in bodies) == 12:
            break
        assert time.time() < deadline, "no metric samples were stored"
        time.sleep(0.05)
    server.restart(signal.SIGKILL)
    total, _ = wait_for_sum(server.client("cloudwatch"), ep, "V", "Invocations", 12, timeout=5)
    assert total == 12
    # New traffic adds to the restored history.
    wait_status(server.sm(), ep, "InService")
    server.runtime().invoke_endpoint(EndpointName=ep, Body=b"x")
    assert wait_for_sum(server.client("cloudwatch"), ep, "V", "Invocations", 13)[0] == 13


def test_cloudwatch_get_metric_data(berth, sm, runtime):
    import datetime

    ep = deploy(sm, ["Variant1", "Variant2"])
    send(runtime, ep, "Variant1", 6)
    send(runtime, ep, "Variant2", 4)
    cw = berth.client("cloudwatch")
    assert wait_for_sum(cw, ep, "Variant2", "Invocations", 4)[0] == 4
    assert wait_for_sum(cw, ep, "Variant1", "Invocations", 6)[0] == 6

    def query(qid, variant_name, metric, stat):
        dims = [{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": variant_name}]
        return {"Id": qid, "MetricStat": {"Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims}, "Period": 3600, "Stat": stat}}

    now = datetime.datetime.now(datetime.timezone.utc)
    out = cw.get_metric_data(
        MetricDataQueries=[query("v1", "Variant1", "Invocations", "Sum"), query("v2", "Variant2", "Invocations", "Sum"), query("lat", "Variant1", "ModelLatency", "p99")],
        StartTime=now - datetime.timedelta(minutes=10),
        EndTime=now + datetime.timedelta(minutes=1),
    )
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert sum(results["v1"]["Values"]) == 6 and sum(results["v2"]["Values"]) == 4
    assert results["v1"]["StatusCode"] == "Complete" and results["v1"]["Label"] == "Invocations"
    assert all(isinstance(t, datetime.datetime) for t in results["v1"]["Timestamps"])
    assert results["lat"]["Values"] and results["lat"]["Values"][0] > 0

    with pytest.raises(ClientError):
        cw.get_metric_data(MetricDataQueries=[{"Id": "e", "Expression": "SUM(METRICS())"}], StartTime=now - datetime.timedelta(minutes=5), EndTime=now)


def test_invocations_per_instance(berth, sm, runtime):
    name = deploy(sm, ["V"], count=2)
    send(runtime, name, "V", 20)
    cw = berth.client("cloudwatch")
    assert wait_for_sum(cw, name, "V", "Invocations", 20)[0] == 20
    # Two instances: each second's invocations are halved, so the period's sum is 20 / 2.
    assert wait_for_sum(cw, name, "V", "InvocationsPerInstance", 10)[0] == 10


def test_custom_metrics_put_and_read_back(berth):
    import datetime

    cw = berth.client("cloudwatch")
    ns = unique("Custom/AB")
    now = datetime.datetime.now(datetime.timezone.utc)
    dims = [{"Name": "Model", "Value": "challenger"}, {"Name": "Team", "Value": "ml"}]
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {"MetricName": "Accuracy", "Dimensions": dims, "Timestamp": now, "Value": 0.9, "Unit": "Percent"},
            {"MetricName": "Accuracy", "Dimensions": list(reversed(dims)), "Timestamp": now, "Values": [0.8, 1.0], "Counts": [1, 2], "Unit": "Percent"},
            {"MetricName": "Accuracy", "Dimensions": dims, "Timestamp": now, "StatisticValues": {"SampleCount": 2, "Sum": 1.4, "Minimum": 0.6, "Maximum": 0.8}, "Unit": "Percent"},
        ],
    )
    out = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Accuracy",
        Dimensions=dims,
        StartTime=now - datetime.timedelta(minutes=5),
        EndTime=now + datetime.timedelta(minutes=5),
        Period=600,
        Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"],
    )
    (d,) = out["Datapoints"]
    assert d["SampleCount"] == 6
    assert abs(d["Sum"] - (0.9 + 0.8 + 2.0 + 1.4)) < 1e-9
    assert (d["Minimum"], d["Maximum"]) == (0.6, 1.0)
    assert d["Unit"] == "Percent"
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert [(m["MetricName"], sorted((x["Name"], x["Value"]) for x in m["Dimensions"])) for m in listed] == [("Accuracy", [("Model", "challenger"), ("Team", "ml")])]
    # Different dimensions are a different metric.
    assert cw.get_metric_statistics(
        Namespace=ns, MetricName="Accuracy", Dimensions=dims[:1], StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=5), Period=600, Statistics=["Sum"]
    )["Datapoints"] == []
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[{"MetricName": "Invocations", "Value": 1}])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_model_setup_time(berth, sm):
    name = deploy(sm, ["V"], count=2)
    cw = berth.client("cloudwatch")
    _, out = wait_for_sum(cw, name, "V", "ModelSetupTime", 1)
    (point,) = out["Datapoints"]
    assert point["SampleCount"] == 2 and point["Unit"] == "Microseconds"
    # A Python container takes a noticeable but bounded time to start.
    assert 1_000 < point["Minimum"] <= point["Maximum"] < 60_000_000
    assert scrape(berth, name)[("berth_model_setup_seconds_count", "V", ())] == 2
