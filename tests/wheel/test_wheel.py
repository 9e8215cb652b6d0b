"""The installed wheel as a Python user meets it, in a fresh virtualenv with no Rust on the PATH:
the `berth` command, `berth.serve()` as a context manager (with the demo: it answers an
invocation), and the `berth_server` pytest fixture running a boto3 A/B flow."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import berth

DEMO_MODELS = pathlib.Path(os.environ["BERTH_DEMO_MODELS"])
ROLE = "arn:aws:iam::123456789012:role/berth"
# The fixture's server is configured as berth is, by its environment: model files under here.
MODELS = pathlib.Path(tempfile.mkdtemp(prefix="berth-wheel-models-"))
os.environ["BERTH_FILE_ROOTS"] = str(MODELS)


def test_the_command_is_on_the_path_and_says_its_version():
    assert shutil.which("cargo") is None and shutil.which("rustc") is None, "no Rust here"
    command = shutil.which("berth")
    assert command and pathlib.Path(command).parent == pathlib.Path(sys.executable).parent, command
    out = subprocess.run(["berth", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("berth ") and "(" in out, out


def test_serve_with_the_demo_answers_an_invocation():
    with berth.serve(demo=True) as server:
        assert server.url.startswith("http://127.0.0.1:")
        deadline = time.time() + 120
        while server.sagemaker.describe_endpoint(EndpointName="demo")["EndpointStatus"] != "InService":
            assert time.time() < deadline, server.log()[-2000:]
            time.sleep(0.2)
        answer = server.runtime.invoke_endpoint(EndpointName="demo", Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
        assert json.loads(answer["Body"].read())["predictions"][0]["label"] == 0
        process = server.process
    assert process.returncode == 0, "stopped cleanly"


def test_the_fixture_runs_an_ab_flow(berth_server):
    sm, runtime = berth_server.sagemaker, berth_server.runtime
    for name in ("logistic", "forest"):
        model = MODELS / f"{name}.onnx"
        shutil.copy(DEMO_MODELS / f"iris-{name}.onnx", model)
        sm.create_model(ModelName=f"iris-{name}", PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{model}"}, ExecutionRoleArn=ROLE)
    variants = [
        {"VariantName": name.title(), "ModelName": f"iris-{name}", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}
        for name in ("logistic", "forest")
    ]
    sm.create_endpoint_config(EndpointConfigName="iris-ab", ProductionVariants=variants)
    sm.create_endpoint(EndpointName="iris-ab", EndpointConfigName="iris-ab")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="iris-ab", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    seen = {runtime.invoke_endpoint(EndpointName="iris-ab", Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")["InvokedProductionVariant"] for _ in range(40)}
    assert seen == {"Logistic", "Forest"}
    sm.update_endpoint_weights_and_capacities(EndpointName="iris-ab", DesiredWeightsAndCapacities=[
        {"VariantName": "Logistic", "DesiredWeight": 0.0}, {"VariantName": "Forest", "DesiredWeight": 1.0}])
    seen = {runtime.invoke_endpoint(EndpointName="iris-ab", Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")["InvokedProductionVariant"] for _ in range(20)}
    assert seen == {"Forest"}
    sm.delete_endpoint(EndpointName="iris-ab")
