"""berth's Kubernetes backend (`--backend kubernetes`) against kube_fake.py, a stand-in for the
API server and a node's kubelet that runs each pod's containers as real processes here: real
boto3 calls to a real berth, real pods' processes answering on their own addresses, model data
fetched from the moto S3 server by berth's own init container."""

import glob
import json
import os
import pathlib
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

import boto3
import pytest

from conftest import ROLE, ROOT, BerthServer, berth_binary, error_message, eventually, new_bucket, s3_env, tar_gz, unique, wait_status

ECHO = ROOT / "tests" / "containers" / "echo_container.py"
NAMESPACE = "berth-test"
BERTH_IMAGE = "berth:test"
ECHO_IMAGE = "registry.example/echo:1"


class KubeFake:
    """kube_fake.py on a free port, with a kubeconfig pointing at it; stopped by PID."""

    def __init__(self, directory, images, **node):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "images.json").write_text(json.dumps(images))
        (directory / "secrets.json").write_text(json.dumps({"model-s3": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}}))
        args = [sys.executable, str(pathlib.Path(__file__).parent / "kube_fake.py"), "--images", str(directory / "images.json")]
        args += ["--berth-bin", berth_binary(), "--secrets", str(directory / "secrets.json")]
        for k, v in node.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.log = open(directory / "kube-fake.log", "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("kube-fake listening on "), line
        self.url = line.split()[-1]
        self.kubeconfig = directory / "kubeconfig"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NAMESPACE}}],
                    "current-context": "fake",
                }
            )
        )

    def call(self, method, path, body=None):
        request = urllib.request.Request(self.url + path, method=method, data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.load(r)

    def pods(self, **labels):
        selector = ",".join(f"berth/{k}={v}" for k, v in labels.items())
        listed = self.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={selector}")
        return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def onnxruntime_library():
    try:
        import onnxruntime
    except ImportError:
        return None
    found = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))
    return found[0] if found else None


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    # berth's image carries ONNX Runtime and says where (its Dockerfile's ENV): so does the fake's.
    library = onnxruntime_library()
    berth_image = {"berth": True, "env": {"BERTH_ORT_DYLIB": library}} if library else {"berth": True}
    fake = KubeFake(tmp_path_factory.mktemp("kube"), {BERTH_IMAGE: berth_image, ECHO_IMAGE: {"argv": [sys.executable, str(ECHO)]}})
    fake.call("POST", "/fake/deployment", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "berth", "namespace": NAMESPACE}})
    yield fake
    fake.stop()


def start_berth(directory, kube, s3_server, *extra):
    args = ["--backend", "kubernetes", "--kubernetes-image", BERTH_IMAGE, "--kubernetes-owner", "deployment/berth"]
    args += ["--kubernetes-model-secret", "model-s3", "--startup-timeout", "15", *extra]
    env = {**s3_env(s3_server), "KUBECONFIG": str(kube.kubeconfig)}
    # pip's settings reach the pods that make Python environments: here, this machine's cache.
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or os.path.expanduser("~/.cache/pip")
    # Credentials reach the pods only through the Secret, never from berth's own environment.
    return BerthServer(directory, args, env=env).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory, kube, s3_server):
    data = tmp_path_factory.mktemp("kube-berth") / "data"
    berth = start_berth(data, kube, s3_server)
    yield berth
    berth.stop()


def echo_model(sm, name, image=ECHO_IMAGE, data_url=None, **env):
    container = {"Image": image, "Environment": {"ECHO_NAME": name, **env}}
    if data_url:
        container["ModelDataUrl"] = data_url
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)


def create_endpoint(sm, name, variants, count=1, instance_type="ml.m5.large"):
    specs = [
        {"VariantName": v, "ModelName": m, "InitialInstanceCount": count, "InstanceType": instance_type, "InitialVariantWeight": 1.0}
        for v, m in variants
    ]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=specs)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def delete(sm, name, kube):
    sm.delete_endpoint(EndpointName=name)
    eventually(lambda: not kube.pods(endpoint=name), timeout=30)


def test_two_variants_of_two_instances_are_four_pods_made_as_sagemaker_runs_containers(server, kube, s3_server):
    sm, runtime = server.sm(), server.runtime()
    s3, bucket = new_bucket(s3_server, "kube-models")
    s3.put_object(Bucket=bucket, Key="a/model.tar.gz", Body=tar_gz({"model.txt": b"weights of A"}))
    name = unique("kube-ab")
    echo_model(sm, f"{name}-a", data_url=f"s3://{bucket}/a/model.tar.gz")
    echo_model(sm, f"{name}-b")
    create_endpoint(sm, name, [("A", f"{name}-a"), ("B", f"{name}-b")], count=2)
    d = wait_status(sm, name, timeout=60)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    pods = kube.pods(endpoint=name)
    assert sorted(p["metadata"]["labels"]["berth/variant"] for p in pods) == ["A", "A", "B", "B"]
    owner = kube.call("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/berth")
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "berth" and meta["labels"]["berth/endpoint"] == name
        assert meta["annotations"]["berth/instance"].startswith(f"{name}/{meta['labels']['berth/variant']}/")
        assert meta["ownerReferences"] == [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "berth", "uid": owner["metadata"]["uid"], "controller": False, "blockOwnerDeletion": False}
        ]
        assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
        serve = spec["containers"][0]
        assert (serve["name"], serve["image"], serve["args"]) == ("serve", ECHO_IMAGE, ["serve"])
        assert serve["ports"] == [{"containerPort": 8080, "name": "http"}]
        assert serve["readinessProbe"]["httpGet"] == {"path": "/ping", "port": 8080}
        # ml.m5.large: 2 vCPUs and 8 GiB, asked for and limited to.
        assert serve["resources"] == {"limits": {"cpu": "2", "memory": "8192Mi"}, "requests": {"cpu": "2", "memory": "8192Mi"}}
        env = {e["name"]: e["value"] for e in serve["env"]}
        assert env["ECHO_NAME"].startswith(name) and env["BERTH_INSTANCE_TYPE"] == "ml.m5.large"
        assert serve["securityContext"]["allowPrivilegeEscalation"] is False
        if meta["labels"]["berth/variant"] == "A":
            (fetch,) = spec["initContainers"]
            assert fetch["image"] == BERTH_IMAGE and fetch["args"][:5] == ["fetch-model", "--into", "/opt/ml/model", "--url", f"s3://{bucket}/a/model.tar.gz"]
            assert fetch["envFrom"] == [{"secretRef": {"name": "model-s3"}}]
            assert {e["name"] for e in fetch["env"]} >= {"AWS_ENDPOINT_URL_S3", "AWS_REGION"}
            assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & {e["name"] for e in fetch["env"]}
            assert fetch["securityContext"]["runAsNonRoot"] is True and fetch["securityContext"]["readOnlyRootFilesystem"] is True
            assert serve["volumeMounts"] == [{"name": "model", "mountPath": "/opt/ml/model", "readOnly": True}]
        else:
            assert "initContainers" not in spec and "volumeMounts" not in serve
    # Requests reach the pods at their own addresses; variant A's pods read what the init container fetched.
    answers = {}
    for _ in range(40):
        r = runtime.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")
        answers.setdefault(r["InvokedProductionVariant"], set()).add(json.loads(r["Body"].read())["model_file"])
    assert answers == {"A": {"weights of A"}, "B": {None}}
    delete(sm, name, kube)


def test_an_endpoint_is_in_service_only_once_its_pods_answer_ping(server, kube):
    sm = server.sm()
    name = unique("kube-slow")
    echo_model(sm, name, ECHO_STARTUP_DELAY="3")
    create_endpoint(sm, name, [("V", name)])
    seen_running_unready = False
    deadline = time.time() + 30
    while time.time() < deadline:
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if status != "Creating":
            break
        for pod in kube.pods(endpoint=name):
            ready = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}.get("Ready")
            seen_running_unready |= pod["status"]["phase"] == "Running" and ready == "False"
        time.sleep(0.1)
    assert status == "InService"
    assert seen_running_unready, "the endpoint was never seen Creating while its pod ran unready"
    delete(sm, name, kube)


def failure_of(server, kube, prefix, instance_type="ml.m5.large", image=ECHO_IMAGE, **env):
    """Creates an endpoint of one echo model that cannot serve; returns its FailureReason once it
    is Failed, after its pods are gone (the endpoint is deleted)."""
    sm = server.sm()
    name = unique(prefix)
    echo_model(sm, name, image=image, **env)
    create_endpoint(sm, name, [("V", name)], instance_type=instance_type)
    d = wait_status(sm, name, timeout=60)
    assert d["EndpointStatus"] == "Failed"
    eventually(lambda: not kube.pods(endpoint=name), timeout=20)
    sm.delete_endpoint(EndpointName=name)
    return d["FailureReason"]


def test_a_container_that_exits_at_start_fails_the_endpoint_with_its_exit_and_log(server, kube):
    reason = failure_of(server, kube, "kube-crash", ECHO_EXIT_ON_START="1", ECHO_STDERR="cannot load the weights")
    assert "exited (exit status: 3)" in reason and "cannot load the weights" in reason, reason


def test_an_image_that_cannot_be_pulled_fails_the_endpoint_in_sagemakers_words(server, kube):
    reason = failure_of(server, kube, "kube-pull", image="registry.example/no-such-image:3")
    assert "Failed to pull the image registry.example/no-such-image:3" in reason and ("ErrImagePull" in reason or "ImagePullBackOff" in reason), reason


def test_a_pod_no_node_has_room_for_fails_the_endpoint_as_insufficient_capacity(server, kube):
    # 96 vCPUs: more than the node has.
    reason = failure_of(server, kube, "kube-big", instance_type="ml.m5.24xlarge")
    assert "Unable to provision requested ML compute capacity" in reason and "Insufficient cpu" in reason, reason


def test_scaling_changes_the_pod_count_and_deleting_the_endpoint_leaves_no_pod(server, kube):
    sm = server.sm()
    name = unique("kube-scale")
    echo_model(sm, name)
    create_endpoint(sm, name, [("V", name)])
    assert wait_status(sm, name)["EndpointStatus"] == "InService"
    sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "V", "DesiredInstanceCount": 3}])
    assert wait_status(sm, name, want="InService", timeout=60)["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    eventually(lambda: len(kube.pods(endpoint=name)) == 3)
    sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "V", "DesiredInstanceCount": 1}])
    assert wait_status(sm, name, want="InService", timeout=60)["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    eventually(lambda: len(kube.pods(endpoint=name)) == 1, timeout=30)
    delete(sm, name, kube)


def test_an_evicted_pod_is_replaced_and_the_endpoint_keeps_serving(server, kube):
    sm, runtime = server.sm(), server.runtime()
    name = unique("kube-evict")
    echo_model(sm, name)
    create_endpoint(sm, name, [("V", name)])
    assert wait_status(sm, name)["EndpointStatus"] == "InService"
    (first,) = kube.pods(endpoint=name)
    kube.call("POST", f"/fake/evict/{NAMESPACE}/{first['metadata']['name']}")

    def replaced():
        pods = kube.pods(endpoint=name)
        return len(pods) == 1 and pods[0]["metadata"]["name"] != first["metadata"]["name"] and pods[0]["status"]["phase"] == "Running"

    eventually(replaced, timeout=30)
    eventually(lambda: runtime.invoke_endpoint(EndpointName=name, Body=b"{}")["ResponseMetadata"]["HTTPStatusCode"] == 200, timeout=15)
    assert "its pod Evicted: The node was low on resource: memory" in server.log_text(), "berth's log says nothing of the eviction"
    delete(sm, name, kube)


def test_a_watch_whose_version_expired_is_listed_again(server, kube):
    sm = server.sm()
    kube.call("POST", "/fake/expire")
    before = len(kube.call("GET", "/fake/requests"))
    name = unique("kube-relist")
    echo_model(sm, name)
    create_endpoint(sm, name, [("V", name)])
    d = wait_status(sm, name, timeout=60)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    after = kube.call("GET", "/fake/requests")[before:]
    assert f"GET /api/v1/namespaces/{NAMESPACE}/pods" in after, "berth did not list the pods again after its watch expired"
    delete(sm, name, kube)


@pytest.mark.parametrize("signal_", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_restarted_berth_adopts_its_running_pods_by_label(tmp_path, kube, s3_server, signal_):
    berth = start_berth(tmp_path / "data", kube, s3_server)
    try:
        sm = berth.sm()
        name = unique("kube-adopt")
        echo_model(sm, name)
        create_endpoint(sm, name, [("V", name)], count=2)
        assert wait_status(sm, name)["EndpointStatus"] == "InService"
        before = sorted(p["metadata"]["name"] for p in kube.pods(endpoint=name))
        berth.restart(signal_)
        sm, runtime = berth.sm(), berth.runtime()
        assert wait_status(sm, name, timeout=60)["EndpointStatus"] == "InService"
        answered = {json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"{}")["Body"].read())["pid"] for _ in range(20)}
        assert len(answered) == 2
        # The same pods serve: none was made or deleted.
        assert sorted(p["metadata"]["name"] for p in kube.pods(endpoint=name)) == before
        delete(sm, name, kube)
    finally:
        berth.stop(signal.SIGKILL)


def test_a_berth_onnx_model_runs_in_berths_own_image(server, kube, s3_server):
    if not onnxruntime_library():
        pytest.skip("onnxruntime's library is installed by the test command")
    sm, runtime = server.sm(), server.runtime()
    s3, bucket = new_bucket(s3_server, "kube-onnx")
    s3.put_object(Bucket=bucket, Key="iris/model.onnx", Body=(ROOT / "crates" / "berth" / "demo" / "iris-logistic.onnx").read_bytes())
    name = unique("kube-onnx")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"s3://{bucket}/iris/model.onnx"}, ExecutionRoleArn=ROLE)
    create_endpoint(sm, name, [("V", name)])
    d = wait_status(sm, name, timeout=60)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    (pod,) = kube.pods(endpoint=name)
    serve = pod["spec"]["containers"][0]
    assert (serve["image"], serve["args"]) == (BERTH_IMAGE, ["worker", "onnx", "serve"])
    assert serve["securityContext"]["runAsUser"] == 10001 and serve["securityContext"]["runAsNonRoot"] is True
    r = runtime.invoke_endpoint(EndpointName=name, Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
    assert r["Body"].read().strip()
    delete(sm, name, kube)


HANDLER = """
import numpy as np
import tabulate  # from the model's requirements.txt: the environment has it

class Scaler:
    def predict(self, rows):
        return np.asarray(rows) * FACTOR

def model_fn(model_dir):
    return Scaler()
"""


def test_berth_python_runs_in_berths_image_with_its_environment_made_in_the_pod(server, kube, s3_server):
    """berth/python as pods: variant A's handler and requirements.txt in the model archive's
    code/, variant B's handler in a source directory on S3 (SAGEMAKER_SUBMIT_DIRECTORY); each pod
    makes its Python environment with `berth prepare-python` in an init container. A
    requirements.txt with a pip option fails the endpoint with why, before pip runs."""
    sm, runtime = server.sm(), server.runtime()
    s3, bucket = new_bucket(s3_server, "kube-python")
    handler = lambda factor: HANDLER.replace("FACTOR", str(factor)).encode()  # noqa: E731
    s3.put_object(Bucket=bucket, Key="a/model.tar.gz", Body=tar_gz({"code/inference.py": handler(2), "code/requirements.txt": b"tabulate==0.9.0\n"}))
    s3.put_object(Bucket=bucket, Key="b/sourcedir.tar.gz", Body=tar_gz({"inference.py": handler(3), "requirements.txt": b"tabulate==0.9.0\n"}))
    name = unique("kube-python")
    program = {"SAGEMAKER_PROGRAM": "inference.py"}
    sm.create_model(
        ModelName=f"{name}-a",
        PrimaryContainer={"Image": "berth/python", "ModelDataUrl": f"s3://{bucket}/a/model.tar.gz", "Environment": program},
        ExecutionRoleArn=ROLE,
    )
    submitted = {**program, "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{bucket}/b/sourcedir.tar.gz"}
    sm.create_model(ModelName=f"{name}-b", PrimaryContainer={"Image": "berth/python", "Environment": submitted}, ExecutionRoleArn=ROLE)
    # pip runs in the pod before /ping can pass: it counts against the startup timeout, as on SageMaker.
    variants = [
        {"VariantName": v, "ModelName": f"{name}-{v.lower()}", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "ContainerStartupHealthCheckTimeoutInSeconds": 300}
        for v in ("A", "B")
    ]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = wait_status(sm, name, timeout=360)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    pods = {p["metadata"]["labels"]["berth/variant"]: p["spec"] for p in kube.pods(endpoint=name)}
    assert [c["name"] for c in pods["A"]["initContainers"]] == ["model-data", "python-environment"]
    assert [c["name"] for c in pods["B"]["initContainers"]] == ["source-code", "python-environment"]
    for spec in pods.values():
        serve = spec["containers"][0]
        assert (serve["image"], serve["args"]) == (BERTH_IMAGE, ["worker", "python", "serve"])
        assert serve["securityContext"]["runAsUser"] == 10001
    for variant, factor in (("A", 2), ("B", 3)):
        r = runtime.invoke_endpoint(EndpointName=name, TargetVariant=variant, Body=b"1,2,3", ContentType="text/csv", Accept="application/json")
        assert json.loads(r["Body"].read()) == [[factor * 1.0, factor * 2.0, factor * 3.0]], variant
    delete(sm, name, kube)

    s3.put_object(Bucket=bucket, Key="c/model.tar.gz", Body=tar_gz({"code/inference.py": handler(1), "code/requirements.txt": b"--index-url http://127.0.0.1:9/simple\nnumpy\n"}))
    hostile = unique("kube-python-pip")
    sm.create_model(
        ModelName=hostile,
        PrimaryContainer={"Image": "berth/python", "ModelDataUrl": f"s3://{bucket}/c/model.tar.gz", "Environment": program},
        ExecutionRoleArn=ROLE,
    )
    create_endpoint(sm, hostile, [("V", hostile)])
    d = wait_status(sm, hostile, timeout=60)
    reason = d.get("FailureReason", "")
    assert d["EndpointStatus"] == "Failed", d
    assert "Could not prepare the Python environment in the instance's pod (python-environment exited with status 1)" in reason, reason
    assert "is not a package requirement" in reason, reason
    delete(sm, hostile, kube)


def test_a_multi_model_endpoint_loads_models_through_its_pods_own_loader(server, kube, s3_server):
    """Mode MultiModel as pods: the pod's model-loader sidecar fetches each TargetModel from the
    variant's prefix into the volume the container sees at /opt/ml/models, then berth loads it
    into the container (POST /models). The loader takes only model names and keys under its
    prefix."""
    sm, runtime = server.sm(), server.runtime()
    s3, bucket = new_bucket(s3_server, "kube-mme")
    for key in ("one", "two"):
        s3.put_object(Bucket=bucket, Key=f"mme/{key}.tar.gz", Body=tar_gz({"model.txt": f"weights {key}".encode()}))
    name = unique("kube-mme")
    container = {"Image": ECHO_IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{bucket}/mme/", "Environment": {"ECHO_NAME": name}}
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
    create_endpoint(sm, name, [("V", name)])
    d = wait_status(sm, name, timeout=60)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    (pod,) = kube.pods(endpoint=name)
    serve, loader = pod["spec"]["containers"]
    assert {"name": "models", "mountPath": "/opt/ml/models", "readOnly": True} in serve["volumeMounts"]
    assert (loader["name"], loader["image"], loader["args"][:5]) == ("model-loader", BERTH_IMAGE, ["model-loader", "--into", "/opt/ml/models", "--prefix", f"s3://{bucket}/mme/"])
    assert loader["envFrom"][0]["secretRef"]["name"] == "model-s3"
    for key in ("one", "two", "one"):
        r = runtime.invoke_endpoint(EndpointName=name, TargetModel=f"{key}.tar.gz", Body=b"hi", ContentType="text/plain")
        assert f"weights {key}" in r["Body"].read().decode(), key
    with pytest.raises(Exception) as e:
        runtime.invoke_endpoint(EndpointName=name, TargetModel="missing.tar.gz", Body=b"hi", ContentType="text/plain")
    assert "Failed to download model data for TargetModel missing.tar.gz" in str(e.value), e.value

    loader_url = f"http://{pod['status']['podIP']}:8081/models"
    for hostile in ({"model_name": "../escape", "target": "one.tar.gz"}, {"model_name": "x", "target": "/etc/passwd"}, {"model_name": "x"}):
        request = urllib.request.Request(loader_url, data=json.dumps(hostile).encode(), method="POST", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400, hostile
    delete(sm, name, kube)


def test_models_the_backend_cannot_run_as_pods_fail_with_why(server, kube):
    sm = server.sm()
    name = unique("kube-exec")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": f"exec:{ECHO}"}, ExecutionRoleArn=ROLE)
    create_endpoint(sm, name, [("V", name)])
    d = wait_status(sm, name, timeout=30)
    assert d["EndpointStatus"] == "Failed" and "runs container images only" in d["FailureReason"], d.get("FailureReason")
    assert not kube.pods(endpoint=name)
    sm.delete_endpoint(EndpointName=name)


def test_fetch_model_refuses_an_archive_that_reaches_outside_its_directory(tmp_path, s3_server):
    s3, bucket = new_bucket(s3_server, "kube-hostile")
    s3.put_object(Bucket=bucket, Key="evil.tar.gz", Body=tar_gz({"../escaped.txt": b"out", "model.txt": b"in"}))
    into = tmp_path / "model"
    env = {**os.environ, **s3_env(s3_server)}
    done = subprocess.run([berth_binary(), "fetch-model", "--into", str(into), "--url", f"s3://{bucket}/evil.tar.gz"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "could not fetch the model data" in done.stderr, done.stderr
    assert not (tmp_path / "escaped.txt").exists()
    refused = subprocess.run([berth_binary(), "fetch-model", "--into", str(tmp_path / "m2"), "--url", "file:///etc"], env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "file://" in refused.stderr, refused.stderr


def test_berth_refuses_to_start_with_an_owner_it_cannot_read(tmp_path, kube, s3_server):
    for owner, words in (("deployment/absent", "cannot read berth's Deployment absent"), ("statefulset/berth", "takes deployment/NAME")):
        server = BerthServer(tmp_path / owner.replace("/", "-"), ["--backend", "kubernetes", "--kubernetes-owner", owner], env={"KUBECONFIG": str(kube.kubeconfig)})
        with pytest.raises(RuntimeError):
            server.start()
        assert words in server.log_text(), server.log_text()[-2000:]


def test_the_manifests_set_only_variables_berth_reads():
    import yaml

    deployment = next(
        d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text()) if d and d["kind"] == "Deployment"
    )
    names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"].startswith("BERTH_")}
    help_text = subprocess.run([berth_binary(), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    unknown = sorted(n for n in names if f"[env: {n}=" not in help_text)
    assert not unknown, f"the Deployment sets variables berth does not read: {unknown}"


def test_when_the_leading_berth_dies_the_next_adopts_its_pods_and_no_invocation_fails(tmp_path, kube, s3_server, store):
    """Two berths on one PostgreSQL store, as the Deployment runs them: the standby routes to the
    pods' own addresses itself; after kill -9 of the leader it leads, adopts the same pods, and
    no invocation sent through it fails meanwhile."""
    import threading

    from test_cluster import leader_of, scrape

    servers = [start_berth(tmp_path / name / "data", kube, s3_server, "--store", store, "--node-name", name) for name in ("k1", "k2")]
    k1, k2 = servers
    stop = threading.Event()
    results = {"ok": 0, "failed": []}
    try:
        assert leader_of(store)[0] == "k1"
        sm = k1.sm()
        name = unique("kube-failover")
        echo_model(sm, name)
        create_endpoint(sm, name, [("V", name)], count=2)
        assert wait_status(sm, name, timeout=60)["EndpointStatus"] == "InService"
        before = sorted(p["metadata"]["name"] for p in kube.pods(endpoint=name))
        runtime = k2.runtime()
        # The standby routes to the pods itself (their addresses are reachable from every server).
        assert eventually(lambda: f'berth_variant_weight{{node="k2",endpoint="{name}"' in scrape(k2), 10), "the standby routes it"
        eventually(lambda: runtime.invoke_endpoint(EndpointName=name, Body=b"x")["ResponseMetadata"]["HTTPStatusCode"] == 200)

        def traffic():
            while not stop.is_set():
                try:
                    runtime.invoke_endpoint(EndpointName=name, Body=b"x", ContentType="text/plain")
                    results["ok"] += 1
                except Exception as e:  # noqa: BLE001 — every failure is counted and shown
                    results["failed"].append(str(e))
                time.sleep(0.01)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        time.sleep(1)
        k1.stop(signal.SIGKILL)
        assert leader_of(store, not_="k1")[0] == "k2"
        assert wait_status(k2.sm(), name, want="InService", timeout=60)["EndpointStatus"] == "InService"
        time.sleep(2)
        stop.set()
        thread.join(timeout=30)
        assert results["failed"] == [], results["failed"][:5]
        assert results["ok"] > 50
        assert sorted(p["metadata"]["name"] for p in kube.pods(endpoint=name)) == before, "the new leader serves with the same pods"
        assert "adopting the running pod" in k2.log_text()
        delete(k2.sm(), name, kube)
    finally:
        stop.set()
        for s in servers:
            s.stop(signal.SIGKILL)
