"""InvokeEndpointWithResponseStream against a real berth: boto3's event-stream parser, the
SageMaker SDK v2's streaming predictor and `berth invoke --stream` read berth's answer; the
echo container answers `stream:<parts>:<ms>` with a chunked body, one JSON line per chunk, and
`stream-break:<parts>` breaks its connection in the middle of the answer."""

import json
import subprocess
import time

import pytest
import requests
from botocore.exceptions import ClientError, EventStreamError

from conftest import CREDENTIALS, berth_binary, deploy, error_code
from test_metrics import scrape


def parts_of(answer):
    """The payload parts of a streamed answer, each with when it arrived."""
    out = []
    for event in answer["Body"]:
        assert set(event) == {"PayloadPart"}, event
        out.append((time.monotonic(), event["PayloadPart"]["Bytes"]))
    return out


def broken_stream(runtime, ep, body):
    """Streams `body` from `ep` to an error event: the parts that came first, and the error."""
    answer = runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=body, ContentType="text/plain")
    got = []
    with pytest.raises(EventStreamError) as e:
        for event in answer["Body"]:
            got.append(event["PayloadPart"]["Bytes"])
    assert e.value.response["Error"]["Code"] == "ModelStreamError"
    return got, e.value


def test_parts_arrive_as_the_container_sends_them(berth, sm, runtime):
    ep = deploy(sm, [("Variant1", 1.0), ("Variant2", 1.0)])
    started = time.monotonic()
    answer = runtime.invoke_endpoint_with_response_stream(
        EndpointName=ep, Body=b"stream:5:300", ContentType="text/plain", Accept="application/jsonlines", CustomAttributes="c=1"
    )
    assert answer["ContentType"] == "application/jsonlines"
    assert answer["InvokedProductionVariant"] in ("Variant1", "Variant2")
    assert answer["CustomAttributes"] == "streamed"
    parts = parts_of(answer)
    assert [json.loads(p) for _, p in parts] == [{"token": f"part {i}"} for i in range(5)]
    # The container takes ~1.5 s; the first part is read long before the last is sent.
    first, last = parts[0][0] - started, parts[-1][0] - started
    assert last - first > 0.9, (first, last)

    # Weights, TargetVariant and metrics as for InvokeEndpoint.
    seen = set()
    for _ in range(20):
        answer = runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=b"stream:1:0", ContentType="text/plain")
        seen.add(answer["InvokedProductionVariant"])
        assert len(parts_of(answer)) == 1
    assert seen == {"Variant1", "Variant2"}
    for _ in range(3):
        answer = runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=b"stream:2:0", ContentType="text/plain", TargetVariant="Variant2")
        assert answer["InvokedProductionVariant"] == "Variant2"
        assert len(parts_of(answer)) == 2
    m = scrape(berth, ep)
    assert m[("berth_invocations_total", "Variant1", ())] + m[("berth_invocations_total", "Variant2", ())] == 24

    # An answer the container does not chunk arrives too, whole.
    answer = runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=b"plain", ContentType="text/plain", Accept="application/json")
    body = b"".join(p for _, p in parts_of(answer))
    assert json.loads(body)["body"] == "plain"
    assert json.loads(body)["accept"] == "application/json", "Accept goes to the container"


def test_a_container_failing_mid_answer_ends_the_stream_with_a_model_stream_error(berth, sm, runtime):
    ep = deploy(sm, ["V"])
    got, error = broken_stream(runtime, ep, b"stream-break:2")
    assert len(got) == 2
    assert "StreamBroken" in str(error) or error.response["Error"].get("ErrorCode") == "StreamBroken", error.response
    m = scrape(berth, ep)
    assert m[("berth_invocation_5xx_errors_total", "V", ())] == 1

    # A failure before the answer starts is InvokeEndpoint's ModelError.
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=b"fail", ContentType="text/plain")
    assert error_code(e) == "ModelError" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_with_response_stream(EndpointName="no-such-endpoint", Body=b"x", ContentType="text/plain")
    assert error_code(e) == "ValidationError"
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=b"x", ContentType="text/plain", TargetContainerHostname="c1")
    assert error_code(e) == "ValidationError" and "TargetContainerHostname" in e.value.response["Error"]["Message"]


def test_hostile_streaming_requests_are_refused_in_sagemakers_shape(berth, sm):
    ep = deploy(sm, ["V"])
    url = f"{berth.url}/endpoints/{ep}/invocations-response-stream"
    too_big = requests.post(url, data=b"x" * (6 * 1024 * 1024 + 1), headers={"Content-Type": "text/plain"}, timeout=30)
    # As InvokeEndpoint answers it: SageMaker's ValidationError, refused before it is buffered.
    assert too_big.status_code == 400 and too_big.headers["x-amzn-errortype"].startswith("ValidationError"), too_big.text
    assert "6 MB" in too_big.json()["message"]
    long_variant = requests.post(url, data=b"x", headers={"X-Amzn-SageMaker-Target-Variant": "v" * 64}, timeout=30)
    assert long_variant.status_code == 400 and "targetVariant" in long_variant.text
    assert requests.get(url, timeout=30).status_code in (404, 405)


def test_a_stream_past_the_invocation_timeout_ends_with_model_invocation_time_exceeded(own_berth):
    server = own_berth("--invocation-timeout", "1")
    sm, runtime = server.sm(), server.runtime()
    ep = deploy(sm, ["V"])
    got, error = broken_stream(runtime, ep, b"stream:10:300")
    assert 1 <= len(got) < 10
    assert "ModelInvocationTimeExceeded" in str(error.response), error.response


def test_the_sdk_streaming_predictor_and_the_cli_read_the_stream(berth, sm):
    import boto3
    import sagemaker
    from sagemaker.base_predictor import Predictor
    from sagemaker.iterators import LineIterator

    session_v2 = sagemaker.Session(boto_session=boto3.Session(**CREDENTIALS), sagemaker_client=sm, sagemaker_runtime_client=berth.runtime())

    ep = deploy(sm, ["V"])
    predictor = Predictor(ep, sagemaker_session=session_v2)
    lines = [json.loads(line) for line in predictor.predict_stream(b"stream:3:50", initial_args={"ContentType": "text/plain"}, iterator=LineIterator)]
    assert lines == [{"token": f"part {i}"} for i in range(3)]

    out = subprocess.run(
        [berth_binary(), "invoke", ep, "--stream", "--content-type", "text/plain", "--url", berth.url],
        input=b"stream:3:50",
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == [{"token": f"part {i}"} for i in range(3)]
    assert b"200 from V (streamed)" in out.stderr
    broken = subprocess.run(
        [berth_binary(), "invoke", ep, "--stream", "--url", berth.url], input=b"stream-break:1", capture_output=True, timeout=60
    )
    assert broken.returncode != 0 and b"ModelStreamError (StreamBroken)" in broken.stderr, broken.stderr


def test_a_streamed_answer_is_captured_whole(berth, sm, runtime, tmp_path):
    import datetime

    from test_data_capture import capture_endpoint, read_lines, wait_records

    ep, _ = capture_endpoint(sm, f"file://{tmp_path}/capture")
    answer = runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=b"stream:3:0", ContentType="text/plain", InferenceId="s-1")
    streamed = b"".join(p for _, p in parts_of(answer))
    now = datetime.datetime.now(datetime.timezone.utc)
    hour_dir = tmp_path / "capture" / ep / "V" / f"{now:%Y/%m/%d/%H}"
    (record,) = wait_records(lambda: read_lines(sorted(hour_dir.glob("*.jsonl")) if hour_dir.exists() else []), 1)
    assert record["eventMetadata"]["inferenceId"] == "s-1"
    output = record["captureData"]["endpointOutput"]
    assert output["observedContentType"] == "application/jsonlines"
    data = output["data"].encode() if output["encoding"] != "BASE64" else __import__("base64").b64decode(output["data"])
    assert data == streamed and streamed.count(b"\n") == 3
