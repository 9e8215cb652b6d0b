"""Framework models as users ship them, through the SageMaker Python SDK v2 unchanged: a
scikit-learn model archive and an `inference.py`, deployed with `SKLearnModel(...).deploy()` on
AWS's scikit-learn image URI, served by berth's Python runtime (no Docker image of that
reference exists here). S3 is the moto server. The models are trained with the exact
environment berth serves them with (`berth prepare-python`), so predictions must equal the
library's own, label for label and probabilities to 1e-6."""

import io
import json
import os
import shutil
import subprocess
import tarfile
import textwrap

import numpy as np
import pytest

from conftest import ROLE, berth_binary, python_runtime_berth, sdk_session, unique, wait_status

sagemaker = pytest.importorskip("sagemaker")
if not sagemaker.__version__.startswith("2."):
    pytest.skip("this module drives SDK v2", allow_module_level=True)

from sagemaker.deserializers import JSONDeserializer  # noqa: E402
from sagemaker.serializers import JSONSerializer  # noqa: E402
from sagemaker.sklearn import SKLearnModel  # noqa: E402

FRAMEWORK_VERSION = "1.2-1"
SKLEARN_IMAGE = f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:{FRAMEWORK_VERSION}-cpu-py3"
BUCKET = "berth-python-runtime"

TRAIN = textwrap.dedent(
    """
    import json, sys, joblib, numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    joblib.dump(model, sys.argv[1])
    rows = X[::10]
    json.dump({"rows": rows.tolist(), "labels": model.predict(rows).tolist(), "proba": model.predict_proba(rows).tolist()}, open(sys.argv[2], "w"))
    """
)


def free_space(path):
    return f"{shutil.disk_usage(path).free / 1024**3:.1f} GB free"


def prepare_python(server, image):
    """`berth prepare-python` for `image` on the server's data directory; its interpreter.
    A failure shows what pip said and the disk space left (a full disk is the usual cause)."""
    out = subprocess.run([berth_binary(), "prepare-python", "--data-dir", str(server.data_dir), "--image", image], capture_output=True, text=True)
    assert out.returncode == 0, f"prepare-python {image} failed ({free_space(server.data_dir)}): {out.stderr[-3000:]}"
    return out.stdout.strip()


def in_service(server, name, timeout=600):
    """Waits for `name` to settle and asserts it is InService, naming the failure reason if not."""
    d = wait_status(server.sm(), name, timeout=timeout)
    assert d["EndpointStatus"] == "InService", f"{d.get('FailureReason')} ({free_space(server.data_dir)})"
    return d


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_server):
    """A berth whose Python runtime is on, with the moto server as its S3."""
    yield from python_runtime_berth(tmp_path_factory, s3_server, "python-runtime")


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """An iris model pickled by the environment berth serves the image with, its model.tar.gz,
    and the library's own predictions on some rows."""
    python = prepare_python(server, SKLEARN_IMAGE)
    d = tmp_path_factory.mktemp("sklearn-model")
    subprocess.run([python, "-c", TRAIN, str(d / "model.joblib"), str(d / "expected.json")], check=True)
    with tarfile.open(d / "model.tar.gz", "w:gz") as tar:
        tar.add(d / "model.joblib", arcname="model.joblib")
    return d, json.loads((d / "expected.json").read_text())


@pytest.fixture
def session(server, s3_server):
    """A SageMaker SDK session: SageMaker calls go to berth, S3 (and STS) to the moto server."""
    yield from sdk_session(server, s3_server, BUCKET)


def upload_model(session, trained):
    d, _ = trained
    key = f"models/{unique('iris')}/model.tar.gz"
    session.boto_session.client("s3").upload_file(str(d / "model.tar.gz"), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def source(tmp_path, files):
    d = tmp_path / unique("src")
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(textwrap.dedent(text))
    return str(d)


def sklearn_model(session, trained, tmp_path, files):
    """SKLearnModel as users write it: the model archive in S3, a source directory with the handler."""
    return SKLearnModel(
        model_data=upload_model(session, trained),
        role=ROLE,
        entry_point="inference.py",
        source_dir=source(tmp_path, files),
        framework_version=FRAMEWORK_VERSION,
        sagemaker_session=session,
    )


MODEL_FN = """
    import os
    import joblib

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def test_sklearn_model_with_only_model_fn_deploys_through_the_sdk(server, session, trained, tmp_path):
    _, expected = trained
    model = sklearn_model(session, trained, tmp_path, {"inference.py": MODEL_FN})
    name = unique("sk")
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name)
    described = server.sm().describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["DeployedImages"][0]["SpecifiedImage"] == SKLEARN_IMAGE
    # The SDK's default serializers: NumPy in, NumPy out.
    labels = predictor.predict(np.array(expected["rows"]))
    assert labels.tolist() == expected["labels"]
    # CSV and JSON in, by the scikit-learn container's default input_fn and output_fn.
    runtime = server.runtime()
    csv = "\n".join(",".join(str(v) for v in row) for row in expected["rows"])
    answer = runtime.invoke_endpoint(EndpointName=name, Body=csv, ContentType="text/csv", Accept="application/json")
    assert json.loads(answer["Body"].read()) == expected["labels"]
    answer = runtime.invoke_endpoint(EndpointName=name, Body=json.dumps(expected["rows"]), ContentType="application/json", Accept="text/csv")
    assert [int(float(v)) for v in answer["Body"].read().decode().split()] == expected["labels"]
    # Content the container does not take is a 4xx from it: a ModelError naming it.
    with pytest.raises(Exception) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"\x89PNG", ContentType="image/png")
    assert "415" in str(e.value) and "image/png" in str(e.value)
    # NPY bodies are read without pickles: an object array is refused, never unpickled.
    hostile = io.BytesIO()
    np.save(hostile, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(Exception) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=hostile.getvalue(), ContentType="application/x-npy")
    assert "allow_pickle" in str(e.value), e.value


def test_custom_input_and_output_handlers_and_probabilities(server, session, trained, tmp_path):
    _, expected = trained
    handlers = MODEL_FN + """
    import json
    import numpy as np

    def input_fn(body, content_type):
        assert content_type == "application/json", content_type
        return np.array(json.loads(body)["rows"])

    def predict_fn(rows, model):
        return model.predict_proba(rows)

    def output_fn(proba, accept):
        return json.dumps({"probabilities": proba.tolist()}), "application/json"
    """
    model = sklearn_model(session, trained, tmp_path, {"inference.py": handlers})
    name = unique("skjson")
    predictor = model.deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False, serializer=JSONSerializer(), deserializer=JSONDeserializer()
    )
    in_service(server, name)
    got = np.array(predictor.predict({"rows": expected["rows"]})["probabilities"])
    assert np.abs(got - np.array(expected["proba"])).max() < 1e-6


def test_requirements_add_a_package_and_a_failing_model_fn_names_its_error(server, session, trained, tmp_path):
    handlers = MODEL_FN + """
    import tabulate

    def output_fn(prediction, accept):
        return tabulate.tabulate([[int(p)] for p in prediction], tablefmt="plain"), "text/plain"
    """
    model = sklearn_model(session, trained, tmp_path, {"inference.py": handlers, "requirements.txt": "tabulate==0.9.0\n"})
    name = unique("skreq")
    model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
    in_service(server, name)
    _, expected = trained
    answer = server.runtime().invoke_endpoint(EndpointName=name, Body=json.dumps(expected["rows"][:3]), ContentType="application/json")
    assert answer["Body"].read().decode().split() == [str(l) for l in expected["labels"][:3]]

    failing = """
    def model_fn(model_dir):
        raise RuntimeError("the weights file is corrupt")
    """
    model = sklearn_model(session, trained, tmp_path, {"inference.py": failing})
    name = unique("skfail")
    model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
    d = wait_status(server.sm(), name, timeout=600)
    assert d["EndpointStatus"] == "Failed"
    assert "RuntimeError: the weights file is corrupt" in d["FailureReason"], d["FailureReason"]

    # A requirements.txt names packages only: a pip option (another index, a source build) or
    # a URL would let the archive choose what pip downloads and runs.
    for hostile in ["--index-url http://127.0.0.1:9/simple", "tabulate @ https://127.0.0.1:9/tabulate.tar.gz"]:
        model = sklearn_model(session, trained, tmp_path, {"inference.py": MODEL_FN, "requirements.txt": f"numpy\n{hostile}\n"})
        name = unique("skpip")
        model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
        d = wait_status(server.sm(), name, timeout=600)
        assert d["EndpointStatus"] == "Failed", d
        assert "requirements.txt line 2" in d["FailureReason"] and "wheels only" in d["FailureReason"], d["FailureReason"]


def test_off_by_default_because_it_runs_the_models_code(own_berth):
    server = own_berth("--docker", "off")
    with pytest.raises(Exception) as e:
        server.sm().create_model(ModelName="m", PrimaryContainer={"Image": "berth/python"}, ExecutionRoleArn=ROLE)
    assert "--python-runtime on" in str(e.value)
    sm = server.sm()
    sm.create_model(ModelName="m", PrimaryContainer={"Image": SKLEARN_IMAGE}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"VariantName": "V", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    d = wait_status(sm, "e")
    assert d["EndpointStatus"] == "Failed" and "--python-runtime on" in d["FailureReason"], d.get("FailureReason")
    # A framework image may run as a local process: its environment may not choose code.
    with pytest.raises(Exception) as e:
        sm.create_model(ModelName="m2", PrimaryContainer={"Image": SKLEARN_IMAGE, "Environment": {"LD_PRELOAD": "/tmp/x.so"}}, ExecutionRoleArn=ROLE)
    assert "LD_PRELOAD" in str(e.value)
    # The handler's source is model data like any other: only from S3 or under a --file-root.
    with pytest.raises(Exception) as e:
        sm.create_model(
            ModelName="m3",
            PrimaryContainer={"Image": SKLEARN_IMAGE, "Environment": {"SAGEMAKER_PROGRAM": "x.py", "SAGEMAKER_SUBMIT_DIRECTORY": "file:///etc/passwd"}},
            ExecutionRoleArn=ROLE,
        )
    assert "SAGEMAKER_SUBMIT_DIRECTORY" in str(e.value) and "--file-root" in str(e.value), e.value


XGBOOST_VERSION = "3.0-5"
TRAIN_XGBOOST = textwrap.dedent(
    """
    import json, sys, numpy as np, xgboost as xgb
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=200)
    booster = xgb.train({"max_depth": 3, "eta": 0.3}, xgb.DMatrix(X, label=y), num_boost_round=20)
    booster.save_model(sys.argv[1])
    rows = X[:12]
    json.dump({"rows": rows.tolist(), "scores": booster.predict(xgb.DMatrix(rows)).tolist()}, open(sys.argv[2], "w"))
    """
)


def test_xgboost_with_no_script_uses_the_containers_default_handler(server, session, tmp_path):
    """The built-in algorithm's way: a generic Model on AWS's XGBoost image, no entry point;
    CSV in, CSV out (one score per line), as AWS's XGBoost container answers."""
    from sagemaker import image_uris
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.model import Model
    from sagemaker.serializers import CSVSerializer

    image = image_uris.retrieve("xgboost", "us-east-1", XGBOOST_VERSION)
    assert image.endswith(f"/sagemaker-xgboost:{XGBOOST_VERSION}"), image
    python = prepare_python(server, image)
    subprocess.run([python, "-c", TRAIN_XGBOOST, str(tmp_path / "xgboost-model"), str(tmp_path / "expected.json")], check=True)
    expected = json.loads((tmp_path / "expected.json").read_text())
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "xgboost-model", arcname="xgboost-model")
    key = f"models/{unique('xgb')}/model.tar.gz"
    session.boto_session.client("s3").upload_file(str(tmp_path / "model.tar.gz"), BUCKET, key)

    model = Model(image_uri=image, model_data=f"s3://{BUCKET}/{key}", role=ROLE, sagemaker_session=session)
    name = unique("xgb")
    model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
    in_service(server, name)
    predictor = sagemaker.predictor.Predictor(name, sagemaker_session=session, serializer=CSVSerializer(), deserializer=CSVDeserializer())
    got = [float(row[0]) for row in predictor.predict(np.array(expected["rows"]))]
    assert np.abs(np.array(got) - np.array(expected["scores"])).max() < 1e-6
    # The framework way: XGBoostModel with an entry point that replaces only output_fn.
    from sagemaker.xgboost import XGBoostModel

    handler = """
    import json

    def output_fn(scores, accept):
        return json.dumps({"scores": [float(s) for s in scores]}), "application/json"
    """
    framework_model = XGBoostModel(
        model_data=f"s3://{BUCKET}/{key}",
        role=ROLE,
        entry_point="inference.py",
        source_dir=source(tmp_path, {"inference.py": handler}),
        framework_version=XGBOOST_VERSION,
        sagemaker_session=session,
    )
    framework_name = unique("xgbfw")
    framework_model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=framework_name, wait=False)
    in_service(server, framework_name)
    csv = "\n".join(",".join(str(v) for v in row) for row in expected["rows"])
    answer = server.runtime().invoke_endpoint(EndpointName=framework_name, Body=csv, ContentType="text/csv")
    assert np.abs(np.array(json.loads(answer["Body"].read())["scores"]) - np.array(expected["scores"])).max() < 1e-6
    # libsvm in as well; JSON out as {"predictions": [{"score": x}, ...]}.
    libsvm = "\n".join("0 " + " ".join(f"{i}:{v}" for i, v in enumerate(row)) for row in expected["rows"])
    answer = server.runtime().invoke_endpoint(EndpointName=name, Body=libsvm, ContentType="text/libsvm", Accept="application/json")
    scores = [p["score"] for p in json.loads(answer["Body"].read())["predictions"]]
    assert np.abs(np.array(scores) - np.array(expected["scores"])).max() < 1e-5


def test_an_ab_test_of_a_framework_model_and_a_berth_onnx_model(server, session, trained, tmp_path):
    """A scikit-learn model through the Python runtime beside the same kind of model on
    berth/onnx, at 1:1: both answer, each from its own variant."""
    from conftest import ROOT

    sm = server.sm()
    name = unique("abpy")
    sm.create_model(
        ModelName=f"{name}-py",
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": upload_model(session, trained),
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": f"file://{sourcedir(tmp_path, MODEL_FN)}"},
        },
        ExecutionRoleArn=ROLE,
    )
    onnx = tmp_path / "iris-logistic.onnx"  # the demo's model, under the --file-root
    onnx.write_bytes((ROOT / "crates" / "berth" / "demo" / "iris-logistic.onnx").read_bytes())
    sm.create_model(ModelName=f"{name}-onnx", PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{onnx}"}, ExecutionRoleArn=ROLE)
    variants = [
        {"VariantName": v, "ModelName": f"{name}-{v.lower()}", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1}
        for v in ("Py", "Onnx")
    ]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    in_service(server, name)
    _, expected = trained
    counts = {"Py": 0, "Onnx": 0}
    for _ in range(100):
        answer = server.runtime().invoke_endpoint(EndpointName=name, Body="5.1,3.5,1.4,0.2", ContentType="text/csv", Accept="application/json")
        counts[answer["InvokedProductionVariant"]] += 1
        body = json.loads(answer["Body"].read())
        label = body[0] if answer["InvokedProductionVariant"] == "Py" else body["predictions"][0]["label"]
        assert label == 0
    assert min(counts.values()) > 25, counts


def sourcedir(tmp_path, handler):
    """A sourcedir.tar.gz as the SDK uploads it, here on the file system (under --file-root)."""
    archive = tmp_path / f"{unique('sourcedir')}.tar.gz"
    data = textwrap.dedent(handler).encode()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


def test_handlers_in_the_archives_code_directory_errors_and_a_missing_script(server, tmp_path):
    """berth/python with the handler in the model archive's code/ (as the SDK packs PyTorch
    models): an exception at request time is a ModelError with its message; a script that is not
    there fails the endpoint naming it."""
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "inference.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            class Doubler:
                def predict(self, rows):
                    if rows.shape[1] == 3:
                        raise ValueError("three columns is one too few")
                    return np.asarray(rows) * 2

            def model_fn(model_dir):
                return Doubler()
            """
        )
    )
    sm = server.sm()

    def endpoint(program):
        name = unique("pycode")
        env = {"SAGEMAKER_PROGRAM": program}
        sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/python", "ModelDataUrl": f"file://{model}", "Environment": env}, ExecutionRoleArn=ROLE)
        variant = {"VariantName": "V", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        return name, wait_status(sm, name, timeout=600)

    name, d = endpoint("inference.py")
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    runtime = server.runtime()
    answer = runtime.invoke_endpoint(EndpointName=name, Body="1,2,3,4", ContentType="text/csv", Accept="application/json")
    assert json.loads(answer["Body"].read()) == [[2.0, 4.0, 6.0, 8.0]]
    with pytest.raises(Exception) as e:
        runtime.invoke_endpoint(EndpointName=name, Body="1,2,3", ContentType="text/csv")
    assert "ModelError" in str(e.value) and "500" in str(e.value) and "ValueError: three columns is one too few" in str(e.value), e.value

    _, d = endpoint("missing.py")
    assert d["EndpointStatus"] == "Failed"
    assert "SAGEMAKER_PROGRAM missing.py is not in the source directory" in d["FailureReason"], d["FailureReason"]


def test_a_version_without_wheels_for_this_python_falls_back_and_says_so(server, tmp_path):
    """scikit-learn 0.23 has no wheels for this machine's Python (3.11): the nearest newer minor
    that installs serves, and the events and the instance log say which."""
    handler = tmp_path / "src"
    handler.mkdir()
    (handler / "inference.py").write_text("def model_fn(model_dir):\n    return object()\n")
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(handler / "inference.py", arcname="inference.py")
    sm = server.sm()
    name = unique("pyold")
    image = "683313688378.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3"
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": f"file://{archive}"}
    sm.create_model(ModelName=name, PrimaryContainer={"Image": image, "Environment": env}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{"VariantName": "V", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = in_service(server, name, timeout=900)
    import requests

    events = requests.get(f"{server.url}/berth/v1/events", params={"endpoint": name}, timeout=10).json()["events"]
    notes = [e["message"] for e in events if "does not install for this host's Python" in e["message"]]
    assert notes and "scikit-learn==0.23.*" in notes[0] and "using scikit-learn==1." in notes[0], [e["message"] for e in events]
    log = subprocess.run([berth_binary(), "logs", name, "--url", server.url], capture_output=True, text=True, check=True).stdout
    assert "does not install for this host's Python" in log, log[-500:]


def test_offline_uses_only_prepared_environments(own_berth, tmp_path):
    server = own_berth("--python-runtime", "on", "--offline", "--docker", "off")
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return object()\n")
    sm = server.sm()
    env = {"SAGEMAKER_PROGRAM": "inference.py"}
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "berth/python", "ModelDataUrl": f"file://{model}", "Environment": env}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"VariantName": "V", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    d = wait_status(sm, "e")
    assert d["EndpointStatus"] == "Failed"
    assert "berth is --offline and the environment for numpy is not prepared" in d["FailureReason"], d["FailureReason"]
    assert "berth prepare-python" in d["FailureReason"]


def test_a_multi_model_endpoint_of_framework_models(server, session, trained, tmp_path):
    """SageMaker's MultiDataModel shape: archives under one prefix, each with its model and,
    optionally, its own handler in `code/`; the framework's default handler serves the others."""
    from conftest import tar_gz

    d, expected = trained
    s3 = session.boto_session.client("s3")
    prefix = f"mme/{unique('iris')}"
    joblib_bytes = (d / "model.joblib").read_bytes()
    custom = textwrap.dedent(
        """
        import json

        def output_fn(prediction, accept):
            return json.dumps({"custom": prediction.tolist()}), "application/json"
        """
    )
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/plain.tar.gz", Body=tar_gz({"model.joblib": joblib_bytes}))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/custom.tar.gz", Body=tar_gz({"model.joblib": joblib_bytes, "code/inference.py": custom.encode()}))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/broken.tar.gz", Body=tar_gz({"README": b"no model here"}))
    sm, runtime = server.sm(), server.runtime()
    name = unique("sk-mme")
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{BUCKET}/{prefix}/"},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    in_service(server, name)
    rows = "\n".join(",".join(str(v) for v in row) for row in expected["rows"])

    def predict(target):
        r = runtime.invoke_endpoint(EndpointName=name, TargetModel=target, ContentType="text/csv", Accept="application/json", Body=rows)
        return json.loads(r["Body"].read())

    assert predict("plain.tar.gz") == expected["labels"]
    assert predict("custom.tar.gz") == {"custom": expected["labels"]}
    assert predict("plain.tar.gz") == expected["labels"], "each model keeps its own handlers"
    with pytest.raises(Exception) as e:
        predict("broken.tar.gz")
    assert e.value.response["Error"]["Code"] == "ValidationError" and "could not load TargetModel broken.tar.gz" in str(e.value)


def test_a_registered_framework_model_version_deploys_and_serves(server, session, trained, tmp_path):
    """`SKLearnModel.register()` into a group, approval, then `ModelPackage(...).deploy()`: the
    version's framework container (AWS's scikit-learn image, its code in S3) runs on berth's
    Python runtime and predicts as the library does."""
    from sagemaker import ModelPackage

    _, expected = trained
    group = unique("sk-group")
    server.sm().create_model_package_group(ModelPackageGroupName=group)
    model = sklearn_model(session, trained, tmp_path, {"inference.py": MODEL_FN})
    registered = model.register(content_types=["application/json"], response_types=["application/json"], inference_instances=["ml.m5.large"],
                                transform_instances=["ml.m5.large"], model_package_group_name=group, approval_status="Approved")
    d = server.sm().describe_model_package(ModelPackageName=registered.model_package_arn)
    assert d["ModelApprovalStatus"] == "Approved" and d["InferenceSpecification"]["Containers"][0]["Image"] == SKLEARN_IMAGE
    assert d["InferenceSpecification"]["Containers"][0]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    name = unique("sk-pkg")
    ModelPackage(role=ROLE, model_package_arn=registered.model_package_arn, sagemaker_session=session).deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name
    )
    in_service(server, name)
    answer = server.runtime().invoke_endpoint(EndpointName=name, Body=json.dumps(expected["rows"]), ContentType="application/json", Accept="application/json")
    assert json.loads(answer["Body"].read()) == expected["labels"]
    server.sm().delete_endpoint(EndpointName=name)
