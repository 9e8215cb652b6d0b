"""Crash consistency: `kill -9` berth again and again while a client creates, updates and deletes
resources and shifts weights, then check that every write berth acknowledged is there after
the restart, and count the requests that failed while berth was up.

Run by bench/crash_consistency.sh; prints one JSON line of results. Traffic goes to 127.0.0.1
only; the script stops by itself after the given number of kills and ends only the berth it
started (by PID)."""

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = pathlib.Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests" / "containers" / "echo_container.py"
ROLE = "arn:aws:iam::123456789012:role/crash"


class Server:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir, self.port, self.proc = binary, data_dir, 0, None

    def start(self):
        env = {**os.environ, "BERTH_EXEC_ROOTS": str(ECHO.parent)}
        args = [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir), "--drain-timeout", "1"]
        for _ in range(100):
            log = open(self.data_dir.parent / "server.log", "ab")
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env)
            line = self.proc.stdout.readline().decode()
            if line.startswith("berth listening on "):
                self.port = int(line.rsplit(":", 1)[1])
                return
            self.proc.wait()
            time.sleep(0.1)  # the port is still being released
        raise RuntimeError("berth did not start again")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Journal:
    """What the client was told succeeded: the last acknowledged state of each resource.
    A request that got no answer makes its resource's state unknown."""

    def __init__(self):
        self.state = {}  # (kind, name) -> dict of expected facts, or None (deleted), or "unknown"
        self.history = {}  # (kind, name) -> what happened to it, for the report
        self.acknowledged = 0
        self.lock = threading.Lock()

    def ack(self, key, value):
        with self.lock:
            self.history.setdefault(key, []).append(f"{time.time():.3f} ack {value}")
            self.state[key] = value
            self.acknowledged += 1

    def unknown(self, key):
        with self.lock:
            self.state[key] = "unknown"

    def begin(self, key):
        """A write is under way: its resource's state is unknown until it is answered."""
        with self.lock:
            self.previous = (key, self.state.get(key, "absent"))
            self.history.setdefault(key, []).append(f"{time.time():.3f} begin")
            self.state[key] = "unknown"

    def refused(self):
        """The write under way was refused: the resource is as it was."""
        with self.lock:
            key, before = self.previous
            self.history.setdefault(key, []).append(f"{time.time():.3f} refused, back to {before}")
            if before == "absent":
                self.state.pop(key, None)
            else:
                self.state[key] = before


def client(server, service):
    # One attempt: a request retried after a kill could apply twice (a delete, then "not found").
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10)
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x", config=cfg)


def workload(server, journal, stop, windows, failures, rng):
    """Random control-plane writes, each recorded once acknowledged."""
    models, configs, endpoints = [], [], []
    n = 0
    while not stop.is_set():
        n += 1
        sm = client(server, "sagemaker")
        key = None
        op = rng.choice(["model", "model", "config", "endpoint", "weights", "weights", "weights", "tag", "delete_model", "delete_endpoint"])
        key = None
        try:
            if op == "model":
                name = f"m{n}"
                key = ("model", name)
                journal.begin(key)  # unknown until the answer says otherwise
                sm.create_model(ModelName=name, PrimaryContainer={"Image": f"exec:{ECHO}", "Environment": {"ECHO_NAME": name}}, ExecutionRoleArn=ROLE)
                journal.ack(key, {})
                models.append(name)
            elif op == "config" and models:
                name = f"c{n}"
                key = ("config", name)
                journal.begin(key)  # unknown until the answer says otherwise
                variants = [{"VariantName": v, "ModelName": rng.choice(models), "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium", "InitialVariantWeight": 1.0}
                            for v in ("A", "B")]
                sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
                journal.ack(key, {})
                configs.append(name)
            elif op == "endpoint" and configs and len(endpoints) < 3:
                name = f"e{n}"
                key = ("endpoint", name)
                journal.begin(key)  # unknown until the answer says otherwise
                sm.create_endpoint(EndpointName=name, EndpointConfigName=rng.choice(configs))
                journal.ack(key, {"weights": {"A": 1.0, "B": 1.0}})
                endpoints.append(name)
            elif op == "weights" and endpoints:
                name = rng.choice(endpoints)
                key = ("endpoint", name)
                journal.begin(key)  # unknown until the answer says otherwise
                w = {"A": float(rng.randint(0, 9)), "B": float(rng.randint(1, 9))}
                sm.update_endpoint_weights_and_capacities(
                    EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": v, "DesiredWeight": x} for v, x in w.items()])
                journal.ack(key, {"weights": w})
            elif op == "tag" and models:
                name = rng.choice(models)
                key = ("tag", name)
                journal.begin(key)  # unknown until the answer says otherwise
                value = str(n)
                sm.add_tags(ResourceArn=f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}", Tags=[{"Key": "k", "Value": value}])
                journal.ack(key, {"value": value})
            elif op == "delete_model" and models:
                name = models.pop(rng.randrange(len(models)))
                key = ("model", name)
                journal.begin(key)  # unknown until the answer says otherwise
                journal.unknown(("tag", name))  # goes with the model, whether or not the answer arrives
                sm.delete_model(ModelName=name)
                journal.ack(key, None)
                journal.ack(("tag", name), None)
            elif op == "delete_endpoint" and endpoints:
                name = endpoints.pop(rng.randrange(len(endpoints)))
                key = ("endpoint", name)
                journal.begin(key)  # unknown until the answer says otherwise
                sm.delete_endpoint(EndpointName=name)
                journal.ack(key, None)
        except ClientError as e:
            if key:
                journal.refused()
            # A refusal (4xx: an endpoint still in progress, a config whose model was deleted)
            # is an answer; a 5xx while berth was up is a failure.
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            if status >= 500 and not in_window(windows, time.time()):
                failures.append(f"{op}: {status} {e.response['Error']['Code']} {e.response['Error']['Message'][:120]}")
        except Exception as e:  # noqa: no answer (connection refused, reset, timed out): the write's fate is unknown
            if not in_window(windows, time.time()):
                failures.append(f"{op}: {e!r}"[:200])
            time.sleep(0.05)


def in_window(windows, t, grace=1.0):
    return any(start - grace <= t <= (end or float("inf")) + grace for start, end in windows)


def verify(server, journal):
    """Every acknowledged write, as last acknowledged, after the final restart."""
    sm = client(server, "sagemaker")
    missing = []
    for (kind, name), want in sorted(journal.state.items()):
        if want == "unknown":
            continue
        try:
            if kind == "model":
                sm.describe_model(ModelName=name)
                found = {}
            elif kind == "config":
                sm.describe_endpoint_config(EndpointConfigName=name)
                found = {}
            elif kind == "endpoint":
                d = sm.describe_endpoint(EndpointName=name)
                if d["EndpointStatus"] == "Deleting":
                    found = None
                else:
                    found = {"weights": {v["VariantName"]: v.get("DesiredWeight", v.get("CurrentWeight")) for v in d.get("ProductionVariants", [])}}
            elif kind == "tag":
                tags = sm.list_tags(ResourceArn=f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}")["Tags"]
                found = {"value": next((t["Value"] for t in tags if t["Key"] == "k"), None)}
        except ClientError as e:
            found, why = None, e.response["Error"]["Message"][:100]
        else:
            why = ""
        if want is None and found is not None and kind != "tag":
            missing.append(f"{kind} {name}: deleted, but still there")
        elif want is not None and found is None:
            missing.append(f"{kind} {name}: acknowledged, but gone ({why}); history: {journal.history.get((kind, name))}")
        elif want is not None and kind == "endpoint" and found["weights"] and found["weights"] != want["weights"]:
            missing.append(f"endpoint {name}: weights {found['weights']} instead of {want['weights']}")
        elif want is not None and kind == "tag" and found != want:
            missing.append(f"tag of {name}: {found} instead of {want}")
    return missing


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--berth", required=True)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="berth-crash-") as tmp:
        server = Server(args.berth, pathlib.Path(tmp) / "data")
        server.start()
        journal, stop, windows, failures = Journal(), threading.Event(), [], []
        worker = threading.Thread(target=workload, args=(server, journal, stop, windows, failures, rng), daemon=True)
        worker.start()
        began = time.time()
        for _ in range(args.kills):
            time.sleep(rng.uniform(0.5, 2.0))
            window = [time.time(), None]
            windows.append(window)
            server.kill()
            server.start()
            window[1] = time.time()
        time.sleep(1.0)
        stop.set()
        worker.join(timeout=30)
        server.kill()
        server.start()
        missing = verify(server, journal)
        if missing:
            import shutil

            shutil.copy(server.data_dir.parent / "server.log", pathlib.Path(tempfile.gettempdir()) / "berth-crash-consistency-server.log")
        server.proc.terminate()
        server.proc.wait(timeout=60)
        print(json.dumps({
            "kills": args.kills,
            "seconds": round(time.time() - began, 1),
            "acknowledged_writes": journal.acknowledged,
            "resources_checked": sum(1 for v in journal.state.values() if v != "unknown"),
            "missing_after_restart": len(missing),
            "failed_outside_kill_windows": len(failures),
            "details": (missing + failures)[:20],
            "kill_windows": [(round(a, 3), round(b, 3)) for a, b in windows] if missing else [],
        }))
        return 0 if not missing and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
