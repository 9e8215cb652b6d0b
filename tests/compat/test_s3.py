"""s3:// model data from a real S3-compatible server (moto_server)."""

import threading
import json
import time

import numpy as np
import pytest

from conftest import ROLE, MotoServer, create_echo_model, new_bucket, s3_env, tar_gz, unique, variant, wait_status

onnxruntime = pytest.importorskip("onnxruntime")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402

X, Y = load_iris(return_X_y=True)
X = X.astype(np.float32)


@pytest.fixture(scope="module")
def bucket(s3_server):
    return new_bucket(s3_server, "models")



def iris_onnx():
    model = LogisticRegression(max_iter=1000).fit(X, Y)
    return to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()


def endpoint_for(sm, url, image="berth/onnx"):
    name = unique("s3")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": image, "ModelDataUrl": url}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name, 1.0, 2)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name, wait_status(sm, name)


def model_dirs(berth):
    """The unpacked model directories berth holds now (one per model data and version in use)."""
    root = berth.data_dir / "models"
    return {d.name for d in root.iterdir() if d.is_dir() and not d.name.endswith(".download")} if root.exists() else set()


def wait_gone(berth, dirs, timeout=30):
    deadline = time.time() + timeout
    while model_dirs(berth) & dirs:
        assert time.time() < deadline, f"model directories {model_dirs(berth) & dirs} were not removed"
        time.sleep(0.1)


def test_tar_gz_object_is_downloaded_once_and_served(berth, sm, runtime, bucket):
    s3, name = bucket
    onnx_bytes = iris_onnx()
    s3.put_object(Bucket=name, Key="iris/model.tar.gz", Body=tar_gz({"model.onnx": onnx_bytes}))
    before = model_dirs(berth)
    ep, d = endpoint_for(sm, f"s3://{name}/iris/model.tar.gz")
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    labels = session.run(None, {session.get_inputs()[0].name: X[::10]})[0]
    body = "\n".join(",".join(str(float(v)) for v in row) for row in X[::10])
    got = json.loads(runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Body=body)["Body"].read())
    assert [p["label"] for p in got["predictions"]] == [int(v) for v in labels]
    # Two instances, one model directory, removed when no instance needs it any more.
    new = model_dirs(berth) - before
    assert len(new) == 1, new
    sm.delete_endpoint(EndpointName=ep)
    wait_gone(berth, new)


def test_changed_object_is_fetched_again(berth, sm, runtime, bucket, tmp_path):
    s3, name = bucket
    s3.put_object(Bucket=name, Key="echo/model.tar.gz", Body=tar_gz({"model.txt": b"first"}))
    model = unique("echo-s3")
    create_echo_model(sm, model, data_url=f"s3://{name}/echo/model.tar.gz")
    before = model_dirs(berth)
    endpoints = []
    for expected in ("first", "second"):
        if expected == "second":
            s3.put_object(Bucket=name, Key="echo/model.tar.gz", Body=tar_gz({"model.txt": b"second"}))
        ep = unique("echo-ep")
        sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("V", model)])
        sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
        assert wait_status(sm, ep)["EndpointStatus"] == "InService"
        assert json.loads(runtime.invoke_endpoint(EndpointName=ep, Body=b"x")["Body"].read())["model_file"] == expected
        endpoints.append(ep)
    new = model_dirs(berth) - before
    assert len(new) == 2, new
    for ep in endpoints:
        sm.delete_endpoint(EndpointName=ep)
    wait_gone(berth, new)


def test_single_onnx_object(sm, runtime, bucket):
    s3, name = bucket
    s3.put_object(Bucket=name, Key="plain/iris.onnx", Body=iris_onnx())
    ep, d = endpoint_for(sm, f"s3://{name}/plain/iris.onnx")
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    assert runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Accept="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read() == b"0\n"


def test_missing_object_and_bucket_fail_with_the_reason(sm, bucket):
    _, name = bucket
    _, d = endpoint_for(sm, f"s3://{name}/absent/model.tar.gz")
    assert d["EndpointStatus"] == "Failed"
    assert f"s3://{name}/absent/model.tar.gz was not found" in d["FailureReason"]
    _, d = endpoint_for(sm, f"s3://{unique('nobucket')}/model.tar.gz")
    assert d["EndpointStatus"] == "Failed"
    assert "was not found" in d["FailureReason"]


@pytest.mark.parametrize(
    "files, phrase",
    [
        ({"../escape.txt": b"x"}, "escape.txt"),
        ("corrupt", "model archive"),
    ],
)
def test_bad_archives_from_s3_fail_the_endpoint(sm, bucket, files, phrase):
    s3, name = bucket
    key = f"bad/{unique('a')}.tar.gz"
    body = tar_gz({"model.onnx": iris_onnx()})[:200] if files == "corrupt" else tar_gz(files)
    s3.put_object(Bucket=name, Key=key, Body=body)
    _, d = endpoint_for(sm, f"s3://{name}/{key}")
    assert d["EndpointStatus"] == "Failed"
    assert phrase in d["FailureReason"], d["FailureReason"]


def data_source(uri, data_type, compression):
    return {"S3DataSource": {"S3Uri": uri, "S3DataType": data_type, "CompressionType": compression}}


def endpoint_for_source(sm, source, image="berth/onnx"):
    name = unique("src")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": image, "ModelDataSource": source}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name, wait_status(sm, name)


def test_prefix_of_files(sm, runtime, bucket):
    s3, name = bucket
    prefix = f"prefix/{unique('p')}/"
    s3.put_object(Bucket=name, Key=prefix + "model.onnx", Body=iris_onnx())
    s3.put_object(Bucket=name, Key=prefix + "extra/notes.txt", Body=b"kept beside the model")
    source = data_source(f"s3://{name}/{prefix}", "S3Prefix", "None")
    ep, d = endpoint_for_source(sm, source)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    assert sm.describe_model(ModelName=ep)["PrimaryContainer"]["ModelDataSource"] == source
    assert runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Accept="text/csv", Body="6.7,3.0,5.2,2.3")["Body"].read() == b"2\n"

    _, d = endpoint_for_source(sm, data_source(f"s3://{name}/prefix/{unique('empty')}/", "S3Prefix", "None"))
    assert d["EndpointStatus"] == "Failed"
    assert "no objects under the prefix" in d["FailureReason"]


def test_object_with_and_without_compression(sm, runtime, bucket):
    s3, name = bucket
    key = f"objects/{unique('o')}"
    s3.put_object(Bucket=name, Key=key + "/packed", Body=tar_gz({"model.onnx": iris_onnx()}))
    ep, d = endpoint_for_source(sm, data_source(f"s3://{name}/{key}/packed", "S3Object", "Gzip"))
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    # An uncompressed object is served as the file it is, even when its name looks like an archive.
    s3.put_object(Bucket=name, Key=key + "/model.onnx", Body=iris_onnx())
    ep, d = endpoint_for_source(sm, data_source(f"s3://{name}/{key}/model.onnx", "S3Object", "None"))
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    assert runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Accept="text/csv", Body="5.1,3.5,1.4,0.2")["Body"].read() == b"0\n"


def test_model_data_source_validation(sm):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        sm.create_model(
            ModelName=unique("bad"),
            PrimaryContainer={"Image": "berth/onnx", "ModelDataSource": data_source("s3://b/p/", "S3Prefix", "Gzip")},
            ExecutionRoleArn=ROLE,
        )
    assert "Gzip" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        sm.create_model(
            ModelName=unique("bad"),
            PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": "s3://b/m.tar.gz", "ModelDataSource": data_source("s3://b/p/", "S3Prefix", "None")},
            ExecutionRoleArn=ROLE,
        )


class TruncatingS3(threading.Thread):
    """An S3 endpoint that fails one way on purpose: GetObject promises 100,000 bytes, sends
    1,000 and closes the connection. (Only for this failure; real S3 behaviour is moto's.)"""

    def __init__(self):
        super().__init__(daemon=True)
        import http.server

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def headers_out(self):
                self.send_response(200)
                self.send_header("ETag", '"abc"')
                self.send_header("Content-Length", "100000")
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self):
                self.headers_out()

            def do_GET(self):
                outer.gets += 1
                self.headers_out()
                self.wfile.write(b"\x1f\x8b" + b"\0" * 998)
                self.wfile.flush()
                self.close_connection = True

        self.gets = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def run(self):
        self.server.serve_forever()


def failure_from_s3(own_berth, s3_url, data_url):
    """Deploys an echo model whose data is `data_url` on the S3 server at `s3_url`; returns the FailureReason."""
    server = own_berth(env=s3_env(s3_url))
    sm = server.sm()
    name = unique("s3fail")
    create_echo_model(sm, name, data_url=data_url)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = wait_status(sm, name, timeout=120)
    assert d["EndpointStatus"] == "Failed"
    return d["FailureReason"]


def test_truncated_download_fails_the_endpoint(own_berth):
    fake = TruncatingS3()
    fake.start()
    try:
        reason = failure_from_s3(own_berth, fake.url, "s3://bucket/model.tar.gz")
        assert "s3://bucket/model.tar.gz" in reason and ("truncated" in reason or "failed after" in reason), reason
        assert fake.gets >= 1
    finally:
        fake.server.shutdown()


def test_denied_access_fails_the_endpoint(own_berth, tmp_path):
    # A second moto_server that enforces authentication: berth's credentials are unknown to it.
    moto = MotoServer(tmp_path / "moto-auth.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        reason = failure_from_s3(own_berth, moto.url, "s3://private-bucket/model.tar.gz")
        assert "access to model data s3://private-bucket/model.tar.gz was denied" in reason, reason
    finally:
        moto.stop()
