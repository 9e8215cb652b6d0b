"""Batch transform against a real berth and moto's S3: CreateTransformJob through boto3 and the
SageMaker SDK's Transformer, every object under the input prefix split into records and
batched as asked, answers assembled per object, failures and stops in SageMaker's words."""

import json
import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import CREDENTIALS, ROLE, create_echo_model, error_code, new_bucket, unique


@pytest.fixture(scope="module")
def bucket(s3_server):
    return new_bucket(s3_server, "batch")


def wait_job(sm, name, timeout=90):
    deadline = time.time() + timeout
    while True:
        d = sm.describe_transform_job(TransformJobName=name)
        if d["TransformJobStatus"] not in ("InProgress", "Stopping"):
            return d
        assert time.time() < deadline, d
        time.sleep(0.3)


def job_args(model, name, source, destination, **extra):
    return {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}}, "ContentType": "text/csv", **extra.pop("input", {})},
        "TransformOutput": {"S3OutputPath": destination, **extra.pop("output", {})},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    }


def test_every_object_under_the_prefix_is_transformed_record_by_record(berth, sm, bucket):
    s3, b = bucket
    model = unique("bt")
    create_echo_model(sm, model)
    s3.put_object(Bucket=b, Key="in/a.csv", Body=b"1,2\n3,4\n5,6\n")
    s3.put_object(Bucket=b, Key="in/sub/b.csv", Body=b"7,8\n")
    name = unique("job")
    arn = sm.create_transform_job(
        **job_args(
            model, name, f"s3://{b}/in", f"s3://{b}/out", input={"SplitType": "Line"}, output={"AssembleWith": "Line", "Accept": "application/json"},
            BatchStrategy="SingleRecord", MaxConcurrentTransforms=2, Environment={"ECHO_NAME": "batch"}, Tags=[{"Key": "team", "Value": "ml"}],
        )
    )["TransformJobArn"]
    assert arn.endswith(f":transform-job/{name.lower()}")
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "run", "Value": "1"}])
    assert {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]} == {"team": "ml", "run": "1"}
    d = wait_job(sm, name)
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    assert d["TransformInput"]["SplitType"] == "Line" and d["BatchStrategy"] == "SingleRecord" and d["TransformEndTime"] >= d["TransformStartTime"]
    lines = s3.get_object(Bucket=b, Key="out/a.csv.out")["Body"].read().decode().splitlines()
    answers = [json.loads(line) for line in lines]
    assert [a["body"] for a in answers] == ["1,2\n", "3,4\n", "5,6\n"], "one request per record, in order"
    assert {a["name"] for a in answers} == {"batch"} and answers[0]["accept"] == "application/json"
    assert [json.loads(line)["body"] for line in s3.get_object(Bucket=b, Key="out/sub/b.csv.out")["Body"].read().decode().splitlines()] == ["7,8\n"]
    events = requests.get(f"{berth.url}/berth/v1/events", params={"endpoint": name}, timeout=10).json()["events"]
    progress = [e["message"] for e in events if e["kind"] == "TransformJobProgress"]
    assert any("2 object(s) to transform" in m for m in progress) and any("Object 2/2" in m for m in progress), progress
    assert any(f"Transform job {name}: Completed after" in m for m in progress), progress

    # The same records through a real-time endpoint of the model: the same answers (but for what
    # names the serving process).
    from conftest import variant, wait_status

    sm.create_endpoint_config(EndpointConfigName=model, ProductionVariants=[variant("V", model)])
    sm.create_endpoint(EndpointName=model, EndpointConfigName=model)
    assert wait_status(sm, model)["EndpointStatus"] == "InService"
    same = ("body", "content_type", "accept", "custom_attributes", "body_length")
    for record, batch in zip(["1,2\n", "3,4\n", "5,6\n"], answers):
        live = json.loads(berth.runtime().invoke_endpoint(EndpointName=model, Body=record, ContentType="text/csv", Accept="application/json")["Body"].read())
        assert {k: live[k] for k in same} == {k: batch[k] for k in same}

    # MultiRecord: the object's records in one payload.
    multi = unique("job")
    sm.create_transform_job(**job_args(model, multi, f"s3://{b}/in/a.csv", f"s3://{b}/multi", input={"SplitType": "Line"}, BatchStrategy="MultiRecord"))
    assert wait_job(sm, multi)["TransformJobStatus"] == "Completed"
    assert json.loads(s3.get_object(Bucket=b, Key="multi/a.csv.out")["Body"].read())["body"] == "1,2\n3,4\n5,6\n"

    listed = sm.list_transform_jobs(NameContains=name[:-4], StatusEquals="Completed", SortBy="Name", SortOrder="Ascending")["TransformJobSummaries"]
    assert name in [j["TransformJobName"] for j in listed]


def test_failures_stops_and_refusals(berth, sm, bucket):
    s3, b = bucket
    model, broken = unique("bt"), unique("bt")
    create_echo_model(sm, model)
    create_echo_model(sm, broken, {"ECHO_STATUS": "500"})
    s3.put_object(Bucket=b, Key="bad/x.csv", Body=b"1\n2\n")
    name = unique("job")
    sm.create_transform_job(**job_args(broken, name, f"s3://{b}/bad", f"s3://{b}/out2", input={"SplitType": "Line"}, BatchStrategy="SingleRecord", ModelClientConfig={"InvocationsMaxRetries": 0}))
    d = wait_job(sm, name)
    assert d["TransformJobStatus"] == "Failed"
    assert f"s3://{b}/bad/x.csv" in d["FailureReason"] and "500" in d["FailureReason"], d["FailureReason"]

    slow = unique("bt")
    create_echo_model(sm, slow, {"ECHO_DELAY_MS": "1000"})
    s3.put_object(Bucket=b, Key="slow/x.csv", Body=b"".join(b"%d\n" % i for i in range(30)))
    stopped = unique("job")
    sm.create_transform_job(**job_args(slow, stopped, f"s3://{b}/slow", f"s3://{b}/out3", input={"SplitType": "Line"}, BatchStrategy="SingleRecord"))
    time.sleep(1)
    sm.stop_transform_job(TransformJobName=stopped)
    assert wait_job(sm, stopped)["TransformJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as e:
        sm.stop_transform_job(TransformJobName=stopped)
    assert "only a job in progress can be stopped" in e.value.response["Error"]["Message"]

    refusals = [
        (job_args(model, unique("job"), f"s3://{b}/in", f"s3://{b}/o", input={"CompressionType": "Gzip"}), "CompressionType Gzip"),
        (job_args(model, unique("job"), f"s3://{b}/in", f"s3://{b}/o", input={"SplitType": "RecordIO"}), "SplitType RecordIO"),
        (job_args("no-such-model", unique("job"), f"s3://{b}/in", f"s3://{b}/o"), "Could not find model"),
        (job_args(model, unique("job"), "file:///etc", f"s3://{b}/o"), "not under a directory berth may read"),
        (job_args(model, unique("job"), f"s3://{b}/in", "file:///etc/out"), "not under a directory berth may write"),
        (job_args(model, unique("job"), f"s3://{b}/in", f"s3://{b}/o", DataProcessing={"InputFilter": "$..x"}), "DataProcessing.InputFilter"),
    ]
    for args, message in refusals:
        with pytest.raises(ClientError) as e:
            sm.create_transform_job(**args)
        assert error_code(e) == "ValidationException" and message in e.value.response["Error"]["Message"], (message, e.value.response)
    with pytest.raises(ClientError) as e:
        sm.create_transform_job(**job_args(model, name, f"s3://{b}/in", f"s3://{b}/o"))
    assert "already exists" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        sm.describe_transform_job(TransformJobName="no-such-job")
    assert error_code(e) == "ValidationException"


def test_the_sdks_transformer_runs_a_job(berth, sm, bucket):
    import sagemaker
    from sagemaker.transformer import Transformer

    s3, b = bucket
    model = unique("bt")
    create_echo_model(sm, model)
    s3.put_object(Bucket=b, Key="sdk/rows.csv", Body=b"1\n2\n")
    session = sagemaker.Session(boto_session=boto3.Session(**CREDENTIALS), sagemaker_client=sm, sagemaker_runtime_client=berth.runtime())
    transformer = Transformer(
        model_name=model, instance_count=1, instance_type="ml.m5.large", output_path=f"s3://{b}/sdk-out", assemble_with="Line",
        strategy="SingleRecord", sagemaker_session=session,
    )
    transformer.transform(f"s3://{b}/sdk", content_type="text/csv", split_type="Line", job_name=unique("sdkjob"), wait=False)
    transformer.wait(logs=False)
    assert sm.describe_transform_job(TransformJobName=transformer.latest_transform_job.name)["TransformJobStatus"] == "Completed"
    out = s3.get_object(Bucket=b, Key="sdk-out/rows.csv.out")["Body"].read().decode().splitlines()
    assert [json.loads(line)["body"] for line in out] == ["1\n", "2\n"]
    assert ROLE  # the SDK needs no role for a transform job


def test_a_manifest_and_data_processing_filter_and_join_records(berth, sm, bucket):
    s3, b = bucket
    model = unique("bt")
    create_echo_model(sm, model)
    rows = [{"id": 1, "features": [1, 2]}, {"id": 2, "features": [3, 4]}]
    s3.put_object(Bucket=b, Key="docs/part-1.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows).encode())
    s3.put_object(Bucket=b, Key="docs/unlisted.jsonl", Body=b'{"id": 9, "features": [9]}\n')
    s3.put_object(Bucket=b, Key="manifests/m.json", Body=json.dumps([{"prefix": f"s3://{b}/docs/"}, "part-1.jsonl"]).encode())
    def joined(output_filter):
        """A job over the manifest's objects, each record's features to the model, the answer
        joined to the record and `output_filter` applied; its description and output lines."""
        name = unique("job")
        manifest = {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": f"s3://{b}/manifests/m.json"}}}
        sm.create_transform_job(
            **job_args(
                model, name, f"s3://{b}/manifests/m.json", f"s3://{b}/joined",
                input={"SplitType": "Line", "ContentType": "application/json", **manifest},
                output={"AssembleWith": "Line"},
                DataProcessing={"InputFilter": "$.features", "JoinSource": "Input", "OutputFilter": output_filter},
            )
        )
        d = wait_job(sm, name)
        assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
        return d, [json.loads(line) for line in s3.get_object(Bucket=b, Key="joined/part-1.jsonl.out")["Body"].read().decode().splitlines()]

    _, lines = joined("$['id','SageMakerOutput']")
    assert [line[0] for line in lines] == [1, 2], "each output keeps its record's id"
    assert [line[1]["body"] for line in lines] == ["[1,2]", "[3,4]"]
    d, lines = joined("$.SageMakerOutput.body")
    assert d["DataProcessing"] == {"InputFilter": "$.features", "OutputFilter": "$.SageMakerOutput.body", "JoinSource": "Input"}
    assert d["TransformInput"]["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"
    assert lines == ["[1,2]", "[3,4]"], "the model saw each record's features only"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="joined/")["Contents"]]
    assert keys == ["joined/part-1.jsonl.out"], "only what the manifest lists"

    # A manifest entry that climbs out of its prefix fails the job; nothing is read or written.
    s3.put_object(Bucket=b, Key="manifests/escape.json", Body=json.dumps([{"prefix": f"s3://{b}/docs/"}, "../manifests/m.json"]).encode())
    name = unique("job")
    escape = {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": f"s3://{b}/manifests/escape.json"}}}
    sm.create_transform_job(**job_args(model, name, f"s3://{b}/manifests/escape.json", f"s3://{b}/escaped", input=escape))
    d = wait_job(sm, name)
    assert d["TransformJobStatus"] == "Failed" and "which leaves its prefix" in d["FailureReason"], d
    assert "Contents" not in s3.list_objects_v2(Bucket=b, Prefix="escaped/")
