"""Data capture (DataCaptureConfig) through boto3: sampled requests and answers are written in
SageMaker's capture format under <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/, to a file://
directory and to S3 (a real moto server), with CSV/JSON/BASE64 encodings and InferenceId."""

import base64
import datetime
import json
import time

import boto3

from conftest import CREDENTIALS, create_echo_model, unique, variant, wait_status


def capture_endpoint(sm, destination, percent=100, modes=("InputAndOutput",), header=None):
    ep = unique("cap")
    create_echo_model(sm, f"{ep}-m")
    config = {"EnableCapture": True, "InitialSamplingPercentage": percent, "DestinationS3Uri": destination, "CaptureOptions": [{"CaptureMode": m} for m in modes]}
    if header:
        config["CaptureContentTypeHeader"] = header
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("V", f"{ep}-m")], DataCaptureConfig=config)
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    return ep, config


def read_lines(files):
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def wait_records(read, n, timeout=15):
    deadline = time.time() + timeout
    while True:
        records = read()
        if len(records) >= n or time.time() > deadline:
            return records
        time.sleep(0.2)


def test_capture_to_files_in_sagemakers_format(berth, sm, runtime, tmp_path):
    ep, config = capture_endpoint(sm, f"file://{tmp_path}/capture")
    d = sm.describe_endpoint(EndpointName=ep)["DataCaptureConfig"]
    assert (d["EnableCapture"], d["CaptureStatus"], d["CurrentSamplingPercentage"]) == (True, "Started", 100)
    assert sm.describe_endpoint_config(EndpointConfigName=ep)["DataCaptureConfig"]["DestinationS3Uri"] == config["DestinationS3Uri"]

    runtime.invoke_endpoint(EndpointName=ep, Body=b"1,2,3", ContentType="text/csv", InferenceId="row-1")
    runtime.invoke_endpoint(EndpointName=ep, Body=b'{"x": 1}', ContentType="application/json", InferenceId="row-2")
    runtime.invoke_endpoint(EndpointName=ep, Body=b"\x00\x01binary", ContentType="application/octet-stream")
    now = datetime.datetime.now(datetime.timezone.utc)
    hour_dir = tmp_path / "capture" / ep / "V" / f"{now:%Y/%m/%d/%H}"
    records = wait_records(lambda: read_lines(sorted(hour_dir.glob("*.jsonl")) if hour_dir.exists() else []), 3)
    assert len(records) == 3
    by_id = {r["eventMetadata"].get("inferenceId"): r for r in records}
    csv = by_id["row-1"]["captureData"]
    assert csv["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"}
    assert csv["endpointOutput"]["mode"] == "OUTPUT" and csv["endpointOutput"]["encoding"] == "JSON"
    assert json.loads(csv["endpointOutput"]["data"])["body"] == "1,2,3", "the model's real answer"
    assert by_id["row-2"]["captureData"]["endpointInput"]["encoding"] == "JSON"
    raw = by_id[None]["captureData"]["endpointInput"]
    assert raw["encoding"] == "BASE64" and base64.b64decode(raw["data"]) == b"\x00\x01binary"
    for r in records:
        meta = r["eventMetadata"]
        assert len(meta["eventId"]) == 36 and meta["inferenceTime"].endswith("Z") and meta["variantName"] == "V"
        assert r["eventVersion"] == "0"


def test_sampling_and_input_only(berth, sm, runtime, tmp_path):
    ep, _ = capture_endpoint(sm, f"file://{tmp_path}/c", percent=50, modes=("Input",))
    for i in range(200):
        runtime.invoke_endpoint(EndpointName=ep, Body=f"{i}".encode(), ContentType="text/csv")
    time.sleep(2.5)
    records = read_lines((tmp_path / "c" / ep / "V").rglob("*.jsonl"))
    assert 60 <= len(records) <= 140, len(records)  # 200 × 0.5, ± 5 standard deviations
    assert all("endpointOutput" not in r["captureData"] for r in records)


def test_capture_to_s3(berth, sm, runtime, s3_server):
    s3 = boto3.client("s3", endpoint_url=s3_server, **CREDENTIALS)
    bucket = unique("capture")
    s3.create_bucket(Bucket=bucket)
    ep, _ = capture_endpoint(sm, f"s3://{bucket}/datacapture")
    for i in range(5):
        runtime.invoke_endpoint(EndpointName=ep, Body=f"{i},1".encode(), ContentType="text/csv")

    def read():
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"datacapture/{ep}/V/").get("Contents", [])
        lines = []
        for o in listed:
            assert o["Key"].endswith(".jsonl")
            lines += [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode().splitlines()]
        return lines

    records = wait_records(read, 5)
    assert sorted(r["captureData"]["endpointInput"]["data"] for r in records) == [f"{i},1" for i in range(5)]
    key = s3.list_objects_v2(Bucket=bucket, Prefix=f"datacapture/{ep}/V/")["Contents"][0]["Key"]
    parts = key.split("/")
    assert len(parts) == 8 and parts[3].isdigit() and len(parts[3]) == 4, key  # prefix/ep/V/yyyy/mm/dd/hh/file


def test_an_update_retaining_variant_properties_keeps_data_capture_unless_excluded(sm, tmp_path):
    """UpdateEndpoint with RetainAllVariantProperties keeps the endpoint's DataCaptureConfig
    (a retained variant property) unless ExcludeRetainedVariantProperties names it."""
    ep, _ = capture_endpoint(sm, f"file://{tmp_path}/capture")
    model = sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName=ep)["EndpointConfigName"])["ProductionVariants"][0]["ModelName"]
    for excluded, captured in (([], True), ([{"VariantPropertyType": "DataCaptureConfig"}], False)):
        plain = unique("plain")
        sm.create_endpoint_config(EndpointConfigName=plain, ProductionVariants=[variant("V", model)])
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=plain, RetainAllVariantProperties=True, ExcludeRetainedVariantProperties=excluded)
        d = wait_status(sm, ep, timeout=60)
        assert d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == plain
        assert ("DataCaptureConfig" in d and d["DataCaptureConfig"]["EnableCapture"]) == captured, (excluded, d.get("DataCaptureConfig"))


def test_kms_keys_are_applied_to_s3_capture_and_refused_where_they_cannot_be(berth, sm, runtime, s3_server, tmp_path):
    """DataCaptureConfig.KmsKeyId encrypts the captured objects in S3 (SSE-KMS, as the S3
    server reports them); on a file:// destination, and as the endpoint config's storage-volume
    key, it cannot be applied and is refused, naming why."""
    s3 = boto3.client("s3", endpoint_url=s3_server, **CREDENTIALS)
    kms = boto3.client("kms", endpoint_url=s3_server, **CREDENTIALS)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = unique("kmscapture")
    s3.create_bucket(Bucket=bucket)
    ep = unique("kms")
    create_echo_model(sm, f"{ep}-m")
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{bucket}/c", "KmsKeyId": key, "CaptureOptions": [{"CaptureMode": "Input"}]}
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("V", f"{ep}-m")], DataCaptureConfig=capture)
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    runtime.invoke_endpoint(EndpointName=ep, Body=b"1,2", ContentType="text/csv")
    deadline = time.time() + 15
    while not s3.list_objects_v2(Bucket=bucket, Prefix=f"c/{ep}/").get("Contents"):
        assert time.time() < deadline, "nothing captured"
        time.sleep(0.2)
    written = s3.list_objects_v2(Bucket=bucket, Prefix=f"c/{ep}/")["Contents"][0]["Key"]
    head = s3.head_object(Bucket=bucket, Key=written)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key, head

    import pytest

    for config in (
        {"DataCaptureConfig": {**capture, "DestinationS3Uri": f"file://{tmp_path}/c"}},
        {"KmsKeyId": key},
    ):
        with pytest.raises(sm.exceptions.ClientError) as e:
            sm.create_endpoint_config(EndpointConfigName=unique("kmsno"), ProductionVariants=[variant("V", f"{ep}-m")], **config)
        assert "KmsKeyId" in str(e.value) and "cannot" in str(e.value), e.value
