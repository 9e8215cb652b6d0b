"""berth's container image (deploy/Dockerfile, built by scripts/build-image.sh): the demo answers
through the container, run as berth's non-root user with no network at all (`--network none`;
the test reaches the container's own loopback from inside its network namespace, never through a
bridge address)."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

IMAGE = os.environ.get("BERTH_TEST_IMAGE", "berth:test")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def image():
    if not shutil.which("docker") or docker("version", check=False).returncode != 0:
        pytest.skip("no Docker engine: the test command starts one")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip(f"no image {IMAGE}: the test command builds it (scripts/build-image.sh --debug {IMAGE})")
    return IMAGE


@pytest.fixture
def container(image):
    names = []

    def run(*args):
        name = f"berth-image-test-{uuid.uuid4().hex[:8]}"
        names.append(name)
        docker("run", "-d", "--network", "none", "--name", name, image, *args)
        return name

    yield run
    for name in names:
        docker("rm", "-f", name, check=False)


def logs(name):
    done = docker("logs", name, check=False)
    return done.stdout + done.stderr


def in_container_network(name, code, **env):
    """Runs Python `code` (this suite's interpreter, with boto3) inside the container's network namespace."""
    pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    return subprocess.run(
        ["nsenter", "-t", pid, "-n", sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_the_demo_answers_through_the_container_as_a_non_root_user_with_no_network(container):
    name = container("serve", "--demo", "--demo-traffic", "off")
    deadline = time.time() + 60
    while "AWS_SECRET_ACCESS_KEY=" not in logs(name):
        assert time.time() < deadline, logs(name)[-3000:]
        assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true", logs(name)[-3000:]
        time.sleep(0.2)
    text = logs(name)
    key_id, secret = re.search(r"AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)", text).groups()
    assert "berth listening on http://0.0.0.0:8080" in text
    call = """
import boto3, json, urllib.request, urllib.error
args = dict(endpoint_url="http://127.0.0.1:8080", region_name="us-east-1")
sm = boto3.client("sagemaker", **args)
rt = boto3.client("sagemaker-runtime", **args)
status = sm.describe_endpoint(EndpointName="demo")["EndpointStatus"]
r = rt.invoke_endpoint(EndpointName="demo", ContentType="text/csv", Body="5.1,3.5,1.4,0.2")
try:
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:8080/endpoints/demo/invocations", data=b"5.1,3.5,1.4,0.2", headers={"Content-Type": "text/csv"}))
    unsigned = 200
except urllib.error.HTTPError as e:
    unsigned = e.code
print(json.dumps({"status": status, "variant": r["InvokedProductionVariant"], "body": r["Body"].read().decode(), "unsigned": unsigned}))
"""
    done = in_container_network(name, call, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["status"] == "InService" and answer["variant"] in ("Variant1", "Variant2")
    assert answer["body"].strip(), answer
    # Signatures are checked: a request without one is refused.
    assert answer["unsigned"] == 403
    # berth and its workers run as berth's user, not root.
    pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    uids = pathlib.Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^Uid:\s+10001\s", uids, re.M), uids
    assert docker("inspect", "-f", "{{.Config.User}}", name).stdout.strip() == "10001:10001"


def test_berth_in_the_image_refuses_to_serve_unauthenticated_without_an_explicit_opt_out(container):
    name = container("serve")
    docker("wait", name)
    text = logs(name)
    assert "refusing to serve 0.0.0.0:8080 without authentication" in text and "--allow-unauthenticated" in text, text[-2000:]


def test_the_python_runtime_makes_environments_in_the_image_as_a_pod_runs_it(image):
    """As the Kubernetes backend's python-environment init container runs: berth's user, a
    read-only root file system, /tmp and the environments' directory writable, no network. The
    image's Python makes a virtual environment with pip (`berth prepare-python` does so first),
    and berth's runtime asks for what it needs without a registry (here none: it fails saying so)."""
    run = ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/opt/berth/python:uid=10001"]
    run += ["-e", "PIP_RETRIES=0"]
    venv = subprocess.run(
        [*run, "--entrypoint", "sh", image, "-c", "python3 -m venv /opt/berth/python/v && /opt/berth/python/v/bin/python -m pip --version"],
        capture_output=True, text=True, timeout=120,
    )
    assert venv.returncode == 0 and venv.stdout.startswith("pip "), venv.stdout + venv.stderr
    prepare = subprocess.run(
        [*run, image, "prepare-python", "--environments", "/opt/berth/python", "--image", "berth/python", "--link", "/opt/berth/python/current"],
        capture_output=True, text=True, timeout=120,
    )
    assert prepare.returncode != 0 and "pip install failed" in prepare.stderr, prepare.stderr[-2000:]
