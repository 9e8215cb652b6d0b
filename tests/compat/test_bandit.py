"""Bandit routing and automatic promotion, switched on by endpoint tags: Thompson sampling on
accuracy from ground truth moves most traffic to the better of two berth/onnx classifiers while
keeping the exploration floor, visible in DescribeEndpoint; auto-promotion moves all traffic to
the winner once the always-valid test decides, and records why. berth runs with
--bandit-interval 1."""

import signal
import time

import numpy as np
import pytest
import requests

from conftest import ROLE, unique, variant, wait_status

pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402

X, Y = load_breast_cancer(return_X_y=True)
X = X.astype(np.float32)


def onnx_model(sm, tmp_path, model):
    name = unique("b")
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString())
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{path}"}, ExecutionRoleArn=ROLE)
    return name


def endpoint(server, tmp_path, tags):
    sm = server.sm()
    good = onnx_model(sm, tmp_path, LogisticRegression(max_iter=5000).fit(X[:300], Y[:300]))
    weak = onnx_model(sm, tmp_path, DecisionTreeClassifier(max_depth=2, random_state=0).fit(X[:300], np.random.default_rng(0).permutation(Y[:300])))
    ep = unique("bandit")
    sm.create_endpoint_config(
        EndpointConfigName=ep,
        ProductionVariants=[variant("Weak", weak), variant("Good", good)],
        DataCaptureConfig={"InitialSamplingPercentage": 100, "DestinationS3Uri": f"file://{tmp_path}/capture", "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]},
    )
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    return ep


def traffic_round(server, ep, start, n=60):
    runtime = server.runtime()
    labels = []
    for i in range(start, start + n):
        row, truth = X[300 + i % 269], Y[300 + i % 269]
        runtime.invoke_endpoint(EndpointName=ep, Body=",".join(repr(float(v)) for v in row), ContentType="text/csv", InferenceId=f"i{i}")
        labels.append({"inference_id": f"i{i}", "label": int(truth)})
    time.sleep(1.2)  # the capture writer indexes answers once a second
    r = requests.post(f"{server.url}/berth/v1/endpoints/{ep}/ground-truth", json={"labels": labels}, timeout=10)
    assert r.status_code == 200


def weights(sm, ep):
    return {v["VariantName"]: v["CurrentWeight"] for v in sm.describe_endpoint(EndpointName=ep)["ProductionVariants"]}


def test_thompson_sampling_moves_traffic_to_the_better_variant(own_berth, tmp_path):
    server = own_berth("--bandit-interval", "1")
    sm = server.sm()
    ep = endpoint(server, tmp_path, {"berth:routing": "thompson", "berth:reward": "accuracy", "berth:exploration": "0.05"})
    for r in range(8):
        traffic_round(server, ep, r * 60)
        time.sleep(1.2)
    w = weights(sm, ep)
    share = w["Good"] / (w["Good"] + w["Weak"])
    assert share > 0.85, w
    assert w["Weak"] / (w["Good"] + w["Weak"]) >= 0.049, "the exploration floor holds"


def test_auto_promotion_moves_all_traffic_to_the_winner(own_berth, tmp_path):
    server = own_berth("--bandit-interval", "1")
    sm = server.sm()
    ep = endpoint(server, tmp_path, {"berth:auto-promote": "true"})
    deadline = time.time() + 60
    start = 0
    while weights(sm, ep)["Weak"] > 0:
        assert time.time() < deadline, weights(sm, ep)
        traffic_round(server, ep, start)
        start += 60
        time.sleep(1.2)
    assert weights(sm, ep)["Good"] > 0
    events = requests.get(f"{server.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]
    promoted = [e for e in events if e["message"].startswith("Automatic promotion: all traffic to Good.")]
    assert promoted and "Good is better: accuracy +" in promoted[0]["message"]
    steps = [e for e in events if e["message"].startswith("Automatic promotion:") and "% of traffic to Good" in e["message"]]
    assert steps, "traffic moves in steps before all of it does"
    # What the dashboard shows: per-variant accuracy and the decided test.
    overview = requests.get(f"{server.url}/berth/v1/overview", timeout=10).json()
    (shown,) = [e for e in overview["endpoints"] if e["name"] == ep]
    assert shown["quality"]["test"]["winner"] == "Good"
    assert shown["quality"]["variants"]["Good"]["accuracy"] > shown["quality"]["variants"]["Weak"]["accuracy"]


def test_quality_is_published_as_metrics_and_windowed(own_berth, tmp_path):
    import datetime

    server = own_berth("--bandit-interval", "1")
    ep = endpoint(server, tmp_path, {})
    before = int(time.time())
    traffic_round(server, ep, 0, n=80)
    quality = requests.get(f"{server.url}/berth/v1/endpoints/{ep}/quality", timeout=10).json()
    per_variant = {v["variant"]: v for v in quality["variants"]}
    assert sum(v["n"] for v in per_variant.values()) == 80
    # A window that ends before the traffic holds nothing.
    empty = requests.get(f"{server.url}/berth/v1/endpoints/{ep}/quality", params={"to": before - 1}, timeout=10).json()
    assert empty["variants"] == []

    cw = server.client("cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc)
    deadline = time.time() + 15
    while True:
        stats = {}
        for name in ("Good", "Weak"):
            points = cw.get_metric_statistics(
                Namespace="berth/ModelQuality", MetricName="Accuracy",
                Dimensions=[{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": name}],
                StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=5), Period=600, Statistics=["Average", "SampleCount"],
            )["Datapoints"]
            stats[name] = points[0] if points else None
        if all(stats.values()) and sum(s["SampleCount"] for s in stats.values()) == 80:
            break
        assert time.time() < deadline, stats
        time.sleep(0.5)
    for name, s in stats.items():
        assert s["SampleCount"] == per_variant[name]["n"]
        assert abs(s["Average"] - per_variant[name]["accuracy"]["value"]) < 1e-9
    assert stats["Good"]["Average"] > stats["Weak"]["Average"]

    # Published once: after a kill -9 and a few more rounds, no label is counted again.
    server.restart(signal.SIGKILL)
    wait_status(server.sm(), ep, "InService")
    time.sleep(4)
    cw = server.client("cloudwatch")
    for name in ("Good", "Weak"):
        (point,) = cw.get_metric_statistics(
            Namespace="berth/ModelQuality", MetricName="Accuracy",
            Dimensions=[{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": name}],
            StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=5), Period=600, Statistics=["SampleCount"],
        )["Datapoints"]
        assert point["SampleCount"] == per_variant[name]["n"], (name, point)


def test_latency_reward_favours_the_faster_variant(own_berth):
    from conftest import deploy

    server = own_berth("--bandit-interval", "1")
    sm = server.sm()
    ep = deploy(sm, ["Slow", "Fast"], variant_env={"Slow": {"ECHO_DELAY_MS": "40"}})
    arn = sm.describe_endpoint(EndpointName=ep)["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[
        {"Key": "berth:routing", "Value": "thompson"}, {"Key": "berth:reward", "Value": "latency"},
        {"Key": "berth:latency-target-ms", "Value": "25"},
    ])
    runtime = server.runtime()
    deadline = time.time() + 40
    while True:
        for _ in range(40):
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
        w = weights(sm, ep)
        if w["Fast"] / (w["Fast"] + w["Slow"]) > 0.85:
            break
        assert time.time() < deadline, w
        time.sleep(1.1)
    assert w["Slow"] / (w["Fast"] + w["Slow"]) >= 0.049
