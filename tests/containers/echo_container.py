#!/usr/bin/env python3
"""A small SageMaker-contract container for berth's tests, run through `exec:`.

Started as `echo_container.py serve`; listens on SAGEMAKER_BIND_TO_PORT; answers
`GET /ping` and `POST /invocations` with a JSON description of itself and the request.

Behaviour switches, read from the environment (the container definition's `Environment`):
  ECHO_NAME            a label echoed back in every answer (tests set it per model)
  ECHO_EXIT_ON_START   exit with status 3 before listening
  ECHO_STDERR          write this text to stderr first (its log)
  ECHO_PING_FAIL       answer /ping with 500 forever
  ECHO_STARTUP_DELAY   seconds to wait before listening
  ECHO_STATUS          answer every invocation with this HTTP status
  ECHO_DELAY_MS        milliseconds to wait before answering an invocation
  ECHO_BURN_CPU        keep one core busy (a spinning child process) while serving
  ECHO_HOLD_MB         hold this many megabytes of resident memory while serving
  ECHO_HELPER          start a detached helper (its own session, forked twice, deaf to SIGTERM,
                       as daemons are) and write "echo_container: helper pid <pid>" to stderr
With SAGEMAKER_MULTI_MODEL=true it serves SageMaker's multi-model container API instead of
`POST /invocations`: `POST /models` ({"model_name", "url"}: reads `model.txt` in the url's
directory), `GET /models`, `GET`/`DELETE /models/<name>`, and `POST /models/<name>/invoke`,
answered as an invocation with the model's name and text.
Request bodies `crash` (exit at once, mid-request), `fail` (answer 500), `grow:<MB>` (take and
keep that many more megabytes of resident memory), `big:<bytes>` (answer with that many bytes),
`log:<KB>` (write that many kilobytes to stderr), `stream:<parts>:<ms>` (answer chunked: that many
JSON lines `{"token": "part <i>"}`, one chunk each, `ms` apart) and `stream-break:<parts>` (as
`stream`, then close the connection in the middle of the answer) act per request. Bodies over 1 MB are
echoed as their length only.
"""

import json
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GROWN = []  # memory taken by `grow:<MB>` requests, kept resident
LOADED = {}  # multi-model: name -> (url, text of its model.txt)


def model_file_text():
    path = os.path.join(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"), "model.txt")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        sys.stderr.write("echo_container: " + (fmt % args) + "\n")

    def answer(self, status, body, content_type="application/json", extra=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/models":
            self.answer(200, json.dumps({"models": [{"modelName": n, "modelUrl": u} for n, (u, _) in sorted(LOADED.items())]}))
        elif self.path.startswith("/models/"):
            name = self.path[len("/models/"):]
            if name in LOADED:
                self.answer(200, json.dumps({"modelName": name, "modelUrl": LOADED[name][0]}))
            else:
                self.answer(404, json.dumps({"message": f"Model {name} is not loaded"}))
        elif self.path != "/ping":
            self.answer(404, '{"error": "not found"}')
        elif os.environ.get("ECHO_PING_FAIL"):
            self.answer(500, '{"status": "unhealthy"}')
        else:
            self.answer(200, "")

    def do_DELETE(self):
        name = self.path[len("/models/"):] if self.path.startswith("/models/") else None
        if name in LOADED:
            del LOADED[name]
            self.answer(200, json.dumps({"message": f"Model {name} unloaded"}))
        else:
            self.answer(404, json.dumps({"message": f"Model {name} is not loaded"}))

    def load_model(self, body):
        req = json.loads(body)
        name, url = req["model_name"], req["url"]
        if name in LOADED:
            self.answer(409, json.dumps({"message": f"Model {name} is already loaded"}))
            return
        # Under kube_fake.py a mount path is a directory elsewhere (no mount namespace there).
        for path, local in json.loads(os.environ.get("KUBE_FAKE_MOUNTS", "{}")).items():
            if url.startswith(path + "/"):
                url = local + url[len(path):]
        try:
            with open(os.path.join(url, "model.txt"), encoding="utf-8") as f:
                LOADED[name] = (url, f.read().strip())
        except OSError as e:
            self.answer(400, json.dumps({"message": f"cannot load {url}: {e}"}))
            return
        self.answer(200, json.dumps({"message": f"Model {name} loaded"}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        multi = os.environ.get("SAGEMAKER_MULTI_MODEL") == "true"
        if multi and self.path == "/models":
            self.load_model(body)
            return
        model = None
        if multi and self.path.startswith("/models/") and self.path.endswith("/invoke"):
            model = self.path[len("/models/"):-len("/invoke")]
            if model not in LOADED:
                self.answer(404, json.dumps({"message": f"Model {model} is not loaded"}))
                return
        elif self.path != "/invocations" or multi:
            self.answer(404, '{"error": "not found"}')
            return
        if body == b"crash":
            sys.stderr.write("echo_container: crashing on request\n")
            sys.stderr.flush()
            os._exit(1)
        if body.startswith(b"grow:"):
            GROWN.append(b"\x01" * (int(body[5:]) * 1024 * 1024))
        if body.startswith(b"big:"):
            self.answer(200, b"b" * int(body[4:]), content_type="application/octet-stream")
            return
        if body.startswith(b"stream:") or body.startswith(b"stream-break:"):
            self.stream(body)
            return
        if body.startswith(b"log:"):
            line = b"x" * 1023 + b"\n"
            for _ in range(int(body[4:])):
                sys.stderr.buffer.write(line)
            sys.stderr.flush()
        delay = float(os.environ.get("ECHO_DELAY_MS") or 0)
        if delay:
            time.sleep(delay / 1000.0)
        status = int(os.environ.get("ECHO_STATUS") or 200)
        if body == b"fail":
            status = 500
        if status != 200:
            self.answer(status, "model failed on purpose", content_type="text/plain")
            return
        reply = {
            "name": os.environ.get("ECHO_NAME"),
            "pid": os.getpid(),
            "model_dir": os.environ.get("SM_MODEL_DIR"),
            "model_file": LOADED[model][1] if model else model_file_text(),
            "model": model,
            "content_type": self.headers.get("Content-Type"),
            "accept": self.headers.get("Accept"),
            "custom_attributes": self.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
            "inference_id": self.headers.get("X-Amzn-SageMaker-Inference-Id"),
            "worker_threads": os.environ.get("BERTH_WORKER_THREADS"),
            "instance_type": os.environ.get("BERTH_INSTANCE_TYPE"),
            "body": body.decode("utf-8", "replace") if len(body) <= 1024 * 1024 else None,
            "body_length": len(body),
            "environment": sorted(os.environ),
        }
        extra = {}
        if self.headers.get("X-Amzn-SageMaker-Custom-Attributes"):
            extra["X-Amzn-SageMaker-Custom-Attributes"] = "echoed"
        self.answer(200, json.dumps(reply), extra=extra)


    def stream(self, body):
        kind, _, rest = body.decode().partition(":")
        parts, _, ms = rest.partition(":")
        self.send_response(200)
        self.send_header("Content-Type", "application/jsonlines")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Amzn-SageMaker-Custom-Attributes", "streamed")
        self.end_headers()
        for i in range(int(parts)):
            line = json.dumps({"token": f"part {i}"}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(float(ms or 0) / 1000.0)
        if kind == "stream-break":
            self.wfile.write(b"40\r\nonly part of a chunk")
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def start_detached_helper():
    """A daemon-like helper: leaves the process group and session, forks again so that its
    parent is gone, ignores SIGTERM, and sleeps. Only something that tracks it finds it."""
    import signal

    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            sys.stderr.write(f"echo_container: helper pid {os.getpid()}\n")
            sys.stderr.flush()
            while True:
                time.sleep(3600)
        os._exit(0)
    os.wait()


def main():
    if len(sys.argv) < 2 or sys.argv[1] != "serve":
        sys.stderr.write("usage: echo_container.py serve\n")
        return 2
    if os.environ.get("ECHO_STDERR"):
        sys.stderr.write(os.environ["ECHO_STDERR"] + "\n")
        sys.stderr.flush()
    if os.environ.get("ECHO_EXIT_ON_START"):
        sys.stderr.write("echo_container: exiting on start as asked\n")
        return 3
    time.sleep(float(os.environ.get("ECHO_STARTUP_DELAY") or 0))
    if os.environ.get("ECHO_BURN_CPU"):
        # A child in the same process group, as real servers' worker processes are.
        parent = os.getpid()
        if os.fork() == 0:
            while os.getppid() == parent:  # ends with its parent, however that ends
                pass
            os._exit(0)
    held = b"\x01" * (int(os.environ.get("ECHO_HOLD_MB") or 0) * 1024 * 1024)  # noqa: F841 (kept resident)
    if os.environ.get("ECHO_HELPER"):
        start_detached_helper()
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"echo_container: listening on {port}\n")
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
