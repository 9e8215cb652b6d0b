"""The AWS CLI against berth."""

import json
import os
import shutil
import subprocess
import sys
import pathlib

import pytest

from conftest import deploy

AWS = shutil.which("aws") or str(pathlib.Path(sys.executable).parent / "aws")


def aws(berth, *args):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([AWS, *args, "--endpoint-url", berth.url, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    return out


@pytest.mark.skipif(not pathlib.Path(AWS).exists(), reason="the AWS CLI is installed by the test command")
def test_cli_lists_and_describes(berth, sm):
    ep = deploy(sm, ["Variant1", "Variant2"])
    out = aws(berth, "sagemaker", "list-endpoints", "--name-contains", ep)
    assert out.returncode == 0, out.stderr
    assert [e["EndpointName"] for e in json.loads(out.stdout)["Endpoints"]] == [ep]

    out = aws(berth, "sagemaker", "describe-endpoint", "--endpoint-name", ep)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["EndpointStatus"] == "InService"

    out = aws(berth, "sagemaker", "update-endpoint-weights-and-capacities", "--endpoint-name", ep,
              "--desired-weights-and-capacities", "VariantName=Variant1,DesiredWeight=0", "VariantName=Variant2,DesiredWeight=1")
    assert out.returncode == 0, out.stderr

    out = aws(berth, "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", ep, "--body", "aGVsbG8=", "--content-type", "text/csv", "/dev/stdout")
    assert out.returncode == 0, out.stderr
    assert '"InvokedProductionVariant": "Variant2"' in out.stdout

    out = aws(berth, "sagemaker", "describe-endpoint", "--endpoint-name", "no-such-endpoint")
    assert out.returncode != 0
    assert "ValidationException" in out.stderr and "Could not find endpoint" in out.stderr
