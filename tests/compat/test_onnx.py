"""The built-in berth/onnx image: models exported from scikit-learn and XGBoost, served through
boto3, answers compared with onnxruntime's on the same rows."""

import json
import tarfile

import numpy as np
import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, error_message, unique, variant, wait_status

onnxruntime = pytest.importorskip("onnxruntime")
sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
IRIS_X = IRIS_X.astype(np.float32)
DIAB_X, DIAB_Y = load_diabetes(return_X_y=True)
DIAB_X = DIAB_X.astype(np.float32)


def classifiers():
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    return {
        "logistic": LogisticRegression(max_iter=1000),
        "tree": DecisionTreeClassifier(random_state=0),
        "forest": RandomForestClassifier(n_estimators=20, random_state=0),
        "boosting": GradientBoostingClassifier(n_estimators=20, random_state=0),
        "mlp": MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0),
        "scaled-logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "normalized-forest": make_pipeline(Normalizer(), RandomForestClassifier(n_estimators=10, random_state=0)),
    }


def regressors():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression

    return {"linear": LinearRegression(), "forest-regressor": RandomForestRegressor(n_estimators=10, random_state=0)}


def export(model, X, zipmap):
    options = {id(model): {"zipmap": False}} if not zipmap and hasattr(model, "predict_proba") else None
    return to_onnx(model, X[:1], options=options, target_opset=17).SerializeToString()


def xgboost_onnx():
    xgboost = pytest.importorskip("xgboost")
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(
        xgboost.XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(IRIS_X, IRIS_Y)
    options = {id(model): {"zipmap": False}}
    return to_onnx(model, IRIS_X[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString()


def reference(onnx_bytes, X):
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def deploy_onnx(sm, tmp_path, onnx_bytes, packaging="tar.gz", name=None):
    name = name or unique("onnx")
    d = tmp_path / name
    d.mkdir()
    (d / "model.onnx").write_bytes(onnx_bytes)
    if packaging == "tar.gz":
        archive = tmp_path / f"{name}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(d / "model.onnx", arcname="model.onnx")
        url = f"file://{archive}"
    elif packaging == "file":
        url = f"file://{d / 'model.onnx'}"
    else:
        url = f"file://{d}"
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/onnx:1", "ModelDataUrl": url}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name, wait_status(sm, name)


def csv(rows):
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


@pytest.mark.parametrize("family", list(classifiers()))
def test_classifiers_match_onnxruntime(sm, runtime, tmp_path, family):
    model = classifiers()[family].fit(IRIS_X, IRIS_Y)
    zipmap = family in ("forest", "mlp")  # both output forms of skl2onnx are served
    onnx_bytes = export(model, IRIS_X, zipmap)
    ep, d = deploy_onnx(sm, tmp_path, onnx_bytes, packaging=["tar.gz", "dir", "file"][len(family) % 3])
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    rows = IRIS_X[::7]
    labels, probabilities = reference(onnx_bytes, rows)[:2]
    if zipmap:
        probabilities = [[p[k] for k in sorted(p)] for p in probabilities]

    r = runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Accept="application/json", Body=csv(rows))
    assert r["ContentType"] == "application/json"
    got = json.loads(r["Body"].read())["predictions"]
    assert [p["label"] for p in got] == [int(v) for v in labels]
    np.testing.assert_allclose([p["probabilities"] for p in got], probabilities, rtol=1e-5, atol=1e-6)

    r = runtime.invoke_endpoint(EndpointName=ep, ContentType="application/json", Accept="text/csv", Body=json.dumps({"instances": rows.tolist()}))
    assert r["ContentType"] == "text/csv"
    assert r["Body"].read().decode().split() == [str(int(v)) for v in labels]


@pytest.mark.parametrize("family", list(regressors()))
def test_regressors_match_onnxruntime(sm, runtime, tmp_path, family):
    model = regressors()[family].fit(DIAB_X, DIAB_Y)
    onnx_bytes = export(model, DIAB_X, zipmap=False)
    ep, d = deploy_onnx(sm, tmp_path, onnx_bytes)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    rows = DIAB_X[::40]
    (expected,) = reference(onnx_bytes, rows)
    got = json.loads(runtime.invoke_endpoint(EndpointName=ep, ContentType="application/json", Body=json.dumps(rows.tolist()))["Body"].read())
    np.testing.assert_allclose([p["score"] for p in got["predictions"]], expected.ravel(), rtol=1e-5)


def assert_classifier_served_like_onnxruntime(sm, runtime, tmp_path, onnx_bytes, rows):
    """Deploys a classifier export and checks berth's labels and probabilities against onnxruntime's."""
    ep, d = deploy_onnx(sm, tmp_path, onnx_bytes)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    labels, probabilities = reference(onnx_bytes, rows)[:2]
    got = json.loads(runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Body=csv(rows))["Body"].read())["predictions"]
    assert [p["label"] for p in got] == [int(v) for v in labels]
    np.testing.assert_allclose([p["probabilities"] for p in got], probabilities, rtol=1e-5, atol=1e-6)


def test_xgboost_matches_onnxruntime(sm, runtime, tmp_path):
    assert_classifier_served_like_onnxruntime(sm, runtime, tmp_path, xgboost_onnx(), IRIS_X[::5])


def test_plain_neural_net(sm, runtime, tmp_path):
    from onnx import TensorProto, helper

    # y = relu(x W + b): a two-layer-free net built by hand, as a framework export would be.
    w = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]], dtype=np.float32)
    b = np.array([0.1, -0.2], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["z"]), helper.make_node("Relu", ["z"], ["y"])],
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor("W", TensorProto.FLOAT, [3, 2], w.ravel()), helper.make_tensor("B", TensorProto.FLOAT, [2], b)],
    )
    onnx_bytes = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    ep, d = deploy_onnx(sm, tmp_path, onnx_bytes)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    rows = np.array([[1, 2, 3], [-1, 0, 4]], dtype=np.float32)
    got = json.loads(runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Body=csv(rows))["Body"].read())["predictions"]
    np.testing.assert_allclose([p["scores"] for p in got], np.maximum(rows @ w + b, 0), rtol=1e-6)


def test_bad_inputs_are_client_errors_that_name_the_problem(sm, runtime, tmp_path):
    from sklearn.linear_model import LogisticRegression

    ep, _ = deploy_onnx(sm, tmp_path, export(LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y), IRIS_X, zipmap=False))
    cases = [
        ("text/csv", None, "5.1,3.5,1.4", 400, "takes 4"),
        ("text/csv", None, "5.1,3.5,abc,0.2", 400, "'abc' is not a number"),
        ("application/json", None, '{"rows": [[1,2,3,4]]}', 400, "instances"),
        ("image/png", None, "x", 415, "unsupported content type"),
        ("text/csv", "application/xml", "5.1,3.5,1.4,0.2", 406, "unsupported accept type"),
    ]
    for content_type, accept, body, status, phrase in cases:
        kw = {"Accept": accept} if accept else {}
        with pytest.raises(runtime.exceptions.ModelError) as e:
            runtime.invoke_endpoint(EndpointName=ep, ContentType=content_type, Body=body, **kw)
        assert e.value.response["OriginalStatusCode"] == status, (body, e.value.response)
        assert phrase in e.value.response["OriginalMessage"], (body, e.value.response)


def test_artifacts_that_are_not_onnx_fail_the_endpoint(sm, tmp_path):
    _, d = deploy_onnx(sm, tmp_path, b"this is not a protobuf")
    assert d["EndpointStatus"] == "Failed"
    assert "not a model ONNX Runtime can load" in d["FailureReason"]

    name = unique("noonnx")
    empty = tmp_path / name
    empty.mkdir()
    (empty / "README").write_text("no model here")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{empty}"}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = wait_status(sm, name)
    assert d["EndpointStatus"] == "Failed"
    assert "no model.onnx" in d["FailureReason"]


def test_builtin_image_needs_model_data(sm):
    with pytest.raises(ClientError) as e:
        sm.create_model(ModelName=unique("nodata"), PrimaryContainer={"Image": "berth/onnx"}, ExecutionRoleArn=ROLE)
    assert "ModelDataUrl" in error_message(e)


def test_npy_input(sm, runtime, tmp_path):
    import io

    from sklearn.linear_model import LogisticRegression

    onnx_bytes = export(LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y), IRIS_X, zipmap=False)
    ep, _ = deploy_onnx(sm, tmp_path, onnx_bytes)
    rows = IRIS_X[::30]
    buf = io.BytesIO()
    np.save(buf, rows.astype(np.float64))
    got = json.loads(runtime.invoke_endpoint(EndpointName=ep, ContentType="application/x-npy", Body=buf.getvalue())["Body"].read())
    assert [p["label"] for p in got["predictions"]] == [int(v) for v in reference(onnx_bytes, rows)[0]]


def test_lightgbm_matches_onnxruntime(sm, runtime, tmp_path):
    lightgbm = pytest.importorskip("lightgbm")
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1).fit(IRIS_X, IRIS_Y)
    onnx_model = convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, 4]))], zipmap=False, target_opset=15)
    assert_classifier_served_like_onnxruntime(sm, runtime, tmp_path, onnx_model.SerializeToString(), IRIS_X[::6])


def test_missing_onnx_runtime_fails_with_what_to_install(own_berth, tmp_path):
    server = own_berth(env={"BERTH_ORT_DYLIB": str(tmp_path / "no-such-libonnxruntime.so")})
    from sklearn.linear_model import LogisticRegression

    _, d = deploy_onnx(server.sm(), tmp_path, export(LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y), IRIS_X, zipmap=False))
    assert d["EndpointStatus"] == "Failed"
    assert "BERTH_ORT_DYLIB is set to" in d["FailureReason"] and "not a file" in d["FailureReason"], d["FailureReason"]


def test_onnx_runtime_not_found_anywhere_and_offline_says_what_to_install(own_berth, tmp_path):
    # A PATH whose python3 has no onnxruntime package, no BERTH_ORT_DYLIB, no copy in the data
    # dir, and --offline: berth installs nothing (without --offline it would install it itself:
    # test_demo.py's clean environment does that).
    import os
    import subprocess

    bare_path = "/usr/bin:/bin"
    probe = subprocess.run(["python3", "-c", "import onnxruntime"], env={"PATH": bare_path}, capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python3 has onnxruntime")
    if os.environ.get("BERTH_ORT_DYLIB") or os.environ.get("ORT_DYLIB_PATH"):
        pytest.skip("this environment names an ONNX Runtime library explicitly")
    server = own_berth("--offline", env={"PATH": bare_path})
    from sklearn.linear_model import LogisticRegression

    _, d = deploy_onnx(server.sm(), tmp_path, export(LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y), IRIS_X, zipmap=False))
    assert d["EndpointStatus"] == "Failed"
    reason = d["FailureReason"]
    assert "ONNX Runtime, which was not found, and berth is --offline" in reason and "pip install onnxruntime" in reason, reason
