"""berth against a hostile client on loopback: each probe is something that took berth down,
let a caller run or read what the operator did not allow, or cost unbounded memory, time or
disk before. After every probe the server is still up and answers ListEndpoints, and nothing
appears outside the directories it may use."""

import gzip
import io
import json
import os
import re
import signal
import socket
import stat
import tarfile
import threading
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ECHO, ECHO_IMAGE, ROLE, create_echo_model, deploy, error_code, error_message, eventually, http_status, marked_workers, unique, variant, wait_status


def alive(server):
    """The server answers the control plane (and so did not crash on the probe before)."""
    assert server.proc.poll() is None, f"berth exited with {server.proc.returncode}; see {server.log_path}"
    assert "Endpoints" in server.sm().list_endpoints()


def post(server, body, headers, timeout=30):
    return requests.post(server.url + "/", data=body, headers=headers, timeout=timeout)


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


# -- parsers and bodies -------------------------------------------------------------------------

def test_hostile_bodies_are_refused_before_they_cost_memory(own_berth):
    server = own_berth()
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    # A 40 KB form nesting 20,000 levels deep once overflowed the stack and aborted berth.
    r = post(server, b"Action=ListMetrics&" + b"a." * 20_000 + b"=1", form)
    assert r.status_code == 400 and b"nests deeper" in r.content
    alive(server)

    # A 199 KB form with member index 1000 at several levels once cost 250 MB.
    pairs = "&".join(f"MetricData.member.{i}.Dimensions.member.1000.Name.member.1000=x" for i in range(1, 4000))
    r = post(server, ("Action=PutMetricData&Namespace=N&" + pairs).encode(), form)
    assert r.status_code == 400 and b"more than 100000 items" in r.content
    alive(server)

    # CBOR: trailing bytes and nesting past any CloudWatch shape are refused.
    cbor = "/service/GraniteServiceVersion20100801/operation/ListMetrics"
    cbor_headers = {"Content-Type": "application/cbor", "Smithy-Protocol": "rpc-v2-cbor"}
    r = requests.post(server.url + cbor, data=b"\xa0\x00", headers=cbor_headers, timeout=10)
    assert r.status_code == 400
    r = requests.post(server.url + cbor, data=b"\x81" * 10_000 + b"\x00", headers=cbor_headers, timeout=10)
    assert r.status_code == 400
    alive(server)

    # 300 MB streamed (chunked, no length announced) at the control plane, CloudWatch JSON and
    # CBOR, and the runtime: each is refused once it passes its limit, without being buffered.
    def stream(total=300 * 1024 * 1024, piece=1024 * 1024):
        sent = 0
        while sent < total:
            yield b"{" * piece
            sent += piece

    targets = [
        ("/", {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}),
        ("/", {"X-Amz-Target": "GraniteServiceVersion20100801.PutMetricData", "Content-Type": "application/x-amz-json-1.0"}),
        (cbor, cbor_headers),
        ("/endpoints/anything/invocations", {"Content-Type": "text/csv"}),
        ("/", form),
    ]
    for path, headers in targets:
        try:
            r = requests.post(server.url + path, data=stream(), headers=headers, timeout=60)
            assert r.status_code == 400, (path, r.status_code, r.text[:200])
        except requests.exceptions.ConnectionError:
            pass  # berth answered and closed the connection while the client was still sending
        alive(server)
    # And a 1 GiB Content-Length is refused from the header alone.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: SageMaker.ListModels\r\nContent-Length: {1 << 30}\r\n\r\n".encode())
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400") and b"connection: close" in answer.lower()
    assert peak_rss_mb(server.proc.pid) < 200, f"peak RSS {peak_rss_mb(server.proc.pid):.0f} MB"
    alive(server)


def test_gzip_bodies_are_read_as_boto3_sends_them_and_bombs_are_refused(berth):
    """boto3 gzips PutMetricData bodies over 10 KB (Content-Encoding: gzip): berth reads them. A
    body that decompresses past 8 times the protocol's limit is refused while decompressing, and
    an encoding berth does not read is refused by name."""
    import datetime

    cw = berth.client("cloudwatch")
    ns = unique("Gzip")
    now = datetime.datetime.now(datetime.timezone.utc)
    data = [{"MetricName": "Rows", "Dimensions": [{"Name": "Batch", "Value": f"b{i % 7}"}], "Timestamp": now, "Value": float(i)} for i in range(1000)]
    cw.put_metric_data(Namespace=ns, MetricData=data)  # about 100 KB of JSON: boto3 compresses it
    stats = cw.get_metric_statistics(Namespace=ns, MetricName="Rows", Dimensions=[{"Name": "Batch", "Value": "b0"}],
                                     StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=5),
                                     Period=600, Statistics=["SampleCount"])
    assert stats["Datapoints"][0]["SampleCount"] == len(range(0, 1000, 7))

    headers = {"X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics", "Content-Type": "application/x-amz-json-1.0"}
    bomb = gzip.compress(b"{" + b" " * (64 << 20) + b"}")  # 64 MB of JSON in about 64 KB
    r = requests.post(berth.url + "/", data=bomb, headers={**headers, "Content-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 400 and "larger than" in r.text, r.text[:300]
    r = requests.post(berth.url + "/", data=gzip.compress(b"{}"), headers={**headers, "Content-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    r = requests.post(berth.url + "/", data=b"{}", headers={**headers, "Content-Encoding": "br"}, timeout=30)
    assert r.status_code == 400 and "Content-Encoding br" in r.text, r.text[:300]
    alive(berth)


def test_request_bodies_in_flight_are_bounded_across_connections(own_berth):
    """With --max-body-memory 8 MiB: a 5 MB invocation whose body is still arriving holds 5 MB,
    so a second one is refused at once (503, which SDKs retry) and served once the first is gone;
    API bodies arriving slowly over many connections are refused past the budget as they arrive."""
    server = own_berth("--max-body-memory", str(8 << 20))
    name = deploy(server.sm(), ["V"])
    url = f"{server.url}/endpoints/{name}/invocations"

    def hold():
        """A 5 MB invocation whose body stops arriving after 1 MB."""
        c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        c.sendall(f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {5 << 20}\r\n\r\n".encode() + b"x" * (1 << 20))
        return c

    slow = hold()

    def refused():
        nonlocal slow
        # On a loaded machine the other invocation may be read first and take the budget: the
        # slow one is then the one refused (answered, or closed). It is sent again.
        slow.setblocking(False)
        try:
            lost = slow.recv(1) is not None
        except BlockingIOError:
            lost = False
        slow.settimeout(10)
        if lost:
            slow.close()
            slow = hold()
            return None
        r = requests.post(url, data=b"y" * (5 << 20), timeout=30)
        return r if r.status_code == 503 else None

    r = eventually(refused, timeout=10)
    assert r is not None and r.headers["x-amzn-ErrorType"].startswith("ServiceUnavailable") and "--max-body-memory" in r.text, r
    slow.close()
    assert eventually(lambda: requests.post(url, data=b"y" * (5 << 20), timeout=30).status_code == 200, timeout=10)

    connections = []
    head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: SageMaker.ListModels\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 1000000\r\n\r\n"
    for _ in range(10):
        c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        c.sendall(head.encode() + b" " * 950_000)
        connections.append(c)
    import select

    readable, _, _ = select.select(connections, [], [], 3)
    answers = [c.recv(4096) if c in readable else b"" for c in connections]
    for c in connections:
        c.close()
    assert any(a.startswith(b"HTTP/1.1 503") for a in answers), answers
    assert sum(1 for a in answers if a == b"") >= 8, "the bodies within the budget wait to arrive"
    alive(server)


def test_runtime_limits_of_headers_and_answers(berth, sm, runtime):
    name = deploy(sm, ["V"])
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x", CustomAttributes="a" * 1025)
    assert error_code(e) == "ValidationError" and http_status(e) == 400 and "1024" in error_message(e)
    assert runtime.invoke_endpoint(EndpointName=name, Body=b"x", CustomAttributes="a" * 1024)["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x", InferenceId="i" * 65)
    assert error_code(e) == "ValidationError"
    # A container answering more than 6 MB: a ModelError naming the limit, never buffered whole.
    with pytest.raises(runtime.exceptions.ModelError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=f"big:{7 * 1024 * 1024}".encode())
    assert http_status(e) == 424 and "6 MB" in error_message(e)
    assert len(runtime.invoke_endpoint(EndpointName=name, Body=f"big:{6 * 1024 * 1024}".encode())["Body"].read()) == 6 * 1024 * 1024
    alive(berth)


def test_answers_name_resources_not_host_paths_and_print_safely(own_berth, tmp_path):
    """What callers read — a failure reason quoting a worker, events, a model error — names the
    model's files as the container sees them and never a path of berth's data directory; the
    berth CLI prints a model's terminal escape sequences as text; the dashboard cannot be framed."""
    import subprocess

    from conftest import berth_binary

    server = own_berth()
    sm = server.sm()
    data_dir = str(server.data_dir.resolve())
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size = 17
        tar.addfile(info, io.BytesIO(b"not an onnx model"))
    name = unique("broken")
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{broken}"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    reason = wait_status(sm, name, timeout=60)["FailureReason"]
    assert data_dir not in reason and "model.onnx" in reason, reason

    escapes = "\x1b]0;owned\x07\x1b[2J\x1b[31mred"
    shouting = unique("esc")
    create_echo_model(sm, shouting, {"ECHO_STDERR": escapes, "ECHO_EXIT_ON_START": "1"})
    sm.create_endpoint_config(EndpointConfigName=shouting, ProductionVariants=[variant("V", shouting)])
    sm.create_endpoint(EndpointName=shouting, EndpointConfigName=shouting)
    assert "\x1b" in wait_status(sm, shouting, timeout=60)["FailureReason"]
    failing = deploy(sm, ["V"])
    with pytest.raises(ClientError) as e:
        server.runtime().invoke_endpoint(EndpointName=failing, Body=b"fail")
    assert data_dir not in error_message(e) and f"berth logs {failing}" in error_message(e), error_message(e)

    events = requests.get(f"{server.url}/berth/v1/events", timeout=10).json()["events"]
    assert events and not [ev for ev in events if data_dir in ev["message"]], [ev["message"] for ev in events if data_dir in ev["message"]]
    for command in (["events"], ["logs", shouting]):
        out = subprocess.run([berth_binary(), *command, "--url", server.url], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        printed = out.stdout + out.stderr
        assert b"\x1b" not in printed and b"\x07" not in printed, printed[-500:]
        assert b"\\u{1b}" in printed, printed[-500:]

    page = requests.get(server.url + "/ui", timeout=10)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    alive(server)


def test_numbers_are_checked_not_wrapped(berth, sm):
    model = unique("m")
    create_echo_model(sm, model)
    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(EndpointConfigName=unique("c"), ProductionVariants=[variant("A", model, 1e308), variant("B", model, 1e308)])
    assert error_code(e) == "ValidationException" and "add up" in error_message(e)
    name = deploy(sm, ["A", "B"])
    with pytest.raises(ClientError) as e:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 1e308}, {"VariantName": "B", "DesiredWeight": 1e308}]
        )
    assert error_code(e) == "ValidationException" and "add up" in error_message(e)
    # MaxConcurrency past what 32 bits hold was once stored as 1.
    body = {"EndpointName": name, "DesiredWeightsAndCapacities": [{"VariantName": "A", "ServerlessUpdateConfig": {"MaxConcurrency": 4294967297}}]}
    r = post(berth, json.dumps(body), {"X-Amz-Target": "SageMaker.UpdateEndpointWeightsAndCapacities", "Content-Type": "application/x-amz-json-1.1"})
    assert r.status_code == 400 and r.json()["__type"] == "ValidationException" and "4294967297" in r.json()["Message"]
    alive(berth)


# -- who may send what ---------------------------------------------------------------------------

def test_host_and_origin_are_checked(berth):
    target = {"X-Amz-Target": "SageMaker.ListEndpoints", "Content-Type": "application/x-amz-json-1.1"}
    # DNS rebinding: a page whose own name resolves to 127.0.0.1 sends its own name as Host.
    r = post(berth, b"{}", {**target, "Host": "rebound.evil.example"})
    assert r.status_code == 403 and "--allowed-host" in r.json()["Message"]
    assert post(berth, b"{}", {**target, "Host": f"localhost:{berth.port}"}).status_code == 200
    # A cross-site form post (no preflight) to the query protocol, and a foreign Origin on JSON.
    metric = {"Action": "PutMetricData", "Namespace": "Hostile", "MetricData.member.1.MetricName": "Injected", "MetricData.member.1.Value": "1"}
    r = requests.post(berth.url + "/", data=metric, headers={"Origin": "http://evil.example"}, timeout=10)
    assert r.status_code == 403 and b"origin" in r.content
    r = requests.post(berth.url + "/", data=metric, headers={"Sec-Fetch-Site": "cross-site"}, timeout=10)
    assert r.status_code == 403
    assert post(berth, b"{}", {**target, "Origin": "null"}).status_code == 403
    assert post(berth, b"{}", {**target, "Origin": berth.url}).status_code == 200, "berth's own pages may"
    listed = berth.client("cloudwatch").list_metrics(Namespace="Hostile")["Metrics"]
    assert listed == [], "nothing the refused requests carried was stored"
    alive(berth)


def test_callers_run_only_allowed_programs_with_a_clean_environment(own_berth, tmp_path):
    # Without --exec-root, exec: is off.
    closed = own_berth(env={"BERTH_EXEC_ROOTS": None})
    with pytest.raises(ClientError) as e:
        closed.sm().create_model(ModelName="m", PrimaryContainer={"Image": "exec:/bin/bash"}, ExecutionRoleArn=ROLE)
    assert "--exec-root" in error_message(e)
    with pytest.raises(ClientError) as e:
        closed.sm().create_model(ModelName="m", PrimaryContainer={"Image": ECHO_IMAGE}, ExecutionRoleArn=ROLE)
    assert "--exec-root" in error_message(e)

    # With the test containers' directory as the root: programs elsewhere, or reached through a
    # link out of it, are refused; so is an environment that would make a shell or loader run code.
    server = own_berth(env={"AWS_SECRET_ACCESS_KEY": "berths-own-secret", "BERTH_LEAK_CHECK": "1"})
    sm = server.sm()
    root = ECHO.parent
    link = root / f"link-{unique('x')}"
    os.symlink("/bin/bash", link)
    try:
        for image in ("exec:/bin/bash", f"exec:{root}/../../../bin/bash", f"exec:{link}"):
            with pytest.raises(ClientError) as e:
                sm.create_model(ModelName=unique("m"), PrimaryContainer={"Image": image}, ExecutionRoleArn=ROLE)
            assert "not under a directory berth may run programs from" in error_message(e), image
    finally:
        link.unlink()
    for name, value in (("BASH_ENV", "$(touch /tmp/pwned)"), ("LD_PRELOAD", "/tmp/x.so"), ("ENV", "/tmp/x"), ("PATH", "/tmp"), ("PYTHONPATH", "/tmp")):
        with pytest.raises(ClientError) as e:
            sm.create_model(ModelName=unique("m"), PrimaryContainer={"Image": ECHO_IMAGE, "Environment": {name: value}}, ExecutionRoleArn=ROLE)
        assert error_code(e) == "ValidationException" and name in error_message(e), name
    # The worker gets the contract's variables and its own, never berth's environment.
    name = deploy(sm, ["V"], env={"ECHO_FLAG": "1"})
    env = json.loads(server.runtime().invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read())["environment"]
    assert {"SAGEMAKER_BIND_TO_PORT", "SM_MODEL_DIR", "PATH", "ECHO_FLAG", "BERTH_INSTANCE_TYPE"} <= set(env)
    leaked = [k for k in env if k.startswith("AWS_") or k in ("BERTH_LEAK_CHECK", "BERTH_FILE_ROOTS", "BERTH_EXEC_ROOTS")]
    assert leaked == [], leaked
    alive(server)


def test_image_references_cannot_smuggle_options_or_paths(berth, sm):
    """A container image reference goes to the Docker engine: one that is not a plain OCI
    reference (an option, a path, a second word, an unknown digest) is refused at CreateModel,
    and a container's Environment cannot set berth's own variables."""
    digest = "sha256:" + "0" * 64
    for image in (
        "--privileged",
        "alpine -v /:/host",
        "alpine;reboot",
        "../../etc/passwd",
        "/var/run/docker.sock",
        "UPPER/case:1",
        "alpine:tag:again",
        "alpine@sha512:" + "0" * 128,
        f"alpine@{digest}x",
        "a" * 256,
        "registry.example:port/x:1",
        "alpine\nFROM",
    ):
        with pytest.raises(ClientError) as e:
            sm.create_model(ModelName=unique("m"), PrimaryContainer={"Image": image}, ExecutionRoleArn=ROLE)
        assert error_code(e) == "ValidationException", image
        assert "not a container image reference" in error_message(e) or "Image" in error_message(e), image
    with pytest.raises(ClientError) as e:
        sm.create_model(ModelName=unique("m"), PrimaryContainer={"Image": "alpine:3", "Environment": {"BERTH_DATA_DIR": "/"}}, ExecutionRoleArn=ROLE)
    assert error_code(e) == "ValidationException" and "BERTH_DATA_DIR" in error_message(e)
    # Inside a container of its own, an interpreter's variables only choose the container's code.
    name = unique("m")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": f"alpine@{digest}", "Environment": {"PYTHONPATH": "/opt/ml/code"}}, ExecutionRoleArn=ROLE)
    sm.delete_model(ModelName=name)
    alive(berth)


def test_file_urls_only_under_file_roots_and_without_telling_what_exists(berth, sm, tmp_path):
    answers = {}
    for path in ("/etc/shadow", "/etc/no-such-file-at-all"):
        with pytest.raises(ClientError) as e:
            sm.create_model(ModelName=unique("m"), PrimaryContainer={"Image": ECHO_IMAGE, "ModelDataUrl": f"file://{path}"}, ExecutionRoleArn=ROLE)
        answers[path] = error_message(e).replace(path, "PATH")
    assert answers["/etc/shadow"] == answers["/etc/no-such-file-at-all"], answers
    assert "--file-root" in answers["/etc/shadow"]
    model = unique("m")
    create_echo_model(sm, model)
    for destination in ("file:///tmp/berth-capture-outside", f"file://{tmp_path}/../../../../tmp/outside"):
        with pytest.raises(ClientError) as e:
            sm.create_endpoint_config(
                EndpointConfigName=unique("c"),
                ProductionVariants=[variant("V", model)],
                DataCaptureConfig={"InitialSamplingPercentage": 100, "DestinationS3Uri": destination, "CaptureOptions": [{"CaptureMode": "Input"}]},
            )
        assert "--file-root" in error_message(e)
    assert not os.path.exists("/tmp/berth-capture-outside") and not os.path.exists("/tmp/outside")
    alive(berth)


# -- archives ------------------------------------------------------------------------------------

def tar_gz(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        build(tar)
    return buf.getvalue()


def add_link(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def add_file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def failed_model(sm, url):
    model = unique("m")
    sm.create_model(ModelName=model, PrimaryContainer={"Image": ECHO_IMAGE, "ModelDataUrl": url}, ExecutionRoleArn=ROLE)
    ep = unique("ep")
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("V", model)])
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    d = wait_status(sm, ep)
    assert d["EndpointStatus"] == "Failed"
    return d["FailureReason"]


def test_archives_cannot_escape_or_bloat(own_berth, tmp_path):
    server = own_berth("--max-model-files", "100")
    sm = server.sm()
    models = server.data_dir / "models"
    # The chain that beat the textual check: `s -> .`, `d -> s/s/.../../..`, then a file under d.
    escape = tmp_path / "escape-target"
    escape.mkdir()
    depth = len(server.data_dir.parts) + 3
    chain = tmp_path / "chain.tar.gz"
    chain.write_bytes(tar_gz(lambda t: (add_link(t, "s", "."), add_link(t, "d", "s/" * depth + "../" * depth), add_file(t, "d" + str(escape) + "/pwned", b"x"))))
    reason = failed_model(sm, f"file://{chain}")
    assert "could lead outside" in reason, reason
    assert list(escape.iterdir()) == []

    # A harmless link, then an entry written through it.
    through = tmp_path / "through.tar.gz"
    through.write_bytes(tar_gz(lambda t: (add_link(t, "sub", "."), add_file(t, "sub/x", b"1"))))
    assert "under links" in failed_model(sm, f"file://{through}")

    # A 1 MB gzip that unpacks to 1 GB is refused by its expansion ratio, and leaves nothing.
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as gz:
        header = tarfile.TarInfo("zeros.bin")
        header.size = 1 << 30
        gz.write(header.tobuf(format=tarfile.GNU_FORMAT))
        chunk = b"\0" * (8 << 20)
        for _ in range(128):
            gz.write(chunk)
        gz.write(b"\0" * 1024)
    assert bomb.stat().st_size < 2 << 20
    assert "expands more than" in failed_model(sm, f"file://{bomb}")

    # An archive over the entry limit is refused, and what was unpacked of it removed.
    many = tmp_path / "many.tar.gz"
    many.write_bytes(tar_gz(lambda t: [add_file(t, f"f{i}", b"") for i in range(300)]))
    assert "more than 100 entries" in failed_model(sm, f"file://{many}")
    deadline = time.time() + 10
    while any(models.iterdir()) and time.time() < deadline:
        time.sleep(0.1)
    assert list(models.iterdir()) == [], "refused archives leave nothing behind"
    alive(server)


# -- connections ---------------------------------------------------------------------------------

def test_half_open_connections_neither_slow_calls_nor_stay(own_berth):
    server = own_berth("--header-timeout", "2", "--idle-timeout", "3")
    sockets = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers that never finish
        sockets.append(s)
    began = time.time()
    alive(server)
    assert time.time() - began < 2, "a call waited behind the half-open connections"
    # Every one is closed by berth once the header timeout passes.
    deadline = time.time() + 10
    still_open = 0
    for s in sockets:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            still_open += s.recv(1024) != b""
        except socket.timeout:
            still_open += 1
        except ConnectionResetError:
            pass
        s.close()
    assert still_open == 0, f"{still_open} half-open connections outlived the header timeout"

    # An idle keep-alive connection is closed after the idle timeout, not before.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 200"), "still open within the idle timeout"
        s.settimeout(10)
        began = time.time()
        assert s.recv(1024) == b""
        assert 2 <= time.time() - began <= 8
    alive(server)


def test_a_keep_alive_connection_idles_out_after_a_request_longer_than_the_timeouts(own_berth):
    server = own_berth("--header-timeout", "1", "--idle-timeout", "2")
    name = deploy(server.sm(), ["V"], env={"ECHO_DELAY_MS": "2500"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nx".encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 200"), "a request may take longer than the header and idle timeouts"
        began = time.time()
        while s.recv(65536):
            pass
        assert time.time() - began <= 6, "the idle connection was not closed after the request"
    alive(server)


def test_a_stalled_upload_does_not_keep_berth_from_stopping(own_berth):
    server = own_berth("--shutdown-timeout", "2", "--body-timeout", "120")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: SageMaker.ListModels\r\nContent-Length: 100000\r\n\r\n{")
    time.sleep(0.3)
    began = time.time()
    assert server.stop(signal.SIGTERM, timeout=30) == 0
    assert time.time() - began < 10, "SIGTERM waited for the stalled upload"
    s.close()


def test_a_body_that_stops_arriving_is_answered_at_the_body_timeout(own_berth):
    server = own_berth("--body-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: SageMaker.ListModels\r\nContent-Length: 100\r\n\r\n{")
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    alive(server)


# -- instances -----------------------------------------------------------------------------------

def test_max_instances_counts_cold_starts_and_instances_still_stopping(own_berth):
    server = own_berth("--max-instances", "2", "--drain-timeout", "2")
    sm, rt = server.sm(), server.runtime()
    seen = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            seen.append(len([p for p in marked_workers(server) if b"echo_container" in open(f"/proc/{p}/cmdline", "rb").read()]))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # Deleting endpoints while they are Creating, again and again, once started more workers than the limit.
        for _ in range(4):
            name = unique("churn")
            create_echo_model(sm, name, {"ECHO_STARTUP_DELAY": "30"})
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name, count=2)])
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            time.sleep(0.3)
            sm.delete_endpoint(EndpointName=name)
        # Deleting a Creating endpoint stops its starts at once, not after they would have finished.
        deadline = time.time() + 10
        while marked_workers(server):
            assert time.time() < deadline, "workers of deleted endpoints kept starting"
            time.sleep(0.05)
        full = deploy(sm, ["V"], count=2)
        # A serverless cold start would be a third instance: refused while two run.
        cold = unique("cold")
        create_echo_model(sm, cold)
        sm.create_endpoint_config(
            EndpointConfigName=cold, ProductionVariants=[{"VariantName": "S", "ModelName": cold, "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2}}]
        )
        sm.create_endpoint(EndpointName=cold, EndpointConfigName=cold)
        assert wait_status(sm, cold)["EndpointStatus"] == "InService"
        with pytest.raises(ClientError) as e:
            rt.invoke_endpoint(EndpointName=cold, Body=b"x")
        assert "--max-instances" in error_message(e)
        assert rt.invoke_endpoint(EndpointName=full, Body=b"x")["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        stop.set()
        sampler.join()
    assert max(seen) <= 2, f"{max(seen)} workers ran under --max-instances 2"
    alive(server)


@pytest.mark.parametrize("memory_limits", ["auto", "off"])
def test_detached_helpers_end_with_their_instance_and_with_berth(own_berth, memory_limits):
    """A container's helper that left its session (as daemons do) ends on SIGTERM of berth, and
    after a kill -9 when berth starts again; with memory cgroups (auto) or without them (off)."""

    def helper_of(server):
        name = deploy(server.sm(), ["V"], env={"ECHO_HELPER": "1"})

        def written():
            logs = (server.data_dir / "logs" / name / "V").glob("*.log")
            found = [re.search(r"helper pid (\d+)", log.read_text()) for log in logs]
            return next((int(m.group(1)) for m in found if m), None)

        pid = eventually(written, timeout=10)
        assert pid, "the helper never said its pid"
        assert os.path.exists(f"/proc/{pid}")
        return name, pid

    def gone(pid, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return True
            except OSError:
                return True
            time.sleep(0.05)
        return False

    server = own_berth("--memory-limits", memory_limits)
    _, pid = helper_of(server)
    assert server.stop(signal.SIGTERM) == 0
    assert gone(pid), "the helper outlived berth's SIGTERM"

    server.start()
    name, pid = helper_of(server)
    # Deleting the endpoint ends the helper with its instance.
    server.sm().delete_endpoint(EndpointName=name)
    assert gone(pid), "the helper outlived its instance"

    _, pid = helper_of(server)
    server.stop(signal.SIGKILL)
    time.sleep(0.5)
    assert os.path.exists(f"/proc/{pid}"), "after kill -9 the detached helper is still there (until berth starts again)"
    server.start()
    assert gone(pid), "the restarted berth did not end what the killed one left"
    alive(server)


def test_logs_rotate_and_files_are_private(own_berth):
    server = own_berth("--log-max-bytes", "65536")
    sm, rt = server.sm(), server.runtime()
    name = deploy(sm, ["V"])
    rt.invoke_endpoint(EndpointName=name, Body=b"log:300")  # 300 KB of output
    logs = list((server.data_dir / "logs" / name / "V").iterdir())
    deadline = time.time() + 10
    while not any(p.name.endswith(".log.1") for p in logs) and time.time() < deadline:
        time.sleep(0.1)
        logs = list((server.data_dir / "logs" / name / "V").iterdir())
    assert any(p.name.endswith(".log.1") for p in logs), logs
    for p in logs:
        assert p.stat().st_size <= 65536, (p, p.stat().st_size)
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    for f in ("state.db", "state.db-wal"):
        assert stat.S_IMODE((server.data_dir / f).stat().st_mode) == 0o600, f
    alive(server)


def test_deleted_endpoints_leave_prometheus_but_not_cloudwatch(berth, sm, runtime):
    name = deploy(sm, ["V"])
    runtime.invoke_endpoint(EndpointName=name, Body=b"x")
    assert f'endpoint="{name}"' in requests.get(berth.url + "/metrics", timeout=10).text
    sm.delete_endpoint(EndpointName=name)
    deadline = time.time() + 10
    while f'endpoint="{name}"' in requests.get(berth.url + "/metrics", timeout=10).text:
        assert time.time() < deadline, "the deleted endpoint's series stayed in /metrics"
        time.sleep(0.1)
    cw = berth.client("cloudwatch")
    dimensions = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "V"}]
    deadline = time.time() + 10
    while True:
        now = time.time()
        got = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=dimensions, StartTime=now - 600, EndTime=now + 60, Period=60, Statistics=["Sum"]
        )
        if sum(d["Sum"] for d in got["Datapoints"]) == 1:
            break  # its history is still queryable
        assert time.time() < deadline, got["Datapoints"]
        time.sleep(0.2)
    alive(berth)


# -- memory under load --------------------------------------------------------------------------


class BlackHole:
    """A TCP server that accepts connections and never answers (an unreachable S3 that does not
    refuse), until closed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.held = []
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_data_capture_cannot_grow_berth_past_its_buffer(own_berth):
    """240 MB of captured invocations while the capture destination never answers: berth grows
    by about its 16 MiB capture buffer, not by what it captured; the rest is dropped, counted per
    variant and reported as an event, and every invocation is answered."""
    hole = BlackHole()
    s3 = {"AWS_ENDPOINT_URL_S3": hole.url, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    server = own_berth("--capture-buffer-bytes", str(16 << 20), env=s3)
    sm = server.sm()
    ep = unique("cap")
    create_echo_model(sm, f"{ep}-m")
    capture = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://nowhere/capture",
               "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("V", f"{ep}-m")], DataCaptureConfig=capture)
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    assert wait_status(sm, ep)["EndpointStatus"] == "InService"
    body = os.urandom(4 << 20)
    with requests.Session() as s:
        s.post(f"{server.url}/endpoints/{ep}/invocations", data=b"warm", timeout=30).raise_for_status()
        before = peak_rss_mb(server.proc.pid)
        for _ in range(60):
            r = s.post(f"{server.url}/endpoints/{ep}/invocations", data=body, headers={"Content-Type": "application/octet-stream"}, timeout=60)
            assert r.status_code == 200, r.text
    grown = peak_rss_mb(server.proc.pid) - before
    assert grown < 100, f"berth grew by {grown:.0f} MB capturing 240 MB with a 16 MiB buffer"
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    dropped = re.search(rf'berth_capture_dropped_total{{endpoint="{ep}",variant="V"}} (\d+)', metrics)
    assert dropped and int(dropped.group(1)) > 0, metrics[-2000:]

    def reported():
        events = requests.get(f"{server.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]
        return [e for e in events if e["kind"] == "CaptureDropped"]

    assert eventually(reported, timeout=10), "no CaptureDropped event"
    hole.close()
    alive(server)
