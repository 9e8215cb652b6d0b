"""Per-variant model quality from captured answers and ground truth: two berth/onnx classifiers
on one endpoint with data capture, labels sent by InferenceId (berth's API) and by eventId
(SageMaker's ground-truth JSON Lines); berth's accuracy, precision, recall, F1 (binary, macro,
weighted), AUC and confusion matrix equal scikit-learn's on the same predictions, and a
regressor's MAE, RMSE and R² likewise."""

import json
import re
import time

import numpy as np
import pytest
import requests

from conftest import ROLE, unique, variant, wait_status

sklearn = pytest.importorskip("sklearn")
from sklearn import metrics  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402


def onnx_model(sm, tmp_path, model, X):
    name = unique("q")
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(to_onnx(model, X[:1], options=options, target_opset=17).SerializeToString())
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{path}"}, ExecutionRoleArn=ROLE)
    return name


def capture_endpoint(sm, tmp_path, models):
    ep = unique("quality")
    sm.create_endpoint_config(
        EndpointConfigName=ep,
        ProductionVariants=[variant(v, m) for v, m in models.items()],
        DataCaptureConfig={"InitialSamplingPercentage": 100, "DestinationS3Uri": f"file://{tmp_path}/capture", "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]},
    )
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    return ep


def quality(berth, ep, n, **params):
    deadline = time.time() + 15
    while True:
        r = requests.get(f"{berth.url}/berth/v1/endpoints/{ep}/quality", params=params, timeout=10)
        assert r.status_code == 200, r.text
        out = r.json()
        if sum(v["n"] for v in out["variants"]) >= n or time.time() > deadline:
            return {v["variant"]: v for v in out["variants"]}
        time.sleep(0.3)


def labelled_traffic(berth, runtime, ep, rows, n, prefix):
    """Sends `n` of `rows` (cycling) with InferenceIds, then their labels; waits until joined."""
    labels = []
    for i in range(n):
        row, truth = rows[i % len(rows)]
        runtime.invoke_endpoint(EndpointName=ep, Body=",".join(repr(float(v)) for v in row), ContentType="text/csv", InferenceId=f"{prefix}{i}")
        labels.append({"inference_id": f"{prefix}{i}", "label": int(truth)})
    requests.post(f"{berth.url}/berth/v1/endpoints/{ep}/ground-truth", json={"labels": labels}, timeout=10)
    quality(berth, ep, n)


def close(a, b):
    assert abs(a - b) < 1e-9, (a, b)


def test_classification_quality_matches_scikit_learn(berth, sm, runtime, tmp_path):
    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    train, test = slice(0, 400), slice(400, None)
    models = {
        "A": onnx_model(sm, tmp_path, LogisticRegression(max_iter=5000).fit(X[train], y[train]), X),
        "B": onnx_model(sm, tmp_path, DecisionTreeClassifier(max_depth=2, random_state=0).fit(X[train], y[train]), X),
    }
    ep = capture_endpoint(sm, tmp_path, models)
    seen = {"A": ([], [], []), "B": ([], [], [])}  # truth, predicted label, probability of 1
    labels = []
    for i, (row, truth) in enumerate(zip(X[test], y[test])):
        r = runtime.invoke_endpoint(EndpointName=ep, Body=",".join(repr(float(v)) for v in row), ContentType="text/csv", Accept="application/json", InferenceId=f"row-{i}")
        p = json.loads(r["Body"].read())["predictions"][0]
        t, l, s = seen[r["InvokedProductionVariant"]]
        t.append(int(truth)), l.append(int(p["label"])), s.append(p["probabilities"][1])
        labels.append({"inference_id": f"row-{i}", "label": int(truth)})
    r = requests.post(f"{berth.url}/berth/v1/endpoints/{ep}/ground-truth", json={"labels": labels}, timeout=10)
    assert r.json() == {"stored": len(labels)}
    q = quality(berth, ep, len(labels))
    for name, (t, l, s) in seen.items():
        v = q[name]
        assert v["n"] == len(t) and v["unlabelled"] == 0
        close(v["accuracy"]["value"], metrics.accuracy_score(t, l))
        lo, hi = v["accuracy"]["ci95"]
        assert lo <= v["accuracy"]["value"] <= hi
        p, rc, f, _ = metrics.precision_recall_fscore_support(t, l, average="binary", pos_label=1, zero_division=0)
        close(v["binary"]["precision"]["value"], p)
        close(v["binary"]["recall"]["value"], rc)
        close(v["binary"]["f1"]["value"], f)
        close(v["binary"]["auc"]["value"], metrics.roc_auc_score(t, s))
        for avg in ("macro", "weighted"):
            p, rc, f, _ = metrics.precision_recall_fscore_support(t, l, average=avg, zero_division=0)
            close(v[avg]["precision"]["value"], p)
            close(v[avg]["recall"]["value"], rc)
            close(v[avg]["f1"]["value"], f)
        assert v["confusion_matrix"] == metrics.confusion_matrix(t, l, labels=[0, 1]).tolist()
        assert v["classes"] == ["0", "1"]


def test_sagemaker_ground_truth_lines_join_by_event_id(berth, sm, runtime, tmp_path):
    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    ep = capture_endpoint(sm, tmp_path, {"A": onnx_model(sm, tmp_path, LogisticRegression(max_iter=5000).fit(X, y), X)})
    for row in X[:20]:
        runtime.invoke_endpoint(EndpointName=ep, Body=",".join(repr(float(v)) for v in row), ContentType="text/csv")
    deadline = time.time() + 15
    while len(captured := [json.loads(line) for f in (tmp_path / "capture" / ep).rglob("*.jsonl") for line in f.read_text().splitlines()]) < 20:
        assert time.time() < deadline
        time.sleep(0.2)
    truth = {r["eventMetadata"]["eventId"]: int(y[i]) for i, r in enumerate(captured)}
    # Captured order is the request order: row i's label is y[i].
    lines = "\n".join(
        json.dumps({"groundTruthData": {"data": str(label), "encoding": "CSV"}, "eventMetadata": {"eventId": event}, "eventVersion": "0"})
        for event, label in truth.items()
    )
    r = requests.post(f"{berth.url}/berth/v1/endpoints/{ep}/ground-truth", data=lines, headers={"Content-Type": "application/jsonlines"}, timeout=10)
    assert r.json() == {"stored": 20}
    v = quality(berth, ep, 20)["A"]
    predicted = [int(json.loads(r["captureData"]["endpointOutput"]["data"])["predictions"][0]["label"]) for r in captured]
    close(v["accuracy"]["value"], metrics.accuracy_score(list(truth.values()), predicted))
    bad = requests.post(f"{berth.url}/berth/v1/endpoints/{ep}/ground-truth", data='{"groundTruthData": {"data": "1"}}', timeout=10)
    assert bad.status_code == 400 and "eventId" in bad.json()["message"]


def test_regression_quality_matches_scikit_learn(berth, sm, runtime, tmp_path):
    X, y = load_diabetes(return_X_y=True)
    X = X.astype(np.float32)
    ep = capture_endpoint(sm, tmp_path, {"R": onnx_model(sm, tmp_path, LinearRegression().fit(X[:300], y[:300]), X)})
    truths, preds, labels = [], [], []
    for i, (row, truth) in enumerate(zip(X[300:360], y[300:360])):
        r = runtime.invoke_endpoint(EndpointName=ep, Body=",".join(repr(float(v)) for v in row), ContentType="text/csv", Accept="application/json", InferenceId=f"r{i}")
        preds.append(json.loads(r["Body"].read())["predictions"][0]["score"])
        truths.append(float(truth))
        labels.append({"inference_id": f"r{i}", "label": float(truth)})
    requests.post(f"{berth.url}/berth/v1/endpoints/{ep}/ground-truth", json={"labels": labels}, timeout=10)
    v = quality(berth, ep, 60, problem="regression")["R"]
    assert v["n"] == 60
    close(v["mae"]["value"], metrics.mean_absolute_error(truths, preds))
    close(v["rmse"]["value"], metrics.mean_squared_error(truths, preds) ** 0.5)
    close(v["r2"]["value"], metrics.r2_score(truths, preds))
    lo, hi = v["rmse"]["ci95"]
    assert lo <= v["rmse"]["value"] <= hi

    # A new endpoint of the same name starts with no captured answers or labels of the old one.
    sm.delete_endpoint(EndpointName=ep)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=ep, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    again = requests.get(f"{berth.url}/berth/v1/endpoints/{ep}/quality", params={"problem": "regression"}, timeout=10).json()
    assert again["variants"] == [], again


def test_significance_names_the_better_variant(berth, sm, runtime, tmp_path):
    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    good = onnx_model(sm, tmp_path, LogisticRegression(max_iter=5000).fit(X[:300], y[:300]), X)
    # Trained on shuffled labels: about as good as a coin weighted by the classes.
    shuffled = np.random.default_rng(0).permutation(y[:300])
    weak = onnx_model(sm, tmp_path, DecisionTreeClassifier(max_depth=2, random_state=0).fit(X[:300], shuffled), X)
    ep = capture_endpoint(sm, tmp_path, {"Weak": weak, "Good": good})
    rows = list(zip(X[300:], y[300:]))
    labelled_traffic(berth, runtime, ep, rows, 800, "s")
    out = requests.get(f"{berth.url}/berth/v1/endpoints/{ep}/significance", params={"metric": "accuracy", "a": "Weak", "b": "Good"}, timeout=10).json()
    assert out["decided"] and out["winner"] == "Good", out
    # In plain words, the difference and its interval in points of accuracy, as computed.
    points = lambda v: f"{v * 100:+.1f}"  # noqa: E731
    n = out["decided_after"]
    assert 4 <= n <= out["n"][0] + out["n"][1]
    want = f"Good is better: accuracy {points(out['difference'])} points, 95% interval {points(out['ci95'][0])} to {points(out['ci95'][1])}; decided after {n:,} labels"
    assert out["verdict"] == want, out["verdict"]
    assert out["difference"] > 0 and out["ci95"][0] > 0 and out["always_valid_p"] < 0.05 and out["e_value"] > 20

    # The same model on both variants: no verdict, and an estimate of what it would take.
    same = capture_endpoint(sm, tmp_path, {"A": good, "B": good})
    labelled_traffic(berth, runtime, same, rows, 200, "t")
    out = requests.get(f"{berth.url}/berth/v1/endpoints/{same}/significance", params={"a": "A", "b": "B"}, timeout=10).json()
    assert not out["decided"] and re.match(r"not decided yet: (about [\d,]+ more labels per variant at this effect|no difference observed so far|the difference is not yet sure enough)$", out["verdict"]), out


def test_ground_truth_files_are_read_from_the_tagged_location(own_berth, s3_server, tmp_path):
    import boto3

    from conftest import CREDENTIALS, s3_env

    server = own_berth("--bandit-interval", "1", env=s3_env(s3_server))
    sm, runtime = server.sm(), server.runtime()
    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    s3 = boto3.client("s3", endpoint_url=s3_server, **CREDENTIALS)
    bucket = unique("gt")
    s3.create_bucket(Bucket=bucket)
    model = onnx_model(sm, tmp_path, LogisticRegression(max_iter=5000).fit(X, y), X)
    for location in (f"file://{tmp_path}/ground-truth", f"s3://{bucket}/labels"):
        ep = unique("gt")
        sm.create_endpoint_config(
            EndpointConfigName=ep,
            ProductionVariants=[variant("A", model)],
            DataCaptureConfig={"InitialSamplingPercentage": 100, "DestinationS3Uri": f"file://{tmp_path}/capture", "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]},
        )
        sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep, Tags=[{"Key": "berth:ground-truth", "Value": location}])
        assert wait_status(sm, ep)["EndpointStatus"] == "InService"
        for i, row in enumerate(X[:10]):
            runtime.invoke_endpoint(EndpointName=ep, Body=",".join(repr(float(v)) for v in row), ContentType="text/csv", InferenceId=f"{ep}-{i}")
        lines = "\n".join(
            json.dumps({"groundTruthData": {"data": str(int(y[i])), "encoding": "CSV"}, "eventMetadata": {"inferenceId": f"{ep}-{i}"}, "eventVersion": "0"})
            for i in range(10)
        )
        if location.startswith("file://"):
            target = tmp_path / "ground-truth" / ep / "2026" / "11" / "25" / "10"
            target.mkdir(parents=True)
            # A file still being written when berth first reads it is read again once it grew.
            first, rest = lines.split("\n")[:5], lines.split("\n")[5:]
            (target / "labels.jsonl").write_text("\n".join(first) + "\n")
            assert quality(server, ep, 5)["A"]["n"] == 5
            with open(target / "labels.jsonl", "a") as f:
                f.write("\n".join(rest))
            file_endpoint = ep
        else:
            s3.put_object(Bucket=bucket, Key=f"labels/{ep}/2026/11/25/10/labels.jsonl", Body=lines.encode())
        v = quality(server, ep, 10)
        assert v["A"]["n"] == 10 and v["A"]["unlabelled"] == 0, (location, v)
    # What was read is remembered across a restart: nothing is read twice.
    reads = lambda: server.log_text().count(f"{file_endpoint}/2026/11/25/10/labels.jsonl labels=")  # noqa: E731
    assert reads() == 2, server.log_text()[-3000:]
    server.restart()
    time.sleep(3)  # three rounds of reading ground truth
    assert reads() == 2
    assert quality(server, file_endpoint, 10)["A"]["n"] == 10


def test_an_ab_test_between_two_inference_components(berth, sm, runtime, tmp_path):
    """Two components of one endpoint, each called by name: their answers are captured under
    their names, joined with labels, and the significance test names the better component."""
    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    good = onnx_model(sm, tmp_path, LogisticRegression(max_iter=5000).fit(X[:300], y[:300]), X)
    weak = onnx_model(sm, tmp_path, DecisionTreeClassifier(max_depth=2, random_state=0).fit(X[:300], np.random.default_rng(0).permutation(y[:300])), X)
    ep = unique("ic-ab")
    sm.create_endpoint_config(
        EndpointConfigName=ep, ExecutionRoleArn=ROLE,
        ProductionVariants=[{"VariantName": "AllTraffic", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        DataCaptureConfig={"InitialSamplingPercentage": 100, "DestinationS3Uri": f"file://{tmp_path}/capture", "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]},
    )
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    components = {"weak-" + ep: weak, "good-" + ep: good}
    try:
        for name, model in components.items():
            sm.create_inference_component(
                InferenceComponentName=name, EndpointName=ep, VariantName="AllTraffic", RuntimeConfig={"CopyCount": 1},
                Specification={"ModelName": model, "ComputeResourceRequirements": {"NumberOfCpuCoresRequired": 1, "MinMemoryRequiredInMb": 512}},
            )
        for name in components:
            deadline = time.time() + 60
            while sm.describe_inference_component(InferenceComponentName=name)["InferenceComponentStatus"] != "InService":
                assert time.time() < deadline
                time.sleep(0.1)
        labels = []
        rows = list(zip(X[300:], y[300:]))
        for i in range(800):
            row, truth = rows[i % len(rows)]
            name = list(components)[i % 2]
            runtime.invoke_endpoint(EndpointName=ep, Body=",".join(repr(float(v)) for v in row), ContentType="text/csv",
                                    InferenceId=f"ic{i}", InferenceComponentName=name)
            labels.append({"inference_id": f"ic{i}", "label": int(truth)})
        requests.post(f"{berth.url}/berth/v1/endpoints/{ep}/ground-truth", json={"labels": labels}, timeout=10)
        by_component = quality(berth, ep, 800)
        assert set(by_component) == set(components) and all(v["n"] == 400 for v in by_component.values()), by_component
        weak_name, good_name = list(components)
        out = requests.get(f"{berth.url}/berth/v1/endpoints/{ep}/significance", params={"metric": "accuracy", "a": weak_name, "b": good_name}, timeout=10).json()
        assert out["decided"] and out["winner"] == good_name, out
        assert (tmp_path / "capture" / ep / good_name).is_dir(), "captured under the component's name"
    finally:
        for name in components:
            sm.delete_inference_component(InferenceComponentName=name)
        deadline = time.time() + 30
        while sm.list_inference_components(EndpointNameEquals=ep)["InferenceComponents"] and time.time() < deadline:
            time.sleep(0.2)
        sm.delete_endpoint(EndpointName=ep)
