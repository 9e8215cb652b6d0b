#!/usr/bin/env python3
"""berth's load generator beside wrk (not a test): the same `berth/onnx` iris endpoint on a
release berth, driven in alternating rounds by wrk (closed loop, 8 connections) and by
`berth loadtest --users 8` (the same closed loop through berth-load), then by `berth loadtest
--rate R` (open loop at half of what wrk sustained). Each line: requests a second answered,
latency percentiles, and the generator's own CPU time per request (user + system, from
getrusage of the child). Run with the test venv's Python after a release build
(bench/loadgen.sh does both). Usage: loadgen.py [rounds, default 3] [seconds, default 10].
"""

import json
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from deployment import IRIS, ROLE, ROOT, ROW, client, start_berth, wait_in_service  # noqa: E402

BERTH = ROOT / "target" / "release" / "berth"


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(args):
    before = child_cpu()
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return out, child_cpu() - before


def wrk(url, seconds, work):
    script = work / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = "{ROW.decode()}"\nwrk.headers["Content-Type"] = "text/csv"\n')
    out, cpu = timed(["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), url])
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: m.group(1) for p in ("50%", "99%") if (m := re.search(rf"\s{re.escape(p)}\s+(\S+)", out))}
    return rate, f"p50 {pct.get('50%')} p99 {pct.get('99%')}", cpu / max(rate * seconds, 1) * 1e6


def loadtest(url, endpoint, seconds, payload, *mode):
    out, cpu = timed([str(BERTH), "loadtest", endpoint, *mode, "--duration", str(seconds), "--payload", str(payload), "--url", url, "--json"])
    r = json.loads(out)
    ms = r["latency_ms"]
    return r["achieved_rate"], f"p50 {ms['p50']:.2f}ms p99 {ms['p99']:.2f}ms", cpu / max(r["ok"], 1) * 1e6


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory(prefix="berth-loadgen-bench-") as tmp:
        work = pathlib.Path(tmp)
        proc, url = start_berth(work)
        try:
            sm = client(url, "sagemaker")
            sm.create_model(ModelName="iris", PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{IRIS / 'iris-logistic.onnx'}"}, ExecutionRoleArn=ROLE)
            sm.create_endpoint_config(EndpointConfigName="iris", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "iris", "InitialInstanceCount": 1, "InstanceType": "ml.c5.large"}])
            sm.create_endpoint(EndpointName="iris", EndpointConfigName="iris")
            wait_in_service(sm, "iris")
            payload = work / "row.csv"
            payload.write_bytes(ROW)
            invoke = f"{url}/endpoints/iris/invocations"
            print("| round | generator | req/s answered | latency | generator CPU µs/request |")
            print("|---|---|---|---|---|")
            for n in range(1, rounds + 1):
                rate, lat, cpu = wrk(invoke, seconds, work)
                print(f"| {n} | wrk -c8 (closed loop) | {rate:,.0f} | {lat} | {cpu:.1f} |")
                mine, lat, cpu = loadtest(url, "iris", seconds, payload, "--users", "8")
                print(f"| {n} | berth loadtest --users 8 (closed loop) | {mine:,.0f} | {lat} | {cpu:.1f} |")
                half = max(1, round(rate / 2))
                got, lat, cpu = loadtest(url, "iris", seconds, payload, "--rate", str(half))
                print(f"| {n} | berth loadtest --rate {half} (open loop) | {got:,.0f} | {lat} | {cpu:.1f} |", flush=True)
                time.sleep(1)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
