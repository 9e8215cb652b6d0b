"""berth for Python: the `berth` binary this package installs, and a server for tests and notebooks.

    import berth

    with berth.serve() as server:                 # a berth on a free port of 127.0.0.1
        server.sagemaker.create_model(...)        # boto3 clients pointed at it
        server.runtime.invoke_endpoint(...)

`berth.serve()` starts `berth serve` with a temporary data directory, waits until it listens,
and stops it cleanly (SIGTERM, then its instances are stopped by berth) when the block ends.
The pytest plugin gives the same as the `berth_server` fixture.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import threading
from typing import Iterator, Optional, Sequence

__all__ = ["Server", "binary", "serve"]

#: Credentials the clients sign with: berth checks signatures only when started with keys.
CREDENTIALS = {"aws_access_key_id": "berth", "aws_secret_access_key": "berth", "region_name": "us-east-1"}


def binary() -> str:
    """The `berth` executable: `BERTH_BIN` if set, else the one installed with this package,
    else the first on the PATH."""
    explicit = os.environ.get("BERTH_BIN")
    if explicit:
        return explicit
    beside = pathlib.Path(sysconfig.get_path("scripts")) / "berth"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("berth")
    if found:
        return found
    raise FileNotFoundError("the berth binary is not installed: pip install berth, or set BERTH_BIN")


class Server:
    """A running berth: its `url`, its data directory, and boto3 clients for it."""

    def __init__(self, process: subprocess.Popen, url: str, data_dir: pathlib.Path, log_path: pathlib.Path):
        self.process = process
        self.url = url
        self.data_dir = data_dir
        self.log_path = log_path
        self.output: list = []
        self._clients: dict = {}

    def client(self, service: str, **config):
        """A boto3 client of `service` (e.g. "cloudwatch", "application-autoscaling") for this server."""
        import boto3
        from botocore.config import Config

        return boto3.client(service, endpoint_url=self.url, config=Config(**config), **CREDENTIALS)

    @property
    def sagemaker(self):
        """SageMaker's control plane (boto3 `sagemaker` client)."""
        return self._clients.setdefault("sagemaker", self.client("sagemaker"))

    @property
    def runtime(self):
        """SageMaker's runtime (boto3 `sagemaker-runtime` client)."""
        return self._clients.setdefault("sagemaker-runtime", self.client("sagemaker-runtime"))

    def log(self) -> str:
        """What the server has logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> Optional[int]:
        """Stops the server (SIGTERM; SIGKILL after `timeout` seconds); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _drain(process: subprocess.Popen, server: Server) -> None:
    for line in process.stdout or ():
        server.output.append(line.decode(errors="replace"))


@contextlib.contextmanager
def serve(*args: str, demo: bool = False, data_dir: Optional[os.PathLike] = None, env: Optional[dict] = None) -> Iterator[Server]:
    """Runs `berth serve` on a free port of 127.0.0.1 for the block: `args` are more `berth serve`
    flags (e.g. `"--file-root", "/data"`), `demo` deploys the demo endpoint, `data_dir` keeps
    the state (a temporary directory, removed afterwards, when None)."""
    owned = data_dir is None
    root = pathlib.Path(tempfile.mkdtemp(prefix="berth-")) if owned else pathlib.Path(data_dir)
    data = root / "data" if owned else root
    data.mkdir(parents=True, exist_ok=True)
    log_path = (root if owned else data) / "server.log"
    command: Sequence[str] = [binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), *(["--demo"] if demo else []), *args]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env={**os.environ, **(env or {})})
    server = None
    try:
        line = process.stdout.readline().decode() if process.stdout else ""
        if not line.startswith("berth listening on "):
            process.kill()
            process.wait()
            raise RuntimeError(f"berth did not start: {line.strip()!r}; its log: {log_path.read_text(errors='replace')[-2000:]}")
        server = Server(process, line.split()[-1], data, log_path)
        # What berth prints later (the demo's usage) is kept in `server.output`, never left to
        # fill the pipe.
        threading.Thread(target=_drain, args=(process, server), daemon=True).start()
        yield server
    finally:
        if server is not None:
            server.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()
        if owned:
            shutil.rmtree(root, ignore_errors=True)
