"""Multi-container endpoints (Containers, InferenceExecutionConfig Serial or Direct,
TargetContainerHostname) with boto3, each container the test echo container with its own model
data: a serial inference pipeline passes each container's answer to the next; a direct endpoint
invokes the container a call names."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ECHO_IMAGE, ROLE, error_code, error_message, eventually, http_status, model_dir, recent_statistics, unique, variant, wait_status


def containers(tmp_path, hostnames, env=None, named=True):
    out = []
    for h in hostnames:
        c = {"Image": ECHO_IMAGE, "ModelDataUrl": f"file://{model_dir(tmp_path, f'model of {h}')}", "Environment": {"ECHO_NAME": h, **(env or {}).get(h, {})}}
        if named:
            c["ContainerHostname"] = h
        out.append(c)
    return out


def endpoint(sm, defs, mode=None, count=1):
    name = unique("mc")
    extra = {"InferenceExecutionConfig": {"Mode": mode}} if mode else {}
    sm.create_model(ModelName=name, Containers=defs, ExecutionRoleArn=ROLE, **extra)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", name, 1.0, count)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = wait_status(sm, name)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    return name


def test_a_serial_pipeline_passes_each_answer_to_the_next_container(sm, runtime, tmp_path):
    ep = endpoint(sm, containers(tmp_path, ["pre", "model", "post"]), mode="Serial", count=2)
    described = sm.describe_model(ModelName=ep)
    assert described["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert [c["ContainerHostname"] for c in described["Containers"]] == ["pre", "model", "post"]
    r = runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Body=b"1,2,3")
    post = json.loads(r["Body"].read())
    model = json.loads(post["body"])
    pre = json.loads(model["body"])
    # Each stage saw the previous stage's answer, in its content type; each read its own model data.
    assert [s["name"] for s in (pre, model, post)] == ["pre", "model", "post"]
    assert (pre["body"], pre["content_type"]) == ("1,2,3", "text/csv")
    assert model["content_type"] == post["content_type"] == "application/json"
    assert [s["model_file"] for s in (pre, model, post)] == ["model of pre", "model of model", "model of post"]
    assert len({s["pid"] for s in (pre, model, post)}) == 3, "each container is its own process on its own port"
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=ep, ContentType="text/csv", Body=b"1", TargetContainerHostname="model")
    assert error_code(e) == "ValidationError" and "serial inference pipeline" in error_message(e)


def test_a_failing_stage_is_a_model_error_that_names_it(sm, runtime, tmp_path):
    ep = endpoint(sm, containers(tmp_path, ["first", "second", "third"], env={"second": {"ECHO_STATUS": "500"}}), mode="Serial")
    with pytest.raises(runtime.exceptions.ModelError) as e:
        runtime.invoke_endpoint(EndpointName=ep, ContentType="text/plain", Body=b"x")
    assert e.value.response["OriginalStatusCode"] == 500
    assert "from second" in error_message(e), error_message(e)
    # Without hostnames the containers are container-1, container-2, ... and Serial is the default.
    ep = endpoint(sm, containers(tmp_path, ["a", "b"], env={"b": {"ECHO_STATUS": "400"}}, named=False))
    with pytest.raises(runtime.exceptions.ModelError) as e:
        runtime.invoke_endpoint(EndpointName=ep, ContentType="text/plain", Body=b"x")
    assert e.value.response["OriginalStatusCode"] == 400 and "from container-2" in error_message(e)


def test_direct_invocation_goes_to_the_named_container(berth, sm, runtime, tmp_path):
    ep = endpoint(sm, containers(tmp_path, ["alpha", "beta"]), mode="Direct")
    assert sm.describe_model(ModelName=ep)["InferenceExecutionConfig"] == {"Mode": "Direct"}
    for target in ["beta", "alpha", "BETA"]:
        r = runtime.invoke_endpoint(EndpointName=ep, TargetContainerHostname=target, ContentType="text/plain", Body=b"hi")
        answer = json.loads(r["Body"].read())
        assert (answer["name"], answer["body"], answer["model_file"]) == (target.lower(), "hi", f"model of {target.lower()}")
    for extra, phrase in [({}, "name one with TargetContainerHostname (alpha, beta)"), ({"TargetContainerHostname": "gamma"}, "no container gamma")]:
        with pytest.raises(ClientError) as e:
            runtime.invoke_endpoint(EndpointName=ep, ContentType="text/plain", Body=b"hi", **extra)
        assert (http_status(e), error_code(e)) == (400, "ValidationError") and phrase in error_message(e), error_message(e)
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=ep, ContentType="text/plain", Body=b"hi", TargetContainerHostname="bad_name")
    assert error_code(e) == "ValidationError" and "targetContainerHostname" in error_message(e)

    # The berth CLI names the container too.
    import subprocess

    from conftest import berth_binary

    out = subprocess.run([berth_binary(), "invoke", ep, "--container", "beta", "--url", berth.url], input=b"cli", capture_output=True, timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout)["name"] == "beta", out.stderr
    # Per-container metrics, dimensions EndpointName, VariantName, ContainerName, beside the variant's.
    cw = berth.client("cloudwatch")
    dims = [{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": "AllTraffic"}]
    want = {None: 4, "alpha": 1, "beta": 3}

    def invocations():
        sums = {c: recent_statistics(cw, "Invocations", dims + ([{"Name": "ContainerName", "Value": c}] if c else []), statistics=["Sum"]) for c in want}
        return {c: s and s["Sum"] for c, s in sums.items()}

    got = eventually(lambda: (g := invocations()) == want and g) or invocations()
    assert got == want
    listed = cw.list_metrics(Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=[{"Name": "EndpointName", "Value": ep}])["Metrics"]
    containers_listed = sorted(d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "ContainerName")
    assert containers_listed == ["alpha", "beta"], listed
    # Each container's CPU and memory, in the instance namespace (measured once a second).
    for metric in ["CPUUtilization", "MemoryUtilization"]:
        beta = dims + [{"Name": "ContainerName", "Value": "beta"}]
        measured = eventually(lambda: recent_statistics(cw, metric, beta, namespace="/aws/sagemaker/Endpoints", statistics=["SampleCount", "Maximum"]))
        assert measured and measured["SampleCount"] >= 1, (metric, measured)


def test_create_model_checks_multi_container_models(sm, runtime, tmp_path):
    def refused(defs, phrase, **extra):
        with pytest.raises(ClientError) as e:
            sm.create_model(ModelName=unique("bad"), Containers=defs, ExecutionRoleArn=ROLE, **extra)
        assert error_code(e) == "ValidationException", e.value.response
        assert phrase in error_message(e), error_message(e)

    two = containers(tmp_path, ["a", "b"])
    refused(containers(tmp_path, [f"c{i}" for i in range(16)]), "less than or equal to 15")
    refused([two[0], {k: v for k, v in two[1].items() if k != "ContainerHostname"}], "every container of the model or on none")
    refused([two[0], {**two[1], "ContainerHostname": "A"}], "ContainerHostname A is used by more than one")
    refused(two, "InferenceExecutionConfig.Mode", InferenceExecutionConfig={"Mode": "Parallel"})
    refused([two[0], {"Image": "berth/onnx", "Mode": "MultiModel", "ModelDataUrl": "s3://b/p/", "ContainerHostname": "b"}], "Mode MultiModel")
    # TargetContainerHostname on an endpoint of one container is refused, not ignored.
    single = unique("one")
    sm.create_model(ModelName=single, PrimaryContainer=two[0], ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName=single, ProductionVariants=[variant("AllTraffic", single)])
    sm.create_endpoint(EndpointName=single, EndpointConfigName=single)
    assert wait_status(sm, single)["EndpointStatus"] == "InService"
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=single, ContentType="text/plain", Body=b"x", TargetContainerHostname="a")
    assert error_code(e) == "ValidationError" and "runs one container" in error_message(e)
