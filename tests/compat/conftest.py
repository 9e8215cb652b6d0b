"""Fixtures: a real berth process on 127.0.0.1:0, real boto3 clients, real worker processes."""

import collections
import io
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import threading
import uuid

import boto3
import pytest
from botocore.config import Config

import shapes

# Every answer berth gives a botocore client in this process is checked against botocore's
# output shape; `shapes_hold` reports what was wrong when the session ends.
shapes.install()

ROOT = pathlib.Path(__file__).resolve().parents[2]
ECHO = ROOT / "tests" / "containers" / "echo_container.py"
ECHO_IMAGE = f"exec:{ECHO}"
ROLE = "arn:aws:iam::123456789012:role/berth-tests"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def berth_binary():
    explicit = os.environ.get("BERTH_BIN")
    if explicit:
        return explicit
    # The most recently built of the two profiles.
    built = [p for p in (ROOT / "target" / profile / "berth" for profile in ("release", "debug")) if p.exists()]
    if not built:
        raise RuntimeError("berth is not built: run `cargo build` or set BERTH_BIN")
    return str(max(built, key=lambda p: p.stat().st_mtime))


# What the suite's servers may run and read: the test containers, and the session's temporary
# directory (model data, capture destinations, label files). Set by the `file_root` fixture.
FILE_ROOT = None


class BerthServer:
    """One berth process. Started on port 0; the bound address is read from its stdout. It may
    run the test containers (`--exec-root`) and read the session's temporary files (`--file-root`)
    unless `env` says otherwise."""

    def __init__(self, data_dir, extra_args=(), env=None):
        self.data_dir = pathlib.Path(data_dir)
        self.extra_args = list(extra_args)
        roots = {"BERTH_EXEC_ROOTS": str(ECHO.parent)}
        if FILE_ROOT:
            roots["BERTH_FILE_ROOTS"] = str(FILE_ROOT)
        # A None value in `env` removes the variable.
        self.env = {k: v for k, v in {**os.environ, **roots, **(env or {})}.items() if v is not None}
        self.proc = None
        self.url = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self, port=0):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        args = [berth_binary(), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(self.data_dir), *self.extra_args]
        # Unbuffered, so that select() on stdout sees every line berth has printed.
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, bufsize=0, env=self.env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("berth listening on "):
            self.proc.kill()
            raise RuntimeError(f"berth did not start: {line!r}; see {self.log_path}")
        self.url = line.split()[-1]
        return self

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def restart(self, sig=signal.SIGTERM):
        """Stops the process and starts a new one on the same port and data dir."""
        port = self.port
        self.stop(sig)
        for _ in range(50):
            try:
                return self.start(port)
            except RuntimeError:
                time.sleep(0.1)
        return self.start(port)

    def client(self, service, **config):
        cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, **config)
        return boto3.client(service, endpoint_url=self.url, config=cfg, **CREDENTIALS)

    def sm(self):
        return self.client("sagemaker")

    def runtime(self, **config):
        return self.client("sagemaker-runtime", **config)

    def log_text(self):
        return self.log_path.read_text(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """A real S3-compatible server: moto's `moto_server` on a free port, stopped by PID."""

    def __init__(self, log_path, env=None):
        moto_server = shutil.which("moto_server") or str(pathlib.Path(sys.executable).parent / "moto_server")
        if not pathlib.Path(moto_server).exists():
            pytest.skip("moto_server is installed by the test command")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [moto_server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env={**os.environ, **(env or {})}
        )
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert time.time() < deadline and self.proc.poll() is None, "moto_server did not start"
                time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session", autouse=True)
def shapes_hold():
    """Fails the session if any answer berth gave did not match botocore's output shape."""
    yield
    checked = sum(shapes.SEEN.values())
    print(f"\nshapes: {checked} answers of {len(shapes.SEEN)} operations checked against botocore's output shapes")
    assert not shapes.VIOLATIONS, "answers outside botocore's shapes:\n" + "\n".join(sorted(set(shapes.VIOLATIONS)))


@pytest.fixture(scope="session", autouse=True)
def file_root(tmp_path_factory):
    """The session's temporary directory, the --file-root of every server the suite starts."""
    global FILE_ROOT
    FILE_ROOT = tmp_path_factory.getbasetemp()
    yield FILE_ROOT


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The shared S3-compatible server; yields its URL."""
    moto = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield moto.url
    moto.stop()


def s3_env(url):
    """The standard AWS configuration that points SDKs (berth's included) at `url`."""
    return {"AWS_ENDPOINT_URL_S3": url, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def python_runtime_berth(tmp_path_factory, s3_server, label):
    """For a module's fixture (`yield from`): a berth whose Python runtime is on, with the moto
    server as its S3; stopped cleanly and its data directory removed after the module."""
    data = tmp_path_factory.mktemp(label) / "data"
    server = BerthServer(data, ["--python-runtime", "on"], env=s3_env(s3_server)).start()
    yield server
    assert server.stop() == 0
    shutil.rmtree(data, ignore_errors=True)


def sdk_session(server, s3_server, bucket):
    """For a fixture (`yield from`): a SageMaker SDK session whose SageMaker calls go to berth
    and whose S3 (and STS) calls go to the moto server, with `bucket` made as its default."""
    import sagemaker

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_S3", s3_server)
        env.setenv("AWS_ENDPOINT_URL_STS", s3_server)
        boto_session = boto3.Session(**CREDENTIALS)
        boto_session.client("s3").create_bucket(Bucket=bucket)
        yield sagemaker.Session(
            boto_session=boto_session, sagemaker_client=server.sm(), sagemaker_runtime_client=server.runtime(), default_bucket=bucket
        )


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL of the module's own (scripts/postgres.sh, on 127.0.0.1, run as the
    unprivileged `postgres` user when the tests run as root; a module may halt and resume it);
    yields (administrator URL, cluster directory) and removes it afterwards."""
    script = str(ROOT / "scripts" / "postgres.sh")
    # Outside pytest's private temporary tree: the cluster's owner must reach its directory.
    parent = pathlib.Path(tempfile.mkdtemp(prefix="berth-compat-postgres-"))
    parent.chmod(0o755)
    cluster = parent / "cluster"
    url = subprocess.run(["bash", script, "start", str(cluster)], check=True, capture_output=True, text=True).stdout.strip()
    yield url, cluster
    subprocess.run(["bash", script, "stop", str(cluster)], check=True)
    shutil.rmtree(parent, ignore_errors=True)


_databases = iter(range(1 << 30))


@pytest.fixture
def store(postgres):
    """A fresh database on the module's PostgreSQL; its URL."""
    name = f"berth_compat_{os.getpid()}_{next(_databases)}"
    subprocess.run(["psql", postgres[0], "-qc", f"CREATE DATABASE {name}"], check=True)
    return postgres[0].rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def berth(tmp_path_factory, s3_server):
    """The shared server for tests that do not stop it; its S3 is the moto server."""
    server = BerthServer(tmp_path_factory.mktemp("shared") / "data", env=s3_env(s3_server)).start()
    yield server
    assert server.stop() == 0, "berth did not shut down cleanly"


@pytest.fixture(autouse=True)
def delete_new_endpoints(request):
    """Deletes the endpoints a test created on the shared server, so their instances do not
    pile up across the suite (the server caps instances, as SageMaker's quotas do)."""
    if "berth" not in request.fixturenames:
        yield
        return
    berth = request.getfixturevalue("berth")
    sm = berth.sm()
    names = lambda: {e["EndpointName"] for p in sm.get_paginator("list_endpoints").paginate() for e in p["Endpoints"]}  # noqa: E731
    before = names()
    yield
    for name in names() - before:
        try:
            sm.delete_endpoint(EndpointName=name)
        except Exception:  # noqa: already deleting or deleted by the test
            pass


@pytest.fixture
def own_berth(tmp_path):
    """A server of the test's own, for tests that kill or reconfigure it."""
    servers = []

    def start(*extra_args, env=None):
        server = BerthServer(tmp_path / f"data{len(servers)}", extra_args, env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(signal.SIGKILL)


@pytest.fixture
def sm(berth):
    return berth.sm()


@pytest.fixture
def runtime(berth):
    return berth.runtime()


class Load:
    """A client invoking an endpoint in a loop on its own thread (for at most `seconds`, at most
    `rate` requests a second when given, never catching up after a slow one), recording every
    answer (time, variant, body) and every failure."""

    def __init__(self, server, endpoint, seconds=120, rate=None, component=None):
        self.runtime = server.runtime(max_pool_connections=4)
        self.endpoint = endpoint
        self.target = {"InferenceComponentName": component} if component else {}
        self.seconds = seconds
        self.rate = rate
        self.counts = collections.Counter()
        self.answers = []  # (time, variant, body)
        self.failures = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        deadline = time.time() + self.seconds
        while not self.stop_flag.is_set() and time.time() < deadline:
            began = time.time()
            try:
                r = self.runtime.invoke_endpoint(EndpointName=self.endpoint, Body=b"load", **self.target)
                self.answers.append((time.time(), r["InvokedProductionVariant"], r["Body"].read()))
                self.counts[r["InvokedProductionVariant"]] += 1
            except Exception as e:  # noqa: every failure is what the test counts
                self.failures.append(repr(e))
            if self.rate:
                time.sleep(max(0.0, 1.0 / self.rate - (time.time() - began)))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(timeout=30)

    @property
    def sent(self):
        return len(self.answers)

    def wait_for(self, n, timeout=30):
        deadline = time.time() + timeout
        while sum(self.counts.values()) < n and time.time() < deadline:
            time.sleep(0.01)

    def share(self, model, start, end):
        """Of the answers in [start, end), the fraction the echo model `model` gave, and how many."""
        import json

        names = [json.loads(body)["name"] for t, _, body in self.answers if start <= t < end]
        return (sum(1 for n in names if n == model) / len(names) if names else None), len(names)


def put_alarm(cw, endpoint, metric, variant="V", **settings):
    """A CloudWatch alarm on one of berth's metrics of an endpoint variant; returns its name."""
    name = unique(metric.lower())
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    cw.put_metric_alarm(AlarmName=name, Namespace="AWS/SageMaker", MetricName=metric, Dimensions=dimensions, **settings)
    return name


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def model_dir(tmp_path, text):
    """A model directory holding `model.txt`, which the echo container reads back."""
    d = tmp_path / unique("model")
    d.mkdir()
    (d / "model.txt").write_text(text)
    return d


def model_tarball(tmp_path, text):
    d = model_dir(tmp_path, text)
    archive = tmp_path / f"{d.name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(d / "model.txt", arcname="model.txt")
    return archive


def create_echo_model(sm, name, env=None, data_url=None):
    container = {"Image": ECHO_IMAGE, "Environment": {"ECHO_NAME": name, **(env or {})}}
    if data_url:
        container["ModelDataUrl"] = data_url
    return sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)


def variant(name, model, weight=1.0, count=1, **extra):
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
        **extra,
    }


def wait_status(sm, endpoint, want=("InService", "Failed"), timeout=60):
    """Polls DescribeEndpoint until the status is one of `want`; returns the description."""
    want = (want,) if isinstance(want, str) else want
    deadline = time.time() + timeout
    while True:
        d = sm.describe_endpoint(EndpointName=endpoint)
        if d["EndpointStatus"] in want:
            return d
        if time.time() > deadline:
            raise AssertionError(f"{endpoint} still {d['EndpointStatus']} after {timeout}s")
        time.sleep(0.05)


def deploy(sm, variants, models=None, env=None, name=None, variant_env=None, count=1):
    """Creates one echo model per variant (unless given), a config and an endpoint with `count`
    instances per variant; waits for InService. `variant_env` adds environment for the model of
    a named variant."""
    name = name or unique("ep")
    specs = []
    for v in variants:
        vname, weight = v if isinstance(v, tuple) else (v, 1.0)
        model = f"{name}-{vname}".lower()
        if not models:
            create_echo_model(sm, model, {**(env or {}), **(variant_env or {}).get(vname, {})})
        specs.append(variant(vname, models[vname] if models else model, weight, count))
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=specs)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = wait_status(sm, name)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    return name


def cloudwatch_client(server, protocol, data_path, monkeypatch, **config):
    """A boto3 CloudWatch client that speaks `protocol` (smithy-rpc-v2-cbor, json or query): CloudWatch's
    own service model with only that protocol, loaded through AWS_DATA_PATH, so the requests and
    the parsing of answers are botocore's real serializer and parser for it."""
    import gzip
    import json

    import botocore

    source = pathlib.Path(botocore.__file__).parent / "data" / "cloudwatch" / "2010-08-01" / "service-2.json.gz"
    model = json.loads(gzip.decompress(source.read_bytes()))
    model["metadata"]["protocol"] = protocol
    model["metadata"]["protocols"] = [protocol]
    target = pathlib.Path(data_path) / "models" / "cloudwatch" / "2010-08-01"
    target.mkdir(parents=True, exist_ok=True)
    (target / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(pathlib.Path(data_path) / "models"))
    credentials = {**CREDENTIALS, **{k: config.pop(k) for k in list(config) if k.startswith("aws_")}}
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, **config)
    client = boto3.session.Session().client("cloudwatch", endpoint_url=server.url, config=cfg, **credentials)
    assert client.meta.service_model.protocol == protocol
    return client


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def error_message(excinfo):
    return excinfo.value.response["Error"]["Message"]


def http_status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def new_bucket(s3_server, prefix):
    """A new bucket on the S3-compatible server: (its boto3 client, its name)."""
    s3 = boto3.client("s3", endpoint_url=s3_server, **CREDENTIALS)
    name = unique(prefix)
    s3.create_bucket(Bucket=name)
    return s3, name


def tar_gz(files):
    """A gzipped tar in memory of `files` (name -> bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def recent_statistics(cw, metric, dimensions, namespace="AWS/SageMaker", statistics=("Sum", "SampleCount", "Average", "Minimum", "Maximum")):
    """A metric's statistics over the last ten minutes as one datapoint (None when it has none)."""
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    out = cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=dimensions,
        StartTime=now - datetime.timedelta(minutes=10),
        EndTime=now + datetime.timedelta(minutes=1),
        Period=3600,
        Statistics=list(statistics),
    )
    return out["Datapoints"][0] if out["Datapoints"] else None


def eventually(check, timeout=15):
    """`check()` polled until it gives something true or `timeout` seconds pass; its last value."""
    deadline = time.time() + timeout
    while True:
        got = check()
        if got or time.time() > deadline:
            return got
        time.sleep(0.25)


def marked_workers(server, pid=None):
    """Pids of processes that carry a server's instance marker (its pid, or `pid`'s): its
    instances' workers and what they started."""
    pid = pid or server.proc.pid
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(b"BERTH_INSTANCE_OF=") and f":{pid}:".encode() in v for v in environ):
            pids.append(int(entry))
    return pids
