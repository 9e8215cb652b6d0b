"""`berth serve --demo` on a machine with nothing set up: a clean environment (`env -i` with only
PATH and HOME; no AWS configuration, no ONNX Runtime), every command it prints run exactly as
printed, and its own traffic deciding the A/B test."""

import json
import os
import re
import select
import subprocess
import time

import requests

from conftest import ROOT, BerthServer


def read_usage(server, timeout=120):
    """Reads berth's stdout after the listening line until the demo's usage text is complete."""
    text, deadline = "", time.time() + timeout
    while "berth:routing" not in text:
        assert time.time() < deadline, f"no demo usage printed; stdout so far: {text!r}; log: {server.log_text()[-2000:]}"
        ready, _, _ = select.select([server.proc.stdout], [], [], 0.5)
        if ready:
            line = server.proc.stdout.readline().decode()
            assert line, f"berth exited; log: {server.log_text()[-2000:]}"
            text += line
    return text


def clean_environment(tmp_path):
    """PATH with only curl, the AWS CLI and a python3 that has boto3 and pip but no onnxruntime;
    an empty HOME."""
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    bin_dir.mkdir()
    home.mkdir()
    python = os.environ.get("BERTH_SDK3_PYTHON", str(ROOT / ".venv-sdk3" / "bin" / "python"))
    probe = subprocess.run([python, "-c", "import onnxruntime"], capture_output=True)
    assert probe.returncode != 0, "this python3 must not have onnxruntime"
    for name, target in {"python3": python, "aws": str(ROOT / ".venv" / "bin" / "aws"), "curl": "/usr/bin/curl"}.items():
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(home)}


def commands(usage):
    """The printed commands: indented lines, a trailing backslash joining the next."""
    lines, out = usage.splitlines(), []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("  ") and not line.startswith("   "):
            cmd = line.strip()
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1] + lines[i].strip()
            out.append(cmd)
        i += 1
    return out


def test_demo_runs_as_printed_and_its_ab_test_decides(tmp_path):
    env = clean_environment(tmp_path)
    server = BerthServer(tmp_path / "data", ["--demo"])
    server.env = env
    started = time.time()
    server.start()
    try:
        usage = read_usage(server)
        assert usage.lstrip().startswith(f"berth demo — dashboard: {server.url}/ui"), usage[:200]
        cmds = commands(usage)
        kinds = [c.split()[0] for c in cmds]
        assert kinds.count("aws") == 3 and "curl" in kinds and "python3" in kinds and any(c.endswith("/berth") for c in kinds), cmds
        for cmd in cmds:
            out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60, env=env)
            assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
            if cmd.startswith("curl "):
                assert re.search(r"x-amzn-invoked-production-variant: Variant[12]", out.stdout, re.I)
                assert json.loads(out.stdout.split("\n\n", 1)[1])["predictions"][0]["label"] == 0
            if cmd.startswith("python3 "):
                assert re.match(r"Variant[12] ", out.stdout), out.stdout
            if "describe-endpoint" in cmd:
                assert json.loads(out.stdout)["EndpointStatus"] == "InService"
        # ONNX Runtime was installed by berth itself, into the data directory.
        assert list((tmp_path / "data" / "onnxruntime").glob("libonnxruntime*")), "ONNX Runtime not installed into the data dir"

        # The demo's own traffic and delayed labels decide the A/B test (goal: within 90 s).
        significance = f"{server.url}/berth/v1/endpoints/demo/significance"
        while True:
            test = requests.get(significance, params={"metric": "accuracy", "a": "Variant1", "b": "Variant2"}, timeout=10).json()
            if test["decided"]:
                break
            assert time.time() - started < 150, test
            time.sleep(2)
        print(f"the demo's A/B test decided {time.time() - started:.0f} s after start: {test['verdict']}")
        assert test["winner"] == "Variant1" and test["verdict"].startswith("Variant1 is better: accuracy +"), test
        ab = next(c for c in cmds if c.split()[0].endswith("/berth"))
        out = subprocess.run(ab, shell=True, capture_output=True, text=True, timeout=60, env=env)
        assert "Variant1 is better" in out.stdout and re.search(r"Variant2\s+\d+%\s+\d+\s+\d+\.\d%", out.stdout), out.stdout
        as_json = json.loads(subprocess.run(ab + " --json", shell=True, capture_output=True, text=True, timeout=60, env=env, check=True).stdout)
        assert as_json["significance"]["winner"] == "Variant1" and {q["variant"] for q in as_json["quality"]["variants"]} == {"Variant1", "Variant2"}

        # The printed add-tags turned on bandit routing: it moves traffic to the better model
        # (the printed weights command had given Variant2 75%).
        sm = server.sm()
        deadline = time.time() + 60
        while True:
            weights = {v["VariantName"]: v["CurrentWeight"] for v in sm.describe_endpoint(EndpointName="demo")["ProductionVariants"]}
            if weights["Variant1"] > weights["Variant2"]:
                break
            assert time.time() < deadline, weights
            time.sleep(2)

        # A restart keeps the demo and does not deploy it twice.
        server.restart()
        read_usage(server)
        sm = server.sm()
        assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["demo"]
        assert len(sm.list_models()["Models"]) == 2
    finally:
        server.stop()


def test_demo_traffic_off_stays_quiet(tmp_path):
    server = BerthServer(tmp_path / "data", ["--demo", "--demo-traffic", "off"]).start()
    try:
        usage = read_usage(server)
        assert "--demo-traffic off" in usage
        time.sleep(3)
        quality = requests.get(f"{server.url}/berth/v1/endpoints/demo/quality", timeout=10).json()
        assert quality["variants"] == [], quality
    finally:
        server.stop()
