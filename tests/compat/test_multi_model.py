"""Multi-model endpoints (Mode MultiModel, TargetModel) with berth/onnx, boto3 and moto_server as
S3: every archive under the prefix is served by its key, loaded on its first call, unloaded least
recently used past an instance's memory; SageMaker's per-variant model metrics in CloudWatch."""

import concurrent.futures
import json
import os
import subprocess
import time

import numpy as np
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ROLE, berth_binary, error_code, error_message, eventually, http_status, new_bucket, recent_statistics, tar_gz, unique, variant, wait_status

onnxruntime = pytest.importorskip("onnxruntime")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402

X, Y = load_iris(return_X_y=True)
X = X.astype(np.float32)
ROWS = X[::9]


def onnx_of(model):
    model.fit(X, Y)
    return to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()


MODELS = {
    "logistic.tar.gz": lambda: onnx_of(LogisticRegression(max_iter=1000)),
    "tenants/7/tree.tar.gz": lambda: onnx_of(DecisionTreeClassifier(max_depth=2, random_state=0)),
    "forest.tar.gz": lambda: onnx_of(RandomForestClassifier(n_estimators=5, random_state=0)),
}



@pytest.fixture(scope="module")
def bucket(s3_server):
    return new_bucket(s3_server, "mme")


def csv(rows):
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def expected(onnx_bytes):
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: ROWS})[:2]
    return [int(v) for v in labels], probabilities


def multi_model_endpoint(sm, prefix, count=1, tags=(), cache=None, name=None):
    name = name or unique("mme")
    container = {"Image": "berth/onnx", "Mode": "MultiModel", "ModelDataUrl": prefix}
    if cache:
        container["MultiModelConfig"] = {"ModelCacheSetting": cache}
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", name, 1.0, count)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=list(tags))
    d = wait_status(sm, name)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    return name


def predict(runtime, endpoint, target, **extra):
    r = runtime.invoke_endpoint(EndpointName=endpoint, TargetModel=target, ContentType="text/csv", Accept="application/json", Body=csv(ROWS), **extra)
    return json.loads(r["Body"].read())["predictions"]


def loads_logged(berth, endpoint, target):
    """How many times berth loaded `target` on an instance of `endpoint` (one log line each)."""
    return sum(1 for line in berth.log_text().splitlines() if "model loaded" in line and f"{endpoint}/" in line and f'model="{target}"' in line)


def statistics(cw, endpoint, metric):
    return recent_statistics(cw, metric, [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}])


def test_each_target_model_answers_like_its_own_model_and_loads_once(berth, sm, runtime, bucket):
    s3, name = bucket
    onnx = {key: make() for key, make in MODELS.items()}
    for key in ["logistic.tar.gz", "tenants/7/tree.tar.gz"]:
        s3.put_object(Bucket=name, Key=f"models/{key}", Body=tar_gz({"model.onnx": onnx[key]}))
    ep = multi_model_endpoint(sm, f"s3://{name}/models/", count=2)
    d = sm.describe_model(ModelName=ep)["PrimaryContainer"]
    assert (d["Mode"], d["ModelDataUrl"], d["MultiModelConfig"]) == ("MultiModel", f"s3://{name}/models/", {"ModelCacheSetting": "Enabled"})

    # An archive added after the endpoint was created is served too.
    s3.put_object(Bucket=name, Key="models/forest.tar.gz", Body=tar_gz({"model.onnx": onnx["forest.tar.gz"]}))
    for key in MODELS:
        labels, probabilities = expected(onnx[key])
        for _ in range(3):
            got = predict(runtime, ep, key)
            assert [p["label"] for p in got] == labels, key
            np.testing.assert_allclose([p["probabilities"] for p in got], probabilities, rtol=1e-5, atol=1e-6)
        # Warm calls go to an instance that has the model: it was loaded once, not per instance.
        assert loads_logged(berth, ep, key) == 1, key

    # The same archive as a single-model endpoint answers the same bytes.
    single = unique("single")
    sm.create_model(ModelName=single, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"s3://{name}/models/forest.tar.gz"}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=single, ProductionVariants=[variant("AllTraffic", single)])
    sm.create_endpoint(EndpointName=single, EndpointConfigName=single)
    assert wait_status(sm, single)["EndpointStatus"] == "InService"
    alone = runtime.invoke_endpoint(EndpointName=single, ContentType="text/csv", Body=csv(ROWS))["Body"].read()
    multi = runtime.invoke_endpoint(EndpointName=ep, TargetModel="forest.tar.gz", ContentType="text/csv", Body=csv(ROWS))["Body"].read()
    assert multi == alone

    # SageMaker's multi-model metrics, per variant: 10 calls, the first of each model a miss.
    cw = berth.client("cloudwatch")
    hits = eventually(lambda: (s := statistics(cw, ep, "ModelCacheHit")) and s["SampleCount"] >= 10 and s)
    assert (hits["SampleCount"], hits["Sum"]) == (10, 7), hits
    loaded = eventually(lambda: (s := statistics(cw, ep, "LoadedModelCount")) and s["Maximum"] == 3 and s)
    assert loaded and loaded["Maximum"] == 3, loaded
    for metric in ["ModelLoadingTime", "ModelDownloadingTime", "ModelLoadingWaitTime"]:
        s = statistics(cw, ep, metric)
        assert s and s["SampleCount"] == 3 and s["Minimum"] > 0, (metric, s)
    # The dashboard's overview shows the loaded models and the cache hits.
    overview = requests.get(f"{berth.url}/berth/v1/overview", timeout=10).json()
    (shown,) = [e for e in overview["endpoints"] if e["name"] == ep]
    assert shown["variants"][0]["models"] == {"loaded": 3, "cache_hits": 7, "calls": 10}
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": ep}])["Metrics"]}
    assert {"ModelCacheHit", "LoadedModelCount", "ModelLoadingTime", "ModelUnloadingTime"} <= names

    # The berth CLI names the model too.
    out = subprocess.run([berth_binary(), "invoke", ep, "--target-model", "forest.tar.gz", "--url", berth.url], input=csv(ROWS).encode(), capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == multi.strip(), out.stderr


def test_least_recently_used_models_are_unloaded_past_the_instance_memory(berth, sm, runtime, bucket):
    s3, name = bucket
    onnx = MODELS["logistic.tar.gz"]()
    # Each model is ~0.45 MiB unpacked (an incompressible filler): two fit in 1 MiB, three do not.
    for key in ["a.tar.gz", "b.tar.gz", "c.tar.gz"]:
        s3.put_object(Bucket=name, Key=f"lru/{key}", Body=tar_gz({"model.onnx": onnx, "filler.bin": os.urandom(450_000)}))
    ep = multi_model_endpoint(sm, f"s3://{name}/lru", tags=[{"Key": "berth:model-memory-mb", "Value": "1"}])
    for key in ["a.tar.gz", "b.tar.gz", "a.tar.gz", "c.tar.gz"]:
        predict(runtime, ep, key)
    # c evicted b (a was used more recently); b comes back on its next call, evicting a.
    assert [loads_logged(berth, ep, k) for k in ["a.tar.gz", "b.tar.gz", "c.tar.gz"]] == [1, 1, 1]
    predict(runtime, ep, "b.tar.gz")
    assert loads_logged(berth, ep, "b.tar.gz") == 2
    predict(runtime, ep, "c.tar.gz")
    assert loads_logged(berth, ep, "c.tar.gz") == 1, "c stayed loaded"
    cw = berth.client("cloudwatch")
    loaded = eventually(lambda: (s := statistics(cw, ep, "LoadedModelCount")) and s)
    assert loaded["Maximum"] == 2, loaded
    unloading = eventually(lambda: (s := statistics(cw, ep, "ModelUnloadingTime")) and s["SampleCount"] >= 2 and s)
    assert unloading and unloading["SampleCount"] == 2, unloading

    # A model larger than the whole memory is refused with the reason.
    s3.put_object(Bucket=name, Key="lru/huge.tar.gz", Body=tar_gz({"model.onnx": onnx, "filler.bin": os.urandom(1_200_000)}))
    with pytest.raises(ClientError) as e:
        predict(runtime, ep, "huge.tar.gz")
    assert (http_status(e), error_code(e)) == (400, "ValidationError")
    assert "more than an instance's 1 MiB" in error_message(e)


def test_with_the_cache_disabled_each_call_loads_its_model(berth, sm, runtime, bucket):
    s3, name = bucket
    s3.put_object(Bucket=name, Key="nocache/m.tar.gz", Body=tar_gz({"model.onnx": MODELS["logistic.tar.gz"]()}))
    ep = multi_model_endpoint(sm, f"s3://{name}/nocache/", cache="Disabled")
    assert sm.describe_model(ModelName=ep)["PrimaryContainer"]["MultiModelConfig"] == {"ModelCacheSetting": "Disabled"}
    cw = berth.client("cloudwatch")
    for n in range(1, 4):
        predict(runtime, ep, "m.tar.gz")
        assert eventually(lambda: loads_logged(berth, ep, "m.tar.gz") == n), n
        # The unload after a call happens as it ends: wait for it before the next call.
        assert eventually(lambda: (s := statistics(cw, ep, "ModelUnloadingTime")) and s["SampleCount"] >= n), n
    assert loads_logged(berth, ep, "m.tar.gz") == 3


def test_target_model_errors_are_client_errors_that_say_why(berth, sm, runtime, bucket):
    s3, name = bucket
    s3.put_object(Bucket=name, Key="errs/ok.tar.gz", Body=tar_gz({"model.onnx": MODELS["logistic.tar.gz"]()}))
    s3.put_object(Bucket=name, Key="errs/broken.tar.gz", Body=tar_gz({"model.onnx": b"not a protobuf"}))
    ep = multi_model_endpoint(sm, f"s3://{name}/errs/")
    cases = [
        ({}, "TargetModel"),  # a multi-model endpoint needs one
        ({"TargetModel": "missing.tar.gz"}, "Failed to download model data for TargetModel missing.tar.gz"),
        ({"TargetModel": "broken.tar.gz"}, "could not load TargetModel broken.tar.gz"),
        ({"TargetModel": "../errs/ok.tar.gz"}, "'..'"),
        ({"TargetModel": "/etc/passwd"}, "relative"),
        ({"TargetModel": "m" * 1025}, "length"),
    ]
    for extra, phrase in cases:
        with pytest.raises(ClientError) as e:
            runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Body=csv(ROWS), **extra)
        assert (http_status(e), error_code(e)) == (400, "ValidationError"), (extra, e.value.response)
        assert phrase in error_message(e), (extra, error_message(e))
    # The endpoint still serves, and a failed load is tried again on the next call.
    assert predict(runtime, ep, "ok.tar.gz")
    s3.put_object(Bucket=name, Key="errs/missing.tar.gz", Body=tar_gz({"model.onnx": MODELS["logistic.tar.gz"]()}))
    assert predict(runtime, ep, "missing.tar.gz")

    # Concurrent first calls of a model load it once (one instance here).
    s3.put_object(Bucket=name, Key="errs/late.tar.gz", Body=tar_gz({"model.onnx": MODELS["logistic.tar.gz"]()}))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: predict(runtime, ep, "late.tar.gz"), range(8)))
    assert len({json.dumps(a) for a in answers}) == 1
    assert loads_logged(berth, ep, "late.tar.gz") == 1

    # TargetModel on a single-model endpoint is refused, not ignored.
    single = unique("single")
    sm.create_model(ModelName=single, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"s3://{name}/errs/ok.tar.gz"}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=single, ProductionVariants=[variant("AllTraffic", single)])
    sm.create_endpoint(EndpointName=single, EndpointConfigName=single)
    assert wait_status(sm, single)["EndpointStatus"] == "InService"
    with pytest.raises(ClientError) as e:
        predict(runtime, single, "ok.tar.gz")
    assert error_code(e) == "ValidationError" and "does not serve multiple models" in error_message(e)


def test_create_model_checks_multi_model_containers(sm, tmp_path):
    def refused(container, phrase):
        with pytest.raises(ClientError) as e:
            sm.create_model(ModelName=unique("bad"), PrimaryContainer=container, ExecutionRoleArn=ROLE)
        assert error_code(e) == "ValidationException", e.value.response
        assert phrase in error_message(e), error_message(e)

    refused({"Image": "berth/onnx", "Mode": "Multi", "ModelDataUrl": "s3://b/p/"}, "Mode")
    refused({"Image": "berth/onnx", "Mode": "MultiModel"}, "needs ModelDataUrl")
    refused({"Image": "berth/onnx", "Mode": "MultiModel", "ModelDataUrl": "s3://b/p/", "MultiModelConfig": {"ModelCacheSetting": "Sometimes"}}, "ModelCacheSetting")
    refused({"Image": "berth/onnx", "ModelDataUrl": "s3://b/p.tar.gz", "MultiModelConfig": {"ModelCacheSetting": "Enabled"}}, "only for a container with Mode MultiModel")
    # berth/python serves multi-model endpoints too (test_python_runtime.py), once allowed.
    refused({"Image": "berth/python", "Mode": "MultiModel", "ModelDataUrl": "s3://b/p/"}, "--python-runtime on")
    # A file:// prefix is held to the file roots like any model data.
    refused({"Image": "berth/onnx", "Mode": "MultiModel", "ModelDataUrl": "file:///etc/"}, "ModelDataUrl")
    with pytest.raises(ClientError) as e:
        sm.create_endpoint(EndpointName=unique("mme"), EndpointConfigName="x", Tags=[{"Key": "berth:model-memory-mb", "Value": "lots"}])
    assert "berth:model-memory-mb" in error_message(e)


def echo_models(tmp_path, keys):
    """A file:// prefix of archives holding `model.txt` = their key, which the echo container reads."""
    prefix = tmp_path / unique("prefix")
    for key in keys:
        archive = prefix / key
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_bytes(tar_gz({"model.txt": key.encode()}))
    return prefix


def echo_endpoint(sm, image, prefix):
    name = unique("mme-echo")
    container = {"Image": image, "Mode": "MultiModel", "ModelDataUrl": f"file://{prefix}/"}
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=[{"Key": "berth:model-memory-mb", "Value": "1"}])
    d = wait_status(sm, name)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    return name


def assert_serves_the_multi_model_api(berth, runtime, ep, keys, paths_prefix):
    answers = {}
    for key in keys:
        r = runtime.invoke_endpoint(EndpointName=ep, TargetModel=key, ContentType="text/plain", Body=b"hello")
        answers[key] = json.loads(r["Body"].read())
    for key, a in answers.items():
        # The container got the model's files through POST /models and its invocation at /models/{name}/invoke.
        assert (a["model_file"], a["body"]) == (key, "hello"), a
        assert len(a["model"]) == 32 and all(c in "0123456789abcdef" for c in a["model"]), a
        assert "SAGEMAKER_MULTI_MODEL" in a["environment"]
    assert len({a["model"] for a in answers.values()}) == len(keys)
    assert all(loads_logged(berth, ep, k) == 1 for k in keys)


def test_an_exec_server_that_implements_the_multi_model_api(berth, sm, runtime, tmp_path):
    from conftest import ECHO_IMAGE

    keys = ["a.tar.gz", "nested/b.tar.gz"]
    ep = echo_endpoint(sm, ECHO_IMAGE, echo_models(tmp_path, keys))
    assert_serves_the_multi_model_api(berth, runtime, ep, keys, None)


def test_a_multi_model_shadow_loads_and_answers_the_target_model(berth, sm, runtime, tmp_path):
    from conftest import ECHO_IMAGE

    keys = ["a.tar.gz", "nested/b.tar.gz"]
    prefix = echo_models(tmp_path, keys)
    name = unique("mme-shadow")
    container = {"Image": ECHO_IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"file://{prefix}/"}
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[variant("Prod", name)],
        ShadowProductionVariants=[variant("Shadow", name)],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=[{"Key": "berth:model-memory-mb", "Value": "1"}])
    d = wait_status(sm, name)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    for key in keys:
        r = runtime.invoke_endpoint(EndpointName=name, TargetModel=key, ContentType="text/plain", Body=b"hello")
        assert r["InvokedProductionVariant"] == "Prod" and json.loads(r["Body"].read())["model_file"] == key

    def compared():
        shadows = requests.get(f"{berth.url}/berth/v1/endpoints/{name}/shadows", timeout=10).json()["shadows"]
        return shadows if shadows and shadows[0]["sampled"] >= len(keys) and len(shadows[0]["recent"]) >= len(keys) else None

    shadows = eventually(compared)
    # The shadow's instance loaded each model itself (its own POST /models) and answered at
    # /models/{name}/invoke: the same model file, from another process.
    assert shadows, "the shadow compared nothing"
    for c in shadows[0]["recent"]:
        assert c["shadow_status"] == 200, c
        production, shadow = json.loads(c["production_body"]), json.loads(c["shadow_body"])
        assert shadow["model_file"] == production["model_file"] and shadow["model"] == production["model"]
        assert shadow["pid"] != production["pid"]
    assert {json.loads(c["shadow_body"])["model_file"] for c in shadows[0]["recent"]} == set(keys)


def test_a_container_image_that_implements_the_multi_model_api(berth, sm, runtime, tmp_path):
    import subprocess
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "containers"))
    from build_image import build

    try:
        subprocess.run(["docker", "version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"this test needs a running Docker engine (scripts/test.sh starts dockerd): {e}")
    image = build("123456789012.dkr.ecr.us-east-1.amazonaws.com/echo-model:mme")
    keys = ["a.tar.gz", "b.tar.gz"]
    ep = echo_endpoint(sm, image, echo_models(tmp_path, keys))
    assert_serves_the_multi_model_api(berth, runtime, ep, keys, "/opt/ml/models")
    # The container sees only its own loaded models, under /opt/ml/models, each a tree of links.
    staged = list((berth.data_dir / "staged-models").iterdir())
    assert len(staged) == 1 and sorted(p.name for p in staged[0].iterdir()) and len(list(staged[0].iterdir())) == 2
    sm.delete_endpoint(EndpointName=ep)
    deadline = time.time() + 30
    while (berth.data_dir / "staged-models").exists() and any((berth.data_dir / "staged-models").iterdir()):
        assert time.time() < deadline, "staged models were not removed with the container"
        time.sleep(0.2)
