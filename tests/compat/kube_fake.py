#!/usr/bin/env python3
"""A stand-in for a Kubernetes API server and one node's kubelet, for testing berth's Kubernetes
backend where no cluster can run.

The API half answers what berth's backend calls, with the shapes and codes of the Kubernetes API
reference (core/v1 Pod, apps/v1 Deployment, meta/v1 Status and WatchEvent, policy/v1 Eviction):

  GET    /api/v1/namespaces/{ns}/pods                 list (labelSelector, limit, continue)
  GET    /api/v1/namespaces/{ns}/pods?watch=true      watch from resourceVersion; a version older
                                                      than the last compaction gets an ERROR event
                                                      with a 410 Expired Status, as etcd's
                                                      compaction gives
  POST   /api/v1/namespaces/{ns}/pods                 create (409 AlreadyExists, 422 Invalid)
  GET    /api/v1/namespaces/{ns}/pods/{name}          get (404 NotFound)
  DELETE /api/v1/namespaces/{ns}/pods/{name}          graceful delete (deletionTimestamp, SIGTERM,
                                                      SIGKILL after gracePeriodSeconds)
  GET    /api/v1/namespaces/{ns}/pods/{name}/log      container=, follow=, tailLines=
  POST   /api/v1/namespaces/{ns}/pods/{name}/eviction the Eviction API (a graceful delete)
  GET    /apis/apps/v1/namespaces/{ns}/deployments/{name}

The kubelet half runs each pod on this machine: it schedules against one node's allocatable CPU
and memory (Unschedulable otherwise), "pulls" only the images it is told of (ErrImagePull, then
ImagePullBackOff, for others), runs the init containers then the serving container (and any
sidecars) as real processes (their emptyDir volumes are directories here, and mount paths in
their arguments and environment are rewritten to them, since a process here has no mount
namespace; KUBE_FAKE_MOUNTS tells them the mounts), gives each pod its own loopback address
(127.77.x.y) whose port 8080 (and each sidecar's declared port) it forwards to the process, probes
readiness with the pod's httpGet probe, and reports exits (exit status 137 from SIGKILL it did
not send as OOMKilled) and node-pressure evictions as a kubelet does.

Control routes for tests: POST /fake/expire (compacts: every older resourceVersion is gone, open
watches end), POST /fake/evict/{ns}/{name} (a node-pressure eviction), GET /fake/requests (what
was called).

Usage: kube_fake.py --images IMAGES.json [--berth-bin PATH] [--cpu 8] [--memory-mib 32768]
prints "kube-fake listening on http://127.0.0.1:PORT" and serves until SIGTERM.
IMAGES.json maps an image reference to {"argv": [...]} (run with the container's args appended)
or {"berth": true} (berth's own image: the berth binary).
"""

import argparse
import copy
import datetime
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Condition()
PODS = {}  # (namespace, name) -> pod object
EVENTS = []  # (resourceVersion, namespace, type, object)
STATE = {"rv": 1, "compacted": 0}
REQUESTS = []  # "METHOD path"
PROCS = {}  # (namespace, name) -> Pod runtime
ADDRESSES = itertools.count(2)
SETTINGS = {}
DEPLOYMENTS = {}  # (namespace, name) -> deployment object
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def record(ns, kind, pod):
    """Bumps the resourceVersion, stamps `pod` with it and files the watch event (under LOCK)."""
    STATE["rv"] += 1
    pod["metadata"]["resourceVersion"] = str(STATE["rv"])
    EVENTS.append((STATE["rv"], ns, kind, copy.deepcopy(pod)))
    del EVENTS[:-5000]
    LOCK.notify_all()


def matches(pod, selector):
    labels = pod["metadata"].get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term.strip() not in labels:
            return False
    return True


def condition(pod, kind, value, reason=None, message=None):
    conditions = pod["status"].setdefault("conditions", [])
    conditions[:] = [c for c in conditions if c["type"] != kind]
    c = {"type": kind, "status": value, "lastTransitionTime": now()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    conditions.append(c)


def quantity(text):
    """A resource quantity in base units (cores, bytes)."""
    text = str(text)
    for suffix, factor in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("m", 0.001), ("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def requests_of(pod):
    total = {"cpu": 0.0, "memory": 0.0}
    for c in pod["spec"].get("containers", []):
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            if k in total:
                total[k] += quantity(v)
    return total


def terminal(pod):
    return pod["status"].get("phase") in ("Succeeded", "Failed")


class PodRuntime:
    """What the kubelet keeps of one pod it runs."""

    def __init__(self, ns, name):
        self.ns, self.name = ns, name
        self.dir = tempfile.mkdtemp(prefix=f"kube-fake-{name}-")
        self.proc = None
        self.killed_by_kubelet = False
        self.listener = None
        self.sidecars = []  # (process, listener) of the pod's other containers
        self.ip = None
        self.logs = {}  # container -> path
        self.done = threading.Event()


def update(ns, name, change):
    """Applies `change(pod)` to the stored pod and files a MODIFIED event; False when it is gone."""
    with LOCK:
        pod = PODS.get((ns, name))
        if pod is None:
            return False
        change(pod)
        record(ns, "MODIFIED", pod)
        return True


def container_status(c, state, ready=False, restarts=0, image_id=""):
    return {"name": c["name"], "image": c.get("image", ""), "imageID": image_id, "ready": ready, "restartCount": restarts, "started": "running" in state, "state": state}


def rewrite(value, mounts):
    for path, local in mounts.items():
        if value == path or value.startswith(path + "/"):
            return local + value[len(path):]
    return value


def forward(listener, port, rt):
    """The pod's address: port 8080 of its own loopback address, forwarded to the process."""

    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    while not rt.done.is_set():
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_container(rt, c, mounts, port=None):
    image = SETTINGS["images"].get(c.get("image"))
    # The image's own program is a path on this machine; only the pod's arguments name mounts.
    program = [SETTINGS["berth_bin"]] if image.get("berth") else image["argv"]
    argv = [*program, *(rewrite(a, mounts) for a in [*(c.get("command") or []), *(c.get("args") or [])])]
    # The image's own environment (its Dockerfile's ENV), then the container's.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": rt.dir, **image.get("env", {})}
    for e in c.get("env") or []:
        env[e["name"]] = rewrite(e.get("value", ""), mounts)
    for source in c.get("envFrom") or []:
        secret = (source.get("secretRef") or {}).get("name")
        env.update(SETTINGS["secrets"].get(secret, {}))
    # Paths the pod's containers are sent at run time (a multi-model container's POST /models)
    # cannot be rewritten: the mounts are told, for the test images that read such paths.
    env["KUBE_FAKE_MOUNTS"] = json.dumps(mounts)
    if "/opt/ml/model" in mounts:
        env.setdefault("SM_MODEL_DIR", mounts["/opt/ml/model"])
    if port:
        env["SAGEMAKER_BIND_TO_PORT"] = str(port)
        env["BERTH_WORKER_BIND"] = "127.0.0.1"
    log_path = os.path.join(rt.dir, f"{c['name']}.log")
    rt.logs[c["name"]] = log_path
    log = open(log_path, "ab")
    return subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=rt.dir, env=env, start_new_session=True)


def kubelet(ns, name):
    """Runs one pod from scheduling to its end."""
    rt = PROCS[(ns, name)]
    # Scheduling: room on the one node, retried as pods go.
    while True:
        with LOCK:
            pod = PODS.get((ns, name))
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                rt.done.set()
                return
            used = {"cpu": 0.0, "memory": 0.0}
            for (n2, p2), other in PODS.items():
                if other["spec"].get("nodeName") and not terminal(other) and (n2, p2) != (ns, name):
                    for k, v in requests_of(other).items():
                        used[k] += v
            want = requests_of(pod)
            short = [k for k in ("cpu", "memory") if used[k] + want[k] > SETTINGS["allocatable"][k]]
            if not short:
                pod["spec"]["nodeName"] = "fake-node-1"
                pod["status"]["hostIP"] = "127.0.0.1"
                condition(pod, "PodScheduled", "True")
                record(ns, "MODIFIED", pod)
                break
            message = f"0/1 nodes are available: 1 Insufficient {short[0]}. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
            if not any(c.get("message") == message for c in pod["status"].get("conditions", [])):
                condition(pod, "PodScheduled", "False", "Unschedulable", message)
                record(ns, "MODIFIED", pod)
            LOCK.wait(0.5)
    spec = pod["spec"]
    mounts = {}
    volumes = {v["name"]: os.path.join(rt.dir, "volumes", v["name"]) for v in spec.get("volumes") or []}
    for path in volumes.values():
        os.makedirs(path, mode=0o777, exist_ok=True)
    containers = [*(spec.get("initContainers") or []), *spec["containers"]]
    for c in containers:
        for m in c.get("volumeMounts") or []:
            mounts[m["mountPath"]] = volumes[m["name"]]
    # Images: only those the fake was told of can be "pulled".
    for c in containers:
        if c.get("image") not in SETTINGS["images"]:
            reference = c.get("image")
            field = "initContainerStatuses" if c in (spec.get("initContainers") or []) else "containerStatuses"
            pulled = f'failed to pull and unpack image "{reference}": failed to resolve reference "{reference}": pull access denied, repository does not exist or may require authorization'
            for reason, message in (("ErrImagePull", pulled), ("ImagePullBackOff", f'Back-off pulling image "{reference}"')):
                def waiting(p, reason=reason, message=message, c=c, field=field):
                    p["status"][field] = [container_status(c, {"waiting": {"reason": reason, "message": message}})]

                if not update(ns, name, waiting):
                    break
                if rt.done.wait(1.0):
                    break
            rt.done.wait()
            return
    for c in spec.get("initContainers") or []:
        if rt.done.is_set():
            return
        update(ns, name, lambda p, c=c: p["status"].__setitem__("initContainerStatuses", [container_status(c, {"running": {"startedAt": now()}})]))
        rt.proc = run_container(rt, c, mounts)
        code = rt.proc.wait()
        state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": now(), "finishedAt": now()}}
        update(ns, name, lambda p, c=c, state=state: p["status"].__setitem__("initContainerStatuses", [container_status(c, state)]))
        if code != 0:
            update(ns, name, lambda p: (p["status"].__setitem__("phase", "Failed"), condition(p, "Initialized", "False", "PodFailed")))
            rt.done.wait()
            return
    if rt.done.is_set():
        return
    serve = spec["containers"][0]
    with LOCK:
        n = next(ADDRESSES)
        rt.ip = f"127.77.{n // 250}.{n % 250 + 2}"
    port = free_port()
    rt.listener = socket.socket()
    rt.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rt.listener.bind((rt.ip, 8080))
    rt.listener.listen(128)
    threading.Thread(target=forward, args=(rt.listener, port, rt), daemon=True).start()
    rt.proc = run_container(rt, serve, mounts, port)
    # The pod's other containers (sidecars): each declared port of the pod's address forwarded too.
    for c in spec["containers"][1:]:
        declared = [p["containerPort"] for p in c.get("ports") or []]
        listener, local = None, None
        if declared:
            local = free_port()
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((rt.ip, declared[0]))
            listener.listen(128)
            threading.Thread(target=forward, args=(listener, local, rt), daemon=True).start()
        rt.sidecars.append((run_container(rt, c, mounts, local), listener))
    started = now()

    def running(p):
        p["status"].update({"phase": "Running", "podIP": rt.ip, "podIPs": [{"ip": rt.ip}], "startTime": started})
        condition(p, "Initialized", "True")
        condition(p, "ContainersReady", "False", "ContainersNotReady")
        condition(p, "Ready", "False", "ContainersNotReady")
        p["status"]["containerStatuses"] = [container_status(serve, {"running": {"startedAt": started}}, image_id=f"{serve['image']}@sha256:{'0' * 64}")]

    update(ns, name, running)
    probe = (serve.get("readinessProbe") or {}).get("httpGet") or {}
    ready = False
    while rt.proc.poll() is None and not rt.done.is_set():
        ok = False
        if probe:
            try:
                with urllib.request.urlopen(f"http://{rt.ip}:{probe.get('port', 8080)}{probe.get('path', '/')}", timeout=1) as r:
                    ok = 200 <= r.status < 400
            except Exception:
                ok = False
        if ok != ready:
            ready = ok
            value = "True" if ok else "False"

            def readiness(p, value=value):
                condition(p, "ContainersReady", value)
                condition(p, "Ready", value)
                for s in p["status"].get("containerStatuses", []):
                    s["ready"] = value == "True"

            update(ns, name, readiness)
        rt.done.wait(0.3)
    code = rt.proc.wait()
    rt.listener.close()
    for sidecar, _ in rt.sidecars:
        if sidecar.poll() is None:
            sidecar.terminate()
    if rt.killed_by_kubelet:
        return  # deleted or evicted: the deleter says what became of the pod
    if code < 0:
        code = 128 - code
    reason = "OOMKilled" if code == 137 else ("Completed" if code == 0 else "Error")

    def ended(p):
        p["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
        condition(p, "Ready", "False", "PodFailed")
        condition(p, "ContainersReady", "False", "PodFailed")
        p["status"]["containerStatuses"] = [
            container_status(serve, {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()}})
        ]

    update(ns, name, ended)


def stop_pod(rt, grace):
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    rt.killed_by_kubelet = True
    rt.done.set()
    proc = rt.proc
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL if grace == 0 else signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if rt.listener:
        rt.listener.close()
    for sidecar, listener in rt.sidecars:
        if sidecar.poll() is None:
            os.killpg(sidecar.pid, signal.SIGKILL)
            sidecar.wait()
        if listener:
            listener.close()


def delete_pod(ns, name, grace):
    with LOCK:
        pod = PODS.get((ns, name))
        if pod is None:
            return None
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if not pod["metadata"].get("deletionTimestamp"):
            pod["metadata"]["deletionTimestamp"] = now()
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            record(ns, "MODIFIED", pod)
        answer = copy.deepcopy(pod)
    rt = PROCS.get((ns, name))

    def finish():
        if rt:
            stop_pod(rt, grace)
        with LOCK:
            gone = PODS.pop((ns, name), None)
            if gone is not None:
                record(ns, "DELETED", gone)

    threading.Thread(target=finish, daemon=True).start()
    return answer


def evict(ns, name):
    """A node-pressure eviction: the kubelet kills the pod and marks it Failed/Evicted."""
    rt = PROCS.get((ns, name))
    if rt:
        stop_pod(rt, 0)

    def evicted(p):
        p["status"].update({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi. "})
        condition(p, "Ready", "False", "PodFailed")
        for s in p["status"].get("containerStatuses", []):
            s["ready"] = False
            s["state"] = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown", "message": "The container could not be located when the pod was terminated"}}

    return update(ns, name, evicted)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def route(self, method):
        url = urllib.parse.urlparse(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        with LOCK:
            REQUESTS.append(f"{method} {url.path}{'?watch' if query.get('watch') in ('true', '1') else ''}")
        try:
            if parts[:1] == ["fake"]:
                return self.control(method, parts[1:])
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "pods":
                ns = parts[3]
                if len(parts) == 5:
                    if method == "GET":
                        return self.watch(ns, query) if query.get("watch") in ("true", "1") else self.list(ns, query)
                    if method == "POST":
                        return self.create(ns, self.body())
                if len(parts) == 6:
                    if method == "GET":
                        pod = PODS.get((ns, parts[5]))
                        return self.send_json(200, pod) if pod else self.not_found(parts[5])
                    if method == "DELETE":
                        grace = self.body().get("gracePeriodSeconds")
                        pod = delete_pod(ns, parts[5], grace)
                        return self.send_json(200, pod) if pod else self.not_found(parts[5])
                if len(parts) == 7 and parts[6] == "log" and method == "GET":
                    return self.log(ns, parts[5], query)
                if len(parts) == 7 and parts[6] == "eviction" and method == "POST":
                    if delete_pod(ns, parts[5], None) is None:
                        return self.not_found(parts[5])
                    return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
            if parts[:4] == ["apis", "apps", "v1", "namespaces"] and len(parts) == 7 and parts[5] == "deployments" and method == "GET":
                d = DEPLOYMENTS.get((parts[4], parts[6]))
                if d:
                    return self.send_json(200, d)
                return self.send_json(404, status(404, "NotFound", f'deployments.apps "{parts[6]}" not found', {"name": parts[6], "group": "apps", "kind": "deployments"}))
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def not_found(self, name):
        self.send_json(404, status(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}))

    def control(self, method, parts):
        if parts == ["expire"] and method == "POST":
            with LOCK:
                STATE["rv"] += 1
                STATE["compacted"] = STATE["rv"]
                LOCK.notify_all()
            return self.send_json(200, {"compacted": STATE["compacted"]})
        if parts[:1] == ["evict"] and len(parts) == 3 and method == "POST":
            return self.send_json(200 if evict(parts[1], parts[2]) else 404, {})
        if parts == ["requests"]:
            with LOCK:
                return self.send_json(200, list(REQUESTS))
        if parts == ["deployment"] and method == "POST":
            d = self.body()
            d.setdefault("metadata", {})["uid"] = str(uuid.uuid4())
            DEPLOYMENTS[(d["metadata"]["namespace"], d["metadata"]["name"])] = d
            return self.send_json(201, d)
        return self.send_json(404, {})

    def list(self, ns, query):
        with LOCK:
            items = sorted((p for (n, _), p in PODS.items() if n == ns and matches(p, query.get("labelSelector"))), key=lambda p: p["metadata"]["name"])
            rv = STATE["rv"]
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        meta = {"resourceVersion": str(rv)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        self.send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page})

    def chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def start_stream(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def watch(self, ns, query):
        since = int(query.get("resourceVersion") or 0)
        timeout = min(int(query.get("timeoutSeconds") or 300), 300)
        deadline = time.time() + timeout
        self.start_stream("application/json")
        with LOCK:
            compacted = STATE["compacted"]
        if since and since < compacted:
            event = {"type": "ERROR", "object": status(410, "Expired", f"too old resource version: {since} ({compacted})")}
            self.chunk(json.dumps(event).encode() + b"\n")
            return self.chunk(b"")
        if not since:
            with LOCK:
                since = STATE["rv"]
                initial = [copy.deepcopy(p) for (n, _), p in PODS.items() if n == ns and matches(p, query.get("labelSelector"))]
            for p in initial:
                self.chunk(json.dumps({"type": "ADDED", "object": p}).encode() + b"\n")
        while time.time() < deadline:
            with LOCK:
                if STATE["compacted"] > compacted:
                    break  # compaction ends open watches; the client watches again
                pending = [(rv, kind, obj) for rv, n, kind, obj in EVENTS if rv > since and n == ns]
                if not pending:
                    LOCK.wait(1.0)
                    continue
            for rv, kind, obj in pending:
                since = rv
                if matches(obj, query.get("labelSelector")):
                    self.chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
        self.chunk(b"")

    def create(self, ns, pod):
        name = (pod.get("metadata") or {}).get("name", "")
        if not NAME.match(name) or len(name) > 253:
            return self.send_json(
                422,
                status(422, "Invalid", f'Pod "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\'', {"name": name, "kind": "Pod"}),
            )
        if not pod.get("spec", {}).get("containers"):
            return self.send_json(422, status(422, "Invalid", f'Pod "{name}" is invalid: spec.containers: Required value', {"name": name, "kind": "Pod"}))
        with LOCK:
            if (ns, name) in PODS:
                return self.send_json(409, status(409, "AlreadyExists", f'pods "{name}" already exists', {"name": name, "kind": "pods"}))
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
            pod["metadata"].update({"namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": now()})
            pod["status"] = {"phase": "Pending", "qosClass": "Guaranteed"}
            PODS[(ns, name)] = pod
            PROCS[(ns, name)] = PodRuntime(ns, name)
            record(ns, "ADDED", pod)
            answer = copy.deepcopy(pod)
        threading.Thread(target=kubelet, args=(ns, name), daemon=True).start()
        self.send_json(201, answer)

    def log(self, ns, name, query):
        rt = PROCS.get((ns, name))
        if (ns, name) not in PODS or rt is None:
            return self.not_found(name)
        container = query.get("container") or PODS[(ns, name)]["spec"]["containers"][0]["name"]
        path = rt.logs.get(container)
        if path is None:
            return self.send_json(400, status(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: PodInitializing'))
        if query.get("follow") not in ("true", "1"):
            with open(path, "rb") as f:
                data = f.read()
            if query.get("tailLines"):
                data = b"".join(data.splitlines(keepends=True)[-int(query["tailLines"]):])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        self.start_stream("text/plain")
        with open(path, "rb") as f:
            while True:
                data = f.read(65536)
                if data:
                    self.chunk(data)
                    continue
                if rt.done.is_set() or (rt.proc and rt.proc.poll() is not None):
                    break
                time.sleep(0.1)
        self.chunk(b"")

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", required=True)
    parser.add_argument("--berth-bin", default="berth")
    parser.add_argument("--secrets", default=None, help="JSON: Secret name -> its keys and values")
    parser.add_argument("--cpu", type=float, default=8)
    parser.add_argument("--memory-mib", type=float, default=32768)
    args = parser.parse_args()
    SETTINGS.update(
        images=json.load(open(args.images)),
        berth_bin=args.berth_bin,
        secrets=json.load(open(args.secrets)) if args.secrets else {},
        allocatable={"cpu": args.cpu, "memory": args.memory_mib * (1 << 20)},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def stop(*_):
        for rt in list(PROCS.values()):
            rt.killed_by_kubelet = True
            rt.done.set()
            if rt.proc and rt.proc.poll() is None:
                try:
                    os.killpg(rt.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"kube-fake listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
