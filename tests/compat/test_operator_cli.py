"""berth's operator commands against a running server: endpoints, invoke, weights."""

import json
import os
import re
import subprocess
import time

from conftest import ECHO_IMAGE, ROLE, berth_binary, create_echo_model, deploy, unique, variant


def berth_cli(berth, *args, stdin=b""):
    return subprocess.run([berth_binary(), *args, "--url", berth.url], input=stdin, capture_output=True, timeout=60)


def test_weights_invoke_and_endpoints(berth, sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"])
    out = berth_cli(berth, "weights", ep, "Variant1=0", "Variant2=1")
    assert out.returncode == 0, out.stderr
    assert b"weights set" in out.stdout

    out = berth_cli(berth, "invoke", ep, "--content-type", "text/csv", stdin=b"1,2,3")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["body"] == "1,2,3"
    assert out.stderr.decode().strip() == "200 from Variant2"

    out = berth_cli(berth, "invoke", ep, "--variant", "Variant1", "--json", stdin=b"x")
    assert json.loads(out.stdout)["InvokedProductionVariant"] == "Variant1"

    for _ in range(30):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    # Live req/s comes from the last 10 closed seconds of metrics.
    deadline = time.time() + 10
    while True:
        listed = json.loads(berth_cli(berth, "endpoints", "--json").stdout)
        (mine,) = [e for e in listed if e["EndpointName"] == ep]
        rate = {v["VariantName"]: v["RequestsPerSecond"] for v in mine["Variants"]}
        if rate["Variant2"] > 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert rate["Variant2"] > 0 and rate["Variant1"] <= 0.1
    assert mine["EndpointStatus"] == "InService"
    weights = {v["VariantName"]: v["CurrentWeight"] for v in mine["Variants"]}
    assert weights == {"Variant1": 0.0, "Variant2": 1.0}

    table = berth_cli(berth, "endpoints").stdout.decode()
    assert table.splitlines()[0].split() == ["ENDPOINT", "STATUS", "VARIANT", "WEIGHT", "INSTANCES", "REQ/S"]
    assert ep in table and "Variant2" in table


def test_errors_exit_non_zero_with_the_reason(berth):
    out = berth_cli(berth, "weights", "no-such-endpoint", "V=1")
    assert out.returncode != 0
    assert b"Could not find endpoint" in out.stderr
    out = berth_cli(berth, "weights", "x", "not-a-weight")
    assert out.returncode != 0 and b"Variant=Weight" in out.stderr
    out = subprocess.run([berth_binary(), "endpoints", "--url", "http://127.0.0.1:9"], capture_output=True, timeout=30)
    assert out.returncode != 0 and b"cannot reach berth" in out.stderr


def test_logs_and_follow(berth, sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"])
    runtime.invoke_endpoint(EndpointName=ep, Body=b"x", TargetVariant="Variant1")
    out = berth_cli(berth, "logs", ep)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert any(line.startswith("Variant1/") and "POST /invocations" in line for line in lines), lines
    assert any(line.startswith("Variant2/") and "starting instance" in line for line in lines), lines
    only = berth_cli(berth, "logs", ep, "--variant", "Variant2").stdout.decode().splitlines()
    assert only and all(line.startswith("Variant2/") for line in only)

    # --follow prints what instances write afterwards; the process is ours to stop.
    follow = subprocess.Popen([berth_binary(), "logs", ep, "--variant", "Variant2", "--follow", "--tail", "0", "--url", berth.url], stdout=subprocess.PIPE)
    try:
        # A health check line (every 2 s) shows the follower is reading before the request is sent.
        deadline = time.time() + 20
        while b"GET /ping" not in follow.stdout.readline():
            assert time.time() < deadline
        runtime.invoke_endpoint(EndpointName=ep, Body=b"x", TargetVariant="Variant2")
        seen = b""
        while b"POST /invocations" not in seen:
            assert time.time() < deadline, seen
            seen += follow.stdout.readline()
    finally:
        follow.kill()
        follow.wait()
    out = berth_cli(berth, "logs", "no-such-endpoint")
    assert out.returncode != 0 and b"Could not find endpoint" in out.stderr


def test_loadtest_open_and_closed_loop(berth, sm, tmp_path):
    """`berth loadtest` sends the asked rate (open loop) or keeps users busy (closed loop), and
    reports what it measured; bad arguments and a missing endpoint say so."""
    ep = deploy(sm, ["V"])
    payload = tmp_path / "row.csv"
    payload.write_text("1,2,3")
    out = berth_cli(berth, "loadtest", ep, "--rate", "50", "--duration", "2", "--payload", str(payload), "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert (r["requests"], r["ok"], r["errors"], r["dropped"]) == (100, 100, 0, 0), r
    assert 40 <= r["achieved_rate"] <= 55 and 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"], r
    out = berth_cli(berth, "loadtest", ep, "--users", "2", "--duration", "1", "--payload", str(payload))
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert "closed loop, 2 user(s)" in text and "errors 0" in text and "p99" in text, text
    # What it cannot do is an error before any request; what berth refuses is counted.
    for args, words in (
        (["--rate", "0"], b"--rate must be above 0"),
        (["--rate", "5", "--duration", "0"], b"--duration must be 1 to 3600"),
        (["--rate", "5", "--payload", str(tmp_path / "missing")], b"reading --payload"),
    ):
        full = ["loadtest", ep, "--payload", str(payload), *args] if "--payload" not in args else ["loadtest", ep, *args]
        out = berth_cli(berth, *full)
        assert out.returncode != 0 and words in out.stderr, out.stderr
    out = berth_cli(berth, "loadtest", "no-such-endpoint", "--rate", "10", "--duration", "1", "--payload", str(payload), "--json")
    r = json.loads(out.stdout)
    assert r["errors"] == 10 and "Endpoint no-such-endpoint of account 123456789012 not found" in r["first_error"], r


def test_wait_version_completions_man_and_exit_statuses(berth, sm):
    """`berth wait` returns once an endpoint is InService (status 0) and fails with the reason
    for one that failed (1); `--version` names the commit; completions and the man page come
    from the CLI's definition; a wrong argument is status 2."""
    ep = unique("wait")
    create_echo_model(sm, ep)
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("V", ep)])
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    out = berth_cli(berth, "wait", ep, "--timeout", "60")
    assert out.returncode == 0 and f"endpoint {ep} is InService" in out.stderr.decode(), out.stderr
    bad = unique("wait-bad")
    sm.create_model(ModelName=bad, PrimaryContainer={"Image": ECHO_IMAGE, "Environment": {"ECHO_EXIT_ON_START": "1"}}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=bad, ProductionVariants=[variant("V", bad)])
    sm.create_endpoint(EndpointName=bad, EndpointConfigName=bad)
    out = berth_cli(berth, "wait", bad, "--timeout", "1")
    assert out.returncode == 1 and f"endpoint {bad} is" in out.stderr.decode(), out.stderr

    version = subprocess.run([berth_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    assert re.match(r"berth \d+\.\d+\.\d+ \((unknown commit|[0-9a-f]{12}(-modified)?)\)$", version.strip()), version
    for shell, marker in (("bash", "_berth()"), ("zsh", "#compdef berth"), ("fish", "complete -c berth")):
        script = subprocess.run([berth_binary(), "completions", shell], capture_output=True, text=True, check=True).stdout
        assert marker in script and "loadtest" in script, shell
    man = subprocess.run([berth_binary(), "man"], capture_output=True, text=True, check=True).stdout
    assert man.startswith(".ie") and ".TH berth 1" in man and "serve" in man
    # A reader that stops early (`| head`, `| grep -q`) closes the pipe: not a failure, no panic.
    for generated in (["completions", "bash"], ["man"], ["cli-reference"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        closed = subprocess.run([berth_binary(), *generated], stdout=write_end, stderr=subprocess.PIPE, text=True)
        os.close(write_end)
        assert closed.returncode == 0 and "panicked" not in closed.stderr, (generated, closed.stderr)
    wrong = subprocess.run([berth_binary(), "weights", "--no-such-flag"], capture_output=True, text=True)
    assert wrong.returncode == 2
    plain = subprocess.run([berth_binary(), "endpoints", "--url", "http://127.0.0.1:9"], capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert plain.returncode == 1 and "\x1b[" not in plain.stderr
