"""Instances' logs through CloudWatch Logs' read API on berth's port, where SageMaker users read
them: an endpoint's group `/aws/sagemaker/Endpoints/<name>` with a stream per variant and
instance (boto3, and following it as `aws logs tail --follow` does, a request's line showing as
it happens), and `/aws/sagemaker/TransformJobs` read by the SDK's `Transformer.wait(logs=True)`."""

import time

import boto3
import pytest

from conftest import CREDENTIALS, create_echo_model, error_code, error_message, new_bucket, unique, wait_status


def logs_client(berth):
    return boto3.client("logs", endpoint_url=berth.url, **CREDENTIALS)


def echo_endpoint(sm, name, count=1):
    create_echo_model(sm, name, env={"ECHO_STDERR": f"model {name} says hello"})
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": count, "InstanceType": "ml.m5.large"}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_status(sm, name)["EndpointStatus"] == "InService"


def test_an_endpoints_instances_are_log_streams(berth):
    sm, logs = berth.sm(), logs_client(berth)
    name = unique("logged-ep")
    echo_endpoint(sm, name, count=2)
    group = f"/aws/sagemaker/Endpoints/{name}"
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]] == [group]
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert len(streams) == 2 and all(s["logStreamName"].startswith("AllTraffic/") for s in streams), streams
    stream = streams[0]["logStreamName"]
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    messages = [e["message"] for e in events]
    assert f"model {name} says hello" in messages, messages
    assert all(e["timestamp"] > (time.time() - 600) * 1000 for e in events), "events carry the times their lines were written"
    # A request's line, found among both instances' by its words.
    berth.runtime().invoke_endpoint(EndpointName=name, Body=b"1,2", ContentType="text/csv")
    deadline = time.time() + 10
    while not logs.filter_log_events(logGroupName=group, filterPattern='"POST /invocations"')["events"]:
        assert time.time() < deadline, "the request's line reached no stream"
        time.sleep(0.3)
    for call, code in (
        (lambda: logs.get_log_events(logGroupName=group, logStreamName="AllTraffic/../../etc/passwd"), "ResourceNotFoundException"),
        (lambda: logs.describe_log_streams(logGroupName="/aws/sagemaker/Endpoints/../ProcessingJobs"), "ResourceNotFoundException"),
        (lambda: logs.describe_log_groups(logGroupNamePrefix="/aws", logGroupNamePattern="x"), "InvalidParameterException"),
        (lambda: logs.describe_log_groups(nextToken="g/x"), "InvalidParameterException"),
    ):
        with pytest.raises(Exception) as e:
            call()
        assert error_code(e) == code, error_message(e)


def test_following_a_group_as_aws_logs_tail_does_shows_each_line_once(berth):
    """`aws logs tail --follow` (AWS CLI v2, which PyPI does not carry) polls FilterLogEvents
    with `interleaved`, from the newest timestamp it has seen, and skips the event ids it has
    seen at that timestamp. Doing the same shows an endpoint's startup line once, then the line
    of a request sent while following."""
    sm, logs = berth.sm(), logs_client(berth)
    name = unique("tailed")
    echo_endpoint(sm, name)
    query = {"logGroupName": f"/aws/sagemaker/Endpoints/{name}", "interleaved": True, "startTime": int((time.time() - 600) * 1000)}
    seen_at_newest, shown, sent, deadline = {}, [], False, time.time() + 30
    while not any("POST /invocations" in m for m in shown):
        assert time.time() < deadline, shown
        answer = logs.filter_log_events(**query)
        for event in answer["events"]:
            if event["eventId"] not in seen_at_newest.get(event["timestamp"], set()):
                seen_at_newest.setdefault(event["timestamp"], set()).add(event["eventId"])
                shown.append(event["message"])
        if seen_at_newest:
            newest = max(seen_at_newest)
            seen_at_newest = {newest: seen_at_newest[newest]}
        if "nextToken" in answer:
            query["nextToken"] = answer["nextToken"]
        else:
            query.pop("nextToken", None)
            query["startTime"] = max(seen_at_newest, default=query["startTime"])
            time.sleep(0.3)
        if not sent and f"model {name} says hello" in shown:
            berth.runtime().invoke_endpoint(EndpointName=name, Body=b"1", ContentType="text/csv")
            sent = True
    assert sent and shown.count(f"model {name} says hello") == 1, shown


def test_the_sdks_transformer_waits_with_logs(berth, s3_server, monkeypatch, capsys):
    import sagemaker
    from sagemaker.transformer import Transformer

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", berth.url)
    sm = berth.sm()
    s3, b = new_bucket(s3_server, "logged-batch")
    model = unique("btlog")
    create_echo_model(sm, model, env={"ECHO_STDERR": "transform model ready"})
    s3.put_object(Bucket=b, Key="in/rows.csv", Body=b"1\n2\n")
    session = sagemaker.Session(boto_session=boto3.Session(**CREDENTIALS), sagemaker_client=sm, sagemaker_runtime_client=berth.runtime())
    transformer = Transformer(
        model_name=model, instance_count=1, instance_type="ml.m5.large", output_path=f"s3://{b}/out", strategy="SingleRecord",
        sagemaker_session=session,
    )
    job = unique("logged-job")
    transformer.transform(f"s3://{b}/in", content_type="text/csv", split_type="Line", job_name=job, wait=False)
    transformer.wait(logs=True)
    out = capsys.readouterr().out
    assert "transform model ready" in out and "POST /invocations" in out, out
    streams = logs_client(berth).describe_log_streams(logGroupName="/aws/sagemaker/TransformJobs", logStreamNamePrefix=f"{job}/")["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{job}/"), streams
