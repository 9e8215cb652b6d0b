#!/usr/bin/env python3
"""berth on a PostgreSQL store, one server beside three (the figures are for regressions: one
machine cannot show scaling). Run by bench/cluster.sh, which builds berth and starts PostgreSQL.

  cluster.py BERTH ADMIN_URL WORKDIR SECONDS

Prints a Markdown report: control-plane writes/s (4 clients) and invocation req/s (wrk) through
one server and through the leader and a standby of three; the time from a kill -9 of the leader
to the next leader and to the first invocation answered again through a standby; and how long a
weight change made through one standby takes to steer invocations through another (p50/p99).
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from sagemaker_call import call  # noqa: E402

BERTH, ADMIN, WORK, SECS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE = "arn:aws:iam::123456789012:role/bench"
databases = iter(range(1000))


class Server:
    def __init__(self, name, store):
        self.name, self.store, self.proc, self.url = name, store, None, None

    def start(self):
        data = os.path.join(WORK, self.name)
        env = {**os.environ, "BERTH_EXEC_ROOTS": os.path.join(ROOT, "bench")}
        args = [BERTH, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--store", self.store, "--node-name", self.name]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(data + ".log", "ab"), env=env)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("berth listening on "), line
        self.url = line.split()[-1]
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def new_store():
    name = f"berth_bench_{os.getpid()}_{next(databases)}"
    subprocess.run(["psql", ADMIN, "-qc", f"CREATE DATABASE {name}"], check=True)
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def leader(store, not_=None):
    out = subprocess.run([BERTH, "nodes", "--json", "--store", store], check=True, capture_output=True, text=True).stdout
    names = [n["Name"] for n in json.loads(out)["Nodes"] if n["Leader"] and n["Name"] != not_]
    return names[0] if names else None


def invoke(url, endpoint="bench"):
    req = urllib.request.Request(f"{url}/endpoints/{endpoint}/invocations", data=b"1,2", headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("x-amzn-invoked-production-variant")


def deploy(url):
    for variant in ("A", "B"):
        call(url, "CreateModel", {"ModelName": f"bench-{variant}", "ExecutionRoleArn": ROLE,
                                  "PrimaryContainer": {"Image": f"exec:{ROOT}/bench/nginx_container.sh"}})
    variants = [{"VariantName": v, "ModelName": f"bench-{v}", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
                 "InitialVariantWeight": 1.0} for v in ("A", "B")]
    call(url, "CreateEndpointConfig", {"EndpointConfigName": "bench", "ProductionVariants": variants})
    call(url, "CreateEndpoint", {"EndpointName": "bench", "EndpointConfigName": "bench"})
    deadline = time.time() + 120
    while call(url, "DescribeEndpoint", {"EndpointName": "bench"})["EndpointStatus"] != "InService":
        assert time.time() < deadline, "the bench endpoint did not come up"
        time.sleep(0.1)


def writes_per_second(url, clients=4):
    done, stop = [0] * clients, threading.Event()

    def client(i):
        n = 0
        while not stop.is_set():
            call(url, "CreateModel", {"ModelName": f"w-{os.getpid()}-{i}-{n}-{time.monotonic_ns()}", "ExecutionRoleArn": ROLE,
                                      "PrimaryContainer": {"Image": f"exec:{ROOT}/bench/nginx_container.sh"}})
            n += 1
            done[i] = n

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    start = time.time()
    for t in threads:
        t.start()
    time.sleep(SECS)
    stop.set()
    for t in threads:
        t.join()
    return sum(done) / (time.time() - start)


def wrk(url):
    script = os.path.join(WORK, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = "1,2"\nwrk.headers["Content-Type"] = "text/csv"\n')
    target = f"{url}/endpoints/bench/invocations"
    subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", script, target], check=True, capture_output=True)
    one = subprocess.run(["wrk", "-t1", "-c1", f"-d{SECS}s", "--latency", "-s", script, target], check=True, capture_output=True, text=True).stdout
    many = subprocess.run(["wrk", "-t2", "-c16", f"-d{SECS}s", "-s", script, target], check=True, capture_output=True, text=True).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", one, re.M).group(1)
    rps = lambda out: float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))  # noqa: E731
    errors = "Non-2xx" in one + many or "Socket errors" in one + many
    return p50, rps(one), rps(many), errors


def until(check, timeout=60):
    start = time.time()
    while time.time() - start < timeout:
        try:
            if check():
                return time.time() - start
        except (urllib.error.URLError, OSError, subprocess.CalledProcessError):
            pass
        time.sleep(0.01)
    raise AssertionError("timed out")


def main():
    rows = []
    # One server on the store.
    store = new_store()
    one = Server("single", store).start()
    deploy(one.url)
    rows.append(("1 server", *wrk(one.url), writes_per_second(one.url)))
    one.stop()

    # Three servers on another store.
    store = new_store()
    servers = {n: Server(n, store).start() for n in ("n1", "n2", "n3")}
    first = leader(store)
    deploy(servers[first].url)
    standbys = [s for n, s in servers.items() if n != first]
    rows.append(("3 servers, through the leader", *wrk(servers[first].url), writes_per_second(servers[first].url)))
    rows.append(("3 servers, through a standby", *wrk(standbys[0].url), writes_per_second(standbys[0].url)))

    # Weight changes through one standby, seen through another.
    delays = []
    for i in range(20):
        to = "A" if i % 2 == 0 else "B"
        weights = [{"VariantName": v, "DesiredWeight": 1.0 if v == to else 0.0} for v in ("A", "B")]
        call(standbys[0].url, "UpdateEndpointWeightsAndCapacities", {"EndpointName": "bench", "DesiredWeightsAndCapacities": weights})
        acknowledged = time.time()
        until(lambda: invoke(standbys[1].url) == to)
        delays.append(time.time() - acknowledged)
        time.sleep(0.05)

    # Failovers: kill -9 the leader, time the next leader and the first answer through a standby.
    failovers = []
    for _ in range(5):
        current = leader(store)
        survivor = next(s for n, s in servers.items() if n != current)
        servers[current].kill()
        to_leader = until(lambda: leader(store, not_=current) is not None)
        start = time.time()
        until(lambda: invoke(survivor.url) is not None, timeout=120)
        failovers.append((to_leader, to_leader + time.time() - start))
        servers[current].start()
        time.sleep(1)
    for s in servers.values():
        s.stop()

    print("| path | p50 c=1 | req/s c=1 | req/s c=16 | CreateModel/s (4 clients) |")
    print("|---|---|---|---|---|")
    for name, p50, rps1, rps16, errors, writes in rows:
        print(f"| {name} | {p50} | {rps1:,.0f} | {rps16:,.0f}{' (errors)' if errors else ''} | {writes:,.0f} |")
    delays.sort()
    print()
    print(f"Weight change through one standby steering invocations through another (20 changes): "
          f"p50 {statistics.median(delays) * 1000:.1f} ms, p99 {delays[-1] * 1000:.1f} ms (the largest of 20).")
    print()
    print("kill -9 of the leader (5 times): next leader after " + ", ".join(f"{a:.2f}" for a, _ in failovers)
          + " s; first invocation answered through a standby after " + ", ".join(f"{b:.2f}" for _, b in failovers) + " s.")


if __name__ == "__main__":
    main()
