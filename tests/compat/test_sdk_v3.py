"""The SageMaker Python SDK v3 against berth, run in its own virtualenv (BERTH_SDK3_PYTHON)."""

import json
import os
import pathlib
import subprocess

import pytest

from conftest import ECHO_IMAGE, ROLE, model_tarball, unique

SDK3_PYTHON = os.environ.get("BERTH_SDK3_PYTHON")
FLOW = pathlib.Path(__file__).with_name("sdk_v3_flow.py")


@pytest.mark.skipif(not SDK3_PYTHON, reason="BERTH_SDK3_PYTHON (set by the test command) names the SDK v3 virtualenv's python")
def test_sdk_v3_flow(berth, tmp_path):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": berth.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    args = [
        SDK3_PYTHON,
        str(FLOW),
        ECHO_IMAGE,
        ROLE,
        f"file://{model_tarball(tmp_path, 'a')}",
        f"file://{model_tarball(tmp_path, 'b')}",
        unique("sdk3"),
    ]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "InService"
    assert 160 <= result["split"]["Variant1"] <= 240, result
    assert result["pinned"] == {"Variant1": 20}
    assert 60 <= result["after"]["Variant1"] <= 140, result
    assert result["weights"] == {"Variant1": 25.0, "Variant2": 75.0}
