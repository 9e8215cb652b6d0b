"""Asynchronous inference against a real berth and a real S3-compatible server (moto):
AsyncInferenceConfig in endpoint configs, InvokeEndpointAsync through boto3, answers and
failures written where they were promised, the queue surviving kill -9, and the backlog
metrics in CloudWatch and Prometheus."""

import json
import signal
import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import CREDENTIALS, create_echo_model, error_code, new_bucket, s3_env, unique, variant, wait_status
from test_metrics import scrape  # noqa: F401 (the same /metrics reader)


@pytest.fixture(scope="module")
def bucket(s3_server):
    return new_bucket(s3_server, "async")


def async_endpoint(sm, output, failure=None, env=None, count=1, concurrency=None):
    ep = unique("async")
    create_echo_model(sm, f"{ep}-m", env)
    out = {"S3OutputPath": output}
    if failure:
        out["S3FailurePath"] = failure
    config = {"OutputConfig": out}
    if concurrency:
        config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": concurrency}
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("V", f"{ep}-m", count=count)], AsyncInferenceConfig=config)
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    d = wait_status(sm, ep)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    return ep


def wait_object(s3, uri, timeout=30):
    bucket, key = uri[len("s3://") :].split("/", 1)
    deadline = time.time() + timeout
    while True:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:
            assert time.time() < deadline, f"{uri} never appeared"
            time.sleep(0.2)


def wait_file(path, timeout=30):
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)
    return path.read_bytes()


def test_answers_and_failures_land_where_promised(berth, sm, bucket):
    s3, name = bucket
    runtime = berth.runtime()
    ep = async_endpoint(sm, f"s3://{name}/out", f"s3://{name}/failures", concurrency=4)
    config = sm.describe_endpoint_config(EndpointConfigName=ep)["AsyncInferenceConfig"]
    assert config == {"ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4}, "OutputConfig": {"S3OutputPath": f"s3://{name}/out", "S3FailurePath": f"s3://{name}/failures"}}
    assert sm.describe_endpoint(EndpointName=ep)["AsyncInferenceConfig"] == config

    s3.put_object(Bucket=name, Key="in/row.csv", Body=b"1,2,3")
    answer = runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"s3://{name}/in/row.csv", ContentType="text/csv", InferenceId="row-1")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert answer["InferenceId"] == "row-1"
    assert answer["OutputLocation"] == f"s3://{name}/out/row-1.out"
    assert answer["FailureLocation"] == f"s3://{name}/failures/row-1-error.out"
    body = json.loads(wait_object(s3, answer["OutputLocation"]))
    assert (body["body"], body["content_type"], body["inference_id"]) == ("1,2,3", "text/csv", "row-1")

    # No InferenceId: berth makes one; an extension and a file name place the answer.
    answer = runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"s3://{name}/in/row.csv", S3OutputPathExtension="day/1", Filename="r.json")
    assert len(answer["InferenceId"]) == 36
    assert answer["OutputLocation"] == f"s3://{name}/out/day/1/r.json"
    assert json.loads(wait_object(s3, answer["OutputLocation"]))["body"] == "1,2,3"

    # Inline bodies, and a model failure written to the failure location.
    answer = runtime.invoke_endpoint_async(EndpointName=ep, Body=b"fail", ContentType="text/plain")
    failure = wait_object(s3, answer["FailureLocation"]).decode()
    assert "Received server error (500)" in failure and "model failed on purpose" in failure

    # An input that does not exist fails the request, not the queue.
    answer = runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"s3://{name}/in/missing.csv")
    assert "Cannot read the input" in wait_object(s3, answer["FailureLocation"]).decode()


def test_timeouts_file_locations_and_refusals(berth, sm, tmp_path):
    runtime = berth.runtime()
    ep = async_endpoint(sm, f"file://{tmp_path}/out", env={"ECHO_DELAY_MS": "2500"})
    (tmp_path / "in.csv").write_text("4,5")
    answer = runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"file://{tmp_path}/in.csv", InvocationTimeoutSeconds=1)
    failure = wait_file(tmp_path / "out" / f"{answer['InferenceId']}-error.out").decode()
    assert "InvocationTimeoutSeconds (1 s)" in failure, failure
    answer = runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"file://{tmp_path}/in.csv")
    assert json.loads(wait_file(tmp_path / "out" / f"{answer['InferenceId']}.out"))["body"] == "4,5"

    refusals = [
        ({"InputLocation": "file:///etc/passwd"}, "not a file under a directory berth may read"),
        ({"InputLocation": f"file://{tmp_path}/in.csv", "S3OutputPathExtension": "../../escape"}, "S3OutputPathExtension"),
        ({}, "InputLocation (or an inline Body) is required"),
    ]
    for args, message in refusals:
        with pytest.raises(ClientError) as e:
            runtime.invoke_endpoint_async(EndpointName=ep, **args)
        assert error_code(e) == "ValidationError" and message in e.value.response["Error"]["Message"], (args, e.value.response)
    assert not (tmp_path.parent / "escape").exists()

    plain = unique("sync")
    create_echo_model(sm, f"{plain}-m")
    sm.create_endpoint_config(EndpointConfigName=plain, ProductionVariants=[variant("V", f"{plain}-m")])
    sm.create_endpoint(EndpointName=plain, EndpointConfigName=plain)
    wait_status(sm, plain)
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_async(EndpointName=plain, InputLocation=f"file://{tmp_path}/in.csv")
    assert "not configured for asynchronous inference" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_async(EndpointName="no-such-endpoint", InputLocation=f"file://{tmp_path}/in.csv")
    assert error_code(e) == "ValidationError" and "not found" in e.value.response["Error"]["Message"]


def test_an_accepted_request_survives_kill_9(own_berth, s3_server, tmp_path):
    server = own_berth(env=s3_env(s3_server))
    sm, runtime = server.sm(), server.runtime()
    ep = async_endpoint(sm, f"file://{tmp_path}/out", env={"ECHO_DELAY_MS": "1500"})
    (tmp_path / "in.csv").write_text("7,8")
    ids = [runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"file://{tmp_path}/in.csv")["InferenceId"] for _ in range(3)]
    port = server.port
    server.stop(signal.SIGKILL)
    assert not any((tmp_path / "out" / f"{i}.out").exists() for i in ids[1:]), "the later requests were still queued"
    server.start(port=port)
    assert wait_status(server.sm(), ep)["EndpointStatus"] == "InService"
    for i in ids:
        assert json.loads(wait_file(tmp_path / "out" / f"{i}.out", timeout=60))["body"] == "7,8"


def test_the_backlog_is_published_as_sagemakers_endpoint_metrics(berth, sm, tmp_path):
    runtime = berth.runtime()
    ep = async_endpoint(sm, f"file://{tmp_path}/out", env={"ECHO_DELAY_MS": "1000"})
    (tmp_path / "in.csv").write_text("1")
    for _ in range(6):
        runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"file://{tmp_path}/in.csv")
    deadline = time.time() + 15
    seen = {}
    while time.time() < deadline and not seen.get("berth_async_backlog_size"):
        text = requests.get(f"{berth.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("berth_async_") and f'endpoint="{ep}"' in line:
                seen[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
        time.sleep(0.3)
    assert seen["berth_async_backlog_size"] >= 1, seen
    assert seen["berth_async_backlog_without_capacity"] == 0
    cloudwatch = boto3.client("cloudwatch", endpoint_url=berth.url, **CREDENTIALS)
    now = time.time()
    stats = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="ApproximateBacklogSize",
        Dimensions=[{"Name": "EndpointName", "Value": ep}],
        StartTime=now - 120,
        EndTime=now + 60,
        Period=60,
        Statistics=["Maximum"],
    )
    assert stats["Datapoints"] and max(d["Maximum"] for d in stats["Datapoints"]) >= 1, stats


def test_target_tracking_on_the_backlog_scales_to_zero_and_back_when_work_arrives(own_berth, tmp_path):
    from test_autoscaling import register, track_average, wait_count

    server = own_berth("--scaling-window", "3")
    sm, runtime = server.sm(), server.runtime()
    aas = server.client("application-autoscaling")
    ep = async_endpoint(sm, f"file://{tmp_path}/out")
    resource = f"endpoint/{ep}/variant/V"
    with pytest.raises(ClientError):
        plain = unique("sync")
        create_echo_model(sm, f"{plain}-m")
        sm.create_endpoint_config(EndpointConfigName=plain, ProductionVariants=[variant("V", f"{plain}-m")])
        sm.create_endpoint(EndpointName=plain, EndpointConfigName=plain)
        wait_status(sm, plain)
        register(aas, f"endpoint/{plain}/variant/V", 0, 2)
    register(aas, resource, 0, 2)
    backlog = {"EndpointName": ep}
    track_average(aas, resource, 2.0, "AWS/SageMaker", "ApproximateBacklogSizePerInstance", backlog, ScaleInCooldown=0, ScaleOutCooldown=0)
    wait_count(sm, ep, 0)  # no backlog: in to 0
    (tmp_path / "in.csv").write_text("9")
    ids = [runtime.invoke_endpoint_async(EndpointName=ep, InputLocation=f"file://{tmp_path}/in.csv")["InferenceId"] for _ in range(3)]
    for i in ids:
        assert json.loads(wait_file(tmp_path / "out" / f"{i}.out", timeout=60))["body"] == "9"
    activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingActivities"]
    assert any("from 0 to" in a["Cause"] for a in activities), [a["Cause"] for a in activities]


def test_success_and_error_topics_are_told_with_sagemakers_message(own_berth, s3_server, tmp_path):
    server = own_berth(env={**s3_env(s3_server), "AWS_ENDPOINT_URL_SNS": s3_server})
    sm, runtime = server.sm(), server.runtime()
    sns = boto3.client("sns", endpoint_url=s3_server, **CREDENTIALS)
    sqs = boto3.client("sqs", endpoint_url=s3_server, **CREDENTIALS)
    topics = {kind: sns.create_topic(Name=unique(kind))["TopicArn"] for kind in ("ok", "err")}
    queues = {}
    for kind, arn in topics.items():
        url = sqs.create_queue(QueueName=unique(kind))["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        queues[kind] = url
    ep = unique("async")
    create_echo_model(sm, f"{ep}-m")
    notifications = {"SuccessTopic": topics["ok"], "ErrorTopic": topics["err"], "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"]}
    sm.create_endpoint_config(
        EndpointConfigName=ep,
        ProductionVariants=[variant("V", f"{ep}-m")],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": f"file://{tmp_path}/out", "NotificationConfig": notifications}},
    )
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    assert sm.describe_endpoint(EndpointName=ep)["AsyncInferenceConfig"]["OutputConfig"]["NotificationConfig"] == notifications

    def receive(kind):
        deadline = time.time() + 30
        while time.time() < deadline:
            got = sqs.receive_message(QueueUrl=queues[kind], WaitTimeSeconds=1).get("Messages", [])
            if got:
                return json.loads(got[0]["Body"])
        raise AssertionError(f"no {kind} notification")

    ok = runtime.invoke_endpoint_async(EndpointName=ep, Body=b"hello", ContentType="text/plain")
    message = receive("ok")
    assert (message["invocationStatus"], message["inferenceId"], message["eventName"]) == ("Completed", ok["InferenceId"], "InferenceResult")
    assert message["responseParameters"]["outputLocation"] == ok["OutputLocation"]
    assert json.loads(message["responseBody"]["content"])["body"] == "hello"
    failed = runtime.invoke_endpoint_async(EndpointName=ep, Body=b"fail", ContentType="text/plain")
    message = receive("err")
    assert (message["invocationStatus"], message["inferenceId"]) == ("Failed", failed["InferenceId"])
    assert "Received server error (500)" in message["failureReason"] and "responseBody" not in message


def test_an_outcome_that_cannot_be_written_neither_blocks_the_queue_nor_stays_forever(berth, sm, tmp_path):
    """An InferenceId that would place the answer outside the output path is refused at once. An
    answer that turns out never writable (its directory made a file after it was accepted) is
    tried a few times, waiting aside while the requests behind it are answered (one at a time:
    MaxConcurrentInvocationsPerInstance 1), then leaves the queue as failed, with an event.
    Answers are private files, as captured data is."""
    runtime = berth.runtime()
    ep = async_endpoint(sm, f"file://{tmp_path}/out", concurrency=1)
    for bad in ("../../escape", "a/../../escape", "a//b", "./a"):
        with pytest.raises(ClientError) as e:
            runtime.invoke_endpoint_async(EndpointName=ep, Body=b"x", InferenceId=bad)
        assert error_code(e) == "ValidationError" and "InferenceId" in e.value.response["Error"]["Message"], (bad, e.value.response)
    assert not list(tmp_path.parent.glob("escape*"))

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "blocked").write_text("a file where the answer's directory would be")
    stuck = runtime.invoke_endpoint_async(EndpointName=ep, Body=b"first", S3OutputPathExtension="blocked")
    behind = [runtime.invoke_endpoint_async(EndpointName=ep, Body=f"next-{i}".encode()) for i in range(3)]
    for i, answer in enumerate(behind):
        path = tmp_path / "out" / f"{answer['InferenceId']}.out"
        assert json.loads(wait_file(path, timeout=20))["body"] == f"next-{i}"
        assert (path.stat().st_mode & 0o777) == 0o600, oct(path.stat().st_mode)

    def failed():
        events = requests.get(f"{berth.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]
        return [e for e in events if e["kind"] == "AsyncRequestFailed" and stuck["InferenceId"] in e["message"]]

    deadline = time.time() + 40
    while not failed():
        assert time.time() < deadline, "the unwritable request never left the queue"
        time.sleep(0.5)
    assert "could not be written after 5 attempts" in failed()[0]["message"]
