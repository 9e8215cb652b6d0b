"""Callers' code against berth's workers: a model's archive and Environment try to make a worker
load code of theirs — a shared library built here that leaves a marker file if it ever runs, or
bytecode that shadows a module the worker imports — and, where the code does run (an `exec:`
program tricked into it), it tries to read berth's secrets, state and other models, to write
outside its scratch directory, to signal berth and to reach a UNIX socket. berth's own workers
must never load it; a sandboxed worker that does must be unable to do any of the rest."""

import importlib.util
import json
import re
import marshal
import os
import pathlib
import shutil
import socket
import subprocess
import tarfile
import threading

import pytest

from conftest import ECHO_IMAGE, ROLE, ROOT, unique, variant, wait_status

DEMO_MODEL = ROOT / "crates" / "berth" / "demo" / "iris-logistic.onnx"


def shared_library(tmp_path, marker):
    """A shared library whose constructor writes `marker`: proof that something loaded it."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        pytest.skip("needs a C compiler (gcc) to build the library")
    source = tmp_path / "evil.c"
    source.write_text(
        '#include <stdio.h>\n'
        f'__attribute__((constructor)) static void ran(void) {{ FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }} }}\n'
    )
    library = tmp_path / "evil.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library.read_bytes()


def shadowing_bytecode(module, code_text):
    """Unchecked hash-based bytecode (never compared with its source) for `module` as this
    interpreter finds it, at the path PYTHONPYCACHEPREFIX=<prefix> makes Python look for it:
    (path under the prefix, bytes). The code runs `code_text`, then the real module's source."""
    spec = importlib.util.find_spec(module)
    real = pathlib.Path(spec.origin).resolve()
    source = code_text + f"\n__file__ = {str(real)!r}\n"
    if spec.submodule_search_locations:
        source += f"__path__ = [{str(real.parent)!r}]\n"
    source += f"exec(compile(open({str(real)!r}).read(), {str(real)!r}, 'exec'))\n"
    code = compile(source, str(real), "exec")
    header = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + b"\0" * 8  # hash-based, unchecked
    tag = f"{real.stem}.{__import__('sys').implementation.cache_tag}.pyc"
    return str(real.parent).lstrip("/") + "/" + tag, header + marshal.dumps(code)


def archive(tmp_path, files):
    path = tmp_path / f"{unique('model')}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    return path


def deploy_model(sm, image, data_url, environment):
    name = unique("sbx")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "ModelDataUrl": data_url, "Environment": environment},
    )
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name, wait_status(sm, name, timeout=120)


def model_dir_holding(data_dir, relative):
    """The unpacked model directory under berth's data directory that holds `relative`."""
    found = [p for p in (data_dir / "models").glob("*/data") if (p / relative).exists()]
    assert found, f"no model directory holds {relative}"
    return found[0]


def test_the_builtin_onnx_worker_never_loads_a_library_or_bytecode_a_caller_names(own_berth, tmp_path):
    """`berth/onnx` in the default configuration: `ORT_DYLIB_PATH` naming a library in the
    archive, and Python variables that shadow `onnxruntime` for the interpreter berth used to
    find ONNX Runtime with, are not followed; the model still serves."""
    server = own_berth()
    sm, runtime = server.sm(), server.runtime()
    marker = tmp_path / "library-ran"
    pyc_marker = tmp_path / "bytecode-ran"
    pyc_path, pyc = shadowing_bytecode("onnxruntime", f"open({str(pyc_marker)!r}, 'w').write('ran')")
    files = {"model.onnx": DEMO_MODEL.read_bytes(), "evil.so": shared_library(tmp_path, marker), pyc_path: pyc}
    url = f"file://{archive(tmp_path, files)}"

    first, d = deploy_model(sm, "berth/onnx", url, {"ORT_DYLIB_PATH": "./evil.so"})
    assert not marker.exists(), "berth/onnx loaded a library the caller named"
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    # With the model directory's path known (it is shared by models of the same data), the
    # bytecode is named absolutely as well as relatively.
    shadow = str(model_dir_holding(server.data_dir, "evil.so"))
    for prefix in (".", shadow):
        name, d = deploy_model(sm, "berth/onnx", url, {"PYTHONPYCACHEPREFIX": prefix, "ORT_DYLIB_PATH": f"{shadow}/evil.so"})
        assert not marker.exists() and not pyc_marker.exists(), "a berth/onnx worker loaded code from the caller's archive"
        assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    for endpoint in (first, name):
        answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"5.1,3.5,1.4,0.2")
        assert json.loads(answer["Body"].read())["predictions"][0]["label"] == 0
    assert not marker.exists(), "berth/onnx loaded a library the caller named"
    assert not pyc_marker.exists(), "a berth/onnx worker ran bytecode from the caller's archive"


PROBES = """
import os, socket, sys
def probe(name, act):
    try:
        act()
        result = "ok"
    except Exception as e:
        result = "denied (" + type(e).__name__ + ")"
    sys.stderr.write("PROBE " + name + ": " + result + "\\n")
    sys.stderr.flush()
berth = os.getppid()
probe("write a file outside", lambda: open(MARKER, "w").write("ran"))
probe("read berth's environment", lambda: open("/proc/%d/environ" % berth, "rb").read())
probe("read berth's state", lambda: open(DATA_DIR + "/state.db", "rb").read(16))
probe("read berth's logs", lambda: os.listdir(DATA_DIR + "/logs"))
probe("read another model", lambda: open(OTHER_MODEL, "rb").read())
probe("read a credentials file", lambda: open(CREDENTIALS, "rb").read())
probe("write into the data directory", lambda: open(DATA_DIR + "/evil", "w").write("x"))
probe("signal berth", lambda: os.kill(berth, 0))
probe("connect to a UNIX socket", lambda: socket.socket(socket.AF_UNIX).connect(SOCKET))
probe("write its own scratch directory", lambda: open(os.environ["TMPDIR"] + "/scratch", "w").write("x"))
probe("read its own model", lambda: open(os.environ["SM_MODEL_DIR"] + "/model.txt").read())
"""


def test_code_an_exec_program_is_tricked_into_running_is_confined(own_berth, tmp_path):
    """An allowed `exec:` program (Python) made to run bytecode from the caller's archive: the
    code runs, but sandboxed — it reads its own model and writes its scratch directory, and
    nothing else of the list: berth's environment (a secret in it), state, logs, another model,
    a credentials file, the data directory, a signal to berth, a UNIX socket."""
    secret = unique("berth-secret")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_secret_access_key = {secret}\n")
    unix_path = str(tmp_path / "engine.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(unix_path)
    listener.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()

    server = own_berth(env={"BERTH_TEST_SECRET": secret})
    sm = server.sm()
    other, d = deploy_model(sm, ECHO_IMAGE, f"file://{archive(tmp_path, {'model.txt': b'other tenant'})}", {})
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    other_model = model_dir_holding(server.data_dir, "model.txt") / "model.txt"
    assert other_model.read_bytes() == b"other tenant"

    marker = tmp_path / "code-ran"
    settings = dict(MARKER=str(marker), DATA_DIR=str(server.data_dir.resolve()), OTHER_MODEL=str(other_model),
                    CREDENTIALS=str(credentials), SOCKET=unix_path)
    code = "".join(f"{k} = {v!r}\n" for k, v in settings.items()) + PROBES
    pyc_path, pyc = shadowing_bytecode("json", code)
    url = f"file://{archive(tmp_path, {'model.txt': b'mine', pyc_path: pyc})}"
    first, d = deploy_model(sm, ECHO_IMAGE, url, {})
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    # The caller learned where its model directory is (shared by models of the same data).
    prefix = str(model_dir_holding(server.data_dir, pyc_path))
    name, d = deploy_model(sm, ECHO_IMAGE, url, {"PYTHONPYCACHEPREFIX": prefix})
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    answer = server.runtime().invoke_endpoint(EndpointName=name, Body=b"hello")
    assert json.loads(answer["Body"].read())["model_file"] == "mine"

    log = "".join(p.read_text(errors="replace") for p in (server.data_dir / "logs" / name / "V").glob("*.log"))
    log = re.sub(r"(?m)^\d{4}-\d\d-\d\dT[\d:.]+Z ", "", log)  # each line's time stamp
    results = {line.split(": ", 1)[0][len("PROBE "):]: line.split(": ", 1)[1] for line in log.splitlines() if line.startswith("PROBE ")}
    assert results.get("read its own model") == "ok" and results.get("write its own scratch directory") == "ok", results
    allowed = {k: v for k, v in results.items() if not v.startswith("denied") and k not in ("read its own model", "write its own scratch directory")}
    assert len(results) == 11 and not allowed, f"the sandbox let the code {allowed}"
    assert not marker.exists() and not (server.data_dir / "evil").exists()
    assert not accepted, "a worker reached a UNIX socket outside its sandbox"
    assert secret not in log


def test_berths_own_variables_win_and_workers_get_no_data_directory(own_berth, tmp_path):
    """A container's Environment cannot replace what berth tells its worker (port, model
    directory, instance size), and no worker learns berth's data directory from it."""
    server = own_berth()
    sm = server.sm()
    env = {"SAGEMAKER_MULTI_MODEL": "true", "ECHO_NAME": "env"}
    name, d = deploy_model(sm, ECHO_IMAGE, f"file://{archive(tmp_path, {'model.txt': b'x'})}", env)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    # The echo container serves /invocations only when berth's SAGEMAKER_MULTI_MODEL=false won.
    answer = json.loads(server.runtime().invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read())
    assert answer["model_file"] == "x"
    environment = _environ(answer["pid"])
    assert environment["SAGEMAKER_MULTI_MODEL"] == "false"
    assert "BERTH_DATA_DIR" not in environment
    assert environment["HOME"] == environment["TMPDIR"] and environment["HOME"] != os.environ.get("HOME")


def _environ(pid):
    try:
        raw = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
