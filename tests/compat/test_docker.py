"""Container images as Docker containers: boto3 against a real berth driving the machine's Docker
engine. The images are built locally (`tests/containers/build_image.py`: this machine's Python
and the echo container, `docker import`ed under ECR-style names), since no registry is reachable.
Every container serves on its own port 8080; berth reaches each on its own loopback."""

import json
import signal
import subprocess
import sys
import time

import pytest
import requests

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "containers"))
from build_image import build  # noqa: E402

from conftest import ROLE, Load, berth_binary, model_dir, unique, wait_status  # noqa: E402

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
GIB = 1024**3


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def images():
    """Two images of the echo container (different tags, so different digests)."""
    try:
        docker("version")
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"these tests need a running Docker engine (scripts/test.sh starts dockerd): {e}")
    return build(f"{REGISTRY}/echo-model:1"), build(f"{REGISTRY}/echo-model:2")


def containers(endpoint, running_only=False):
    """`docker inspect` of every container berth made for `endpoint`."""
    ids = docker("ps", *([] if running_only else ["-a"]), "-q", "--filter", f"label=berth.endpoint={endpoint}").split()
    if not ids:
        return []
    # A container removed between the two commands is left out (inspect prints the others).
    inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True).stdout
    return json.loads(inspected or "[]")


def image_model(sm, name, image, tmp_path, env=None, **extra):
    data = model_dir(tmp_path, f"files of {name}")
    container = {"Image": image, "ModelDataUrl": f"file://{data}", "Environment": {"ECHO_NAME": name, **(env or {})}}
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE, **extra)
    return name


def endpoint_of(sm, name, variants, **config):
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants, **config)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait_status(sm, name)


def events(server, endpoint):
    return requests.get(f"{server.url}/berth/v1/events", params={"endpoint": endpoint}, timeout=10).json()["events"]


def wait_for(check, what, timeout=30):
    deadline = time.time() + timeout
    while not (result := check()):
        assert time.time() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.1)
    return result


def test_two_image_variants_on_port_8080_split_by_weight(berth, images, tmp_path):
    sm, runtime = berth.sm(), berth.runtime()
    ep = unique("img")
    a = image_model(sm, f"{ep}-a", images[0], tmp_path)
    b = image_model(sm, f"{ep}-b", images[1], tmp_path)
    d = endpoint_of(
        sm,
        ep,
        [
            {"VariantName": "A", "ModelName": a, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1},
            {"VariantName": "B", "ModelName": b, "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium", "InitialVariantWeight": 1},
        ],
    )
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    for v, image in zip(sorted(d["ProductionVariants"], key=lambda v: v["VariantName"]), images):
        (deployed,) = v["DeployedImages"]
        image_id = json.loads(docker("image", "inspect", image))[0]["Id"]
        assert deployed["SpecifiedImage"] == image
        assert deployed["ResolvedImage"] == f"{image.rsplit(':', 1)[0]}@{image_id}", deployed

    running = containers(ep, running_only=True)
    assert sorted(c["Config"]["Labels"]["berth.variant"] for c in running) == ["A", "A", "B"]
    cores = len(__import__("os").sched_getaffinity(0))
    for c in running:
        # berth's sizes: ml.m5.large 2 vCPUs and 8 GiB, ml.t2.medium 1 counted vCPU and 4 GiB.
        memory, vcpus = {"A": (8 * GIB, 2), "B": (4 * GIB, 1)}[c["Config"]["Labels"]["berth.variant"]]
        assert c["HostConfig"]["Memory"] == memory, c["HostConfig"]
        assert c["HostConfig"]["NanoCpus"] == min(vcpus, cores) * 10**9
        assert c["Config"]["Cmd"] == ["serve"]
        assert c["HostConfig"]["NetworkMode"] != "none"
        assert c["HostConfig"]["PidsLimit"] == 8192
        assert "no-new-privileges" in c["HostConfig"]["SecurityOpt"] and not c["HostConfig"]["Privileged"]
        mount = next(m for m in c["Mounts"] if m["Destination"] == "/opt/ml/model")
        assert mount["RW"] is False

    answers = [json.loads(runtime.invoke_endpoint(EndpointName=ep, Body=b"x")["Body"].read()) for _ in range(120)]
    by_name = {n: sum(1 for x in answers if x["name"] == n) for n in (a, b)}
    assert min(by_name.values()) > 30, by_name
    for x in answers:
        assert x["model_file"] == f"files of {x['name']}", x  # read from /opt/ml/model inside
        assert x["pid"] == 1, x  # the server is the container's own first process
        assert "BERTH_DATA_DIR" not in x["environment"]

    targeted = runtime.invoke_endpoint(EndpointName=ep, Body=b"x", TargetVariant="B")
    assert targeted["InvokedProductionVariant"] == "B" and json.loads(targeted["Body"].read())["name"] == b

    sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 0}])
    wait_status(sm, ep, "InService")
    answers = [json.loads(runtime.invoke_endpoint(EndpointName=ep, Body=b"x")["Body"].read())["name"] for _ in range(30)]
    assert set(answers) == {b}

    sm.delete_endpoint(EndpointName=ep)
    wait_for(lambda: not containers(ep), "containers removed after DeleteEndpoint")


def test_update_to_another_image_fails_no_request(berth, images, tmp_path):
    sm = berth.sm()
    ep = unique("imgup")
    old = image_model(sm, f"{ep}-old", images[0], tmp_path)
    new = image_model(sm, f"{ep}-new", images[1], tmp_path)
    d = endpoint_of(sm, ep, [{"VariantName": "V", "ModelName": old, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}])
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    old_ids = {c["Id"] for c in containers(ep)}
    sm.create_endpoint_config(
        EndpointConfigName=f"{ep}-2", ProductionVariants=[{"VariantName": "V", "ModelName": new, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}]
    )
    with Load(berth, ep, seconds=60) as load:
        load.wait_for(20)
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=f"{ep}-2")
        assert wait_status(sm, ep, ("InService", "Failed"))["EndpointStatus"] == "InService"
        updated = time.time()
        time.sleep(0.3)
        load.wait_for(load.sent + 20)
    assert load.failures == [], load.failures[:3]
    assert {json.loads(body)["name"] for _, _, body in load.answers} == {old, new}
    assert load.share(new, updated + 0.2, time.time())[0] == 1.0
    (v,) = sm.describe_endpoint(EndpointName=ep)["ProductionVariants"]
    assert v["DeployedImages"][0]["SpecifiedImage"] == images[1]
    current = wait_for(lambda: (c := containers(ep)) and len(c) == 2 and c, "two containers of the new image")
    assert not old_ids & {c["Id"] for c in current}
    assert {c["Config"]["Image"] for c in current} == {images[1]}


def test_an_exiting_container_is_restarted_and_an_isolated_one_has_no_network(berth, images, tmp_path):
    sm, runtime = berth.sm(), berth.runtime()
    ep = unique("imgcrash")
    m = image_model(sm, ep, images[0], tmp_path, EnableNetworkIsolation=True)
    d = endpoint_of(sm, ep, [{"VariantName": "V", "ModelName": m, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    (c,) = containers(ep)
    assert c["HostConfig"]["NetworkMode"] == "none"
    with pytest.raises(Exception):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"crash")
    kinds = wait_for(lambda: "InstanceRestarted" in (k := [e["kind"] for e in events(berth, ep)]) and k, "restart event")
    assert "InstanceCrashed" in kinds
    crash = next(e for e in events(berth, ep) if e["kind"] == "InstanceCrashed")
    assert "exit status" in crash["message"], crash
    assert json.loads(runtime.invoke_endpoint(EndpointName=ep, Body=b"after")["Body"].read())["name"] == m
    (again,) = containers(ep)
    assert again["RestartCount"] == 0 and again["Id"] == c["Id"], "berth restarts the same container itself"
    log = subprocess.run([berth_binary(), "logs", ep, "--url", berth.url], capture_output=True, text=True, check=True).stdout
    assert "attempt 2" in log and log.count("listening on 8080") == 2, log[-800:]


def test_a_container_outgrowing_its_memory_is_named_oom_killed(berth, images, tmp_path):
    sm, runtime = berth.sm(), berth.runtime()
    ep = unique("imgoom")
    m = image_model(sm, ep, images[0], tmp_path)
    # A serverless variant: its cold start starts a container, limited to its memory size.
    config = {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    d = endpoint_of(sm, ep, [{"VariantName": "V", "ModelName": m, "ServerlessConfig": config}])
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    assert containers(ep) == []
    assert runtime.invoke_endpoint(EndpointName=ep, Body=b"grow:100")["ResponseMetadata"]["HTTPStatusCode"] == 200
    (c,) = containers(ep)
    assert c["HostConfig"]["Memory"] == 1024 * 1024 * 1024
    with pytest.raises(Exception):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"grow:1100")
    wait_for(lambda: any(e["kind"] == "InstanceCrashed" for e in events(berth, ep)), "crash event")
    crash = next(e for e in events(berth, ep) if e["kind"] == "InstanceCrashed")
    assert "killed by the kernel for going past its memory limit of 1024 MiB (serverless-1024mb)" in crash["message"], crash


def test_a_missing_image_fails_the_endpoint_with_how_to_provide_it(berth, images, tmp_path):
    sm = berth.sm()
    ep = unique("imgmiss")
    image = f"{REGISTRY}/not-built-here:{ep}"
    m = image_model(sm, ep, image, tmp_path)  # accepted: images are checked when an endpoint starts
    d = endpoint_of(sm, ep, [{"VariantName": "V", "ModelName": m, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    assert d["EndpointStatus"] == "Failed"
    assert f"Image {image} is not on this machine's Docker engine" in d["FailureReason"], d["FailureReason"]
    assert f"docker build -t {image}" in d["FailureReason"] and "docker load" in d["FailureReason"]
    assert "berth pulls no images (--docker-pull never)" in d["FailureReason"], "pulls are off by default"
    assert containers(ep) == []


def test_a_missing_image_is_pulled_when_allowed_and_the_failure_named(own_berth, images, tmp_path):
    server = own_berth("--docker-pull", "missing")
    image = f"{REGISTRY}/not-built-here:pull"
    m = image_model(server.sm(), "m", image, tmp_path)
    config = [{"VariantName": "V", "ModelName": m, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "ContainerStartupHealthCheckTimeoutInSeconds": 60}]
    d = endpoint_of(server.sm(), "ep", config)
    assert d["EndpointStatus"] == "Failed"
    # No registry is reachable here: the engine's pull error is named.
    assert f"Image {image} is not on this machine's Docker engine" in d["FailureReason"], d["FailureReason"]
    assert "could not be pulled" in d["FailureReason"] and "docker load" in d["FailureReason"], d["FailureReason"]


def test_an_unreachable_engine_fails_the_endpoint_saying_where_berth_looked(own_berth, images, tmp_path):
    server = own_berth("--docker", "unix:///nonexistent/docker.sock")
    sm = server.sm()
    m = image_model(sm, "m", images[0], tmp_path)
    d = endpoint_of(sm, "ep", [{"VariantName": "V", "ModelName": m, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    assert d["EndpointStatus"] == "Failed"
    assert "the Docker engine is not reachable at unix:///nonexistent/docker.sock (--docker)" in d["FailureReason"], d["FailureReason"]

    off = own_berth("--docker", "off")
    m = image_model(off.sm(), "m", images[0], tmp_path)
    d = endpoint_of(off.sm(), "ep", [{"VariantName": "V", "ModelName": m, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    assert "berth runs no container images on this server (--docker off)" in d["FailureReason"], d["FailureReason"]


def test_kill_9_and_restart_leave_exactly_the_endpoints_containers(own_berth, images, tmp_path):
    server = own_berth()
    sm = server.sm()
    ep = unique("imgkill")
    m = image_model(sm, ep, images[0], tmp_path)
    d = endpoint_of(sm, ep, [{"VariantName": "V", "ModelName": m, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}])
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    before = {c["Id"] for c in containers(ep, running_only=True)}
    assert len(before) == 2

    port = server.port
    server.stop(signal.SIGKILL)
    assert {c["Id"] for c in containers(ep, running_only=True)} == before, "containers outlive a killed server"
    server.start(port)
    d = wait_status(server.sm(), ep, "InService")
    after = wait_for(lambda: (c := containers(ep)) and len(c) == 2 and c, "exactly two containers after the restart")
    assert not before & {c["Id"] for c in after}, "the killed server's containers were removed"
    assert json.loads(server.runtime().invoke_endpoint(EndpointName=ep, Body=b"x")["Body"].read())["name"] == m

    # A graceful shutdown leaves none.
    assert server.stop() == 0
    assert containers(ep) == []


def test_container_cpu_and_memory_are_measured_per_variant(berth, images, tmp_path):
    from test_instance_metrics import HOLD_MB, INSTANCE_MEMORY_MB, wait_samples

    sm = berth.sm()
    ep = unique("imgmetrics")
    busy = image_model(sm, f"{ep}-busy", images[0], tmp_path, env={"ECHO_BURN_CPU": "1", "ECHO_HOLD_MB": str(HOLD_MB)})
    idle = image_model(sm, f"{ep}-idle", images[0], tmp_path)
    variants = [{"VariantName": v, "ModelName": m, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"} for v, m in (("Busy", busy), ("Idle", idle))]
    assert endpoint_of(sm, ep, variants)["EndpointStatus"] == "InService"
    cw = berth.client("cloudwatch")
    assert wait_samples(cw, ep, "Busy", "CPUUtilization", 3)["Average"] > 40
    assert wait_samples(cw, ep, "Idle", "CPUUtilization", 3)["Average"] < 25
    busy_mem = wait_samples(cw, ep, "Busy", "MemoryUtilization", 3)["Average"]
    idle_mem = wait_samples(cw, ep, "Idle", "MemoryUtilization", 3)["Average"]
    held = HOLD_MB / INSTANCE_MEMORY_MB * 100
    assert held * 0.9 < busy_mem - idle_mem < held * 1.5, (busy_mem, idle_mem, held)
