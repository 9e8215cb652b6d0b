"""Endpoint lifecycle, DescribeEndpoint's shape, listing, failures, and InvokeEndpoint's contract."""

import json
import os

import pytest
from botocore.exceptions import ClientError

from conftest import (
    ECHO_IMAGE,
    create_echo_model,
    deploy,
    error_code,
    error_message,
    http_status,
    model_dir,
    model_tarball,
    unique,
    variant,
    wait_status,
)


def test_lifecycle_and_describe(sm, runtime, tmp_path):
    name = unique("Life")
    model = name.lower() + "-m"
    create_echo_model(sm, model, data_url=f"file://{model_tarball(tmp_path, 'packed')}")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", model, 1.0, 2)])
    arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=[{"Key": "k", "Value": "v"}])["EndpointArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name.lower()}"
    first = sm.describe_endpoint(EndpointName=name)
    assert first["EndpointStatus"] in ("Creating", "InService")

    d = wait_status(sm, name)
    assert d["EndpointStatus"] == "InService"
    assert d["EndpointArn"] == arn and d["EndpointConfigName"] == name
    assert d["LastModifiedTime"] >= d["CreationTime"]
    (pv,) = d["ProductionVariants"]
    assert pv["VariantName"] == "AllTraffic"
    assert pv["CurrentWeight"] == 1.0 and pv["DesiredWeight"] == 1.0
    assert pv["CurrentInstanceCount"] == 2 and pv["DesiredInstanceCount"] == 2
    assert pv["DeployedImages"][0]["SpecifiedImage"] == ECHO_IMAGE
    assert "ResolvedImage" in pv["DeployedImages"][0]
    assert "FailureReason" not in d

    # The waiter SageMaker users call works too (its delay shortened for the test).
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})

    listed = sm.list_endpoints(NameContains=name, StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [name]
    assert listed[0]["EndpointArn"] == arn
    assert sm.list_endpoints(NameContains=name, StatusEquals="Failed")["Endpoints"] == []

    # Both instances serve the unpacked archive.
    pids = set()
    rt = runtime
    for _ in range(40):
        out = json.loads(rt.invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read())
        assert out["model_file"] == "packed"
        pids.add(out["pid"])
    assert len(pids) == 2

    with pytest.raises(ClientError) as e:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert error_code(e) == "ValidationException"
    assert error_message(e) == f'Cannot create already existing endpoint "{arn}".'

    sm.delete_endpoint(EndpointName=name)
    try:
        d = sm.describe_endpoint(EndpointName=name)
        assert d["EndpointStatus"] == "Deleting"
    except ClientError as gone:
        assert "Could not find endpoint" in gone.response["Error"]["Message"]
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    with pytest.raises(ClientError) as e:
        rt.invoke_endpoint(EndpointName=name, Body=b"x")
    assert error_code(e) == "ValidationError"


def test_endpoint_errors(sm):
    with pytest.raises(ClientError) as e:
        sm.describe_endpoint(EndpointName=unique("nope"))
    assert error_code(e) == "ValidationException"
    assert "Could not find endpoint" in error_message(e)
    with pytest.raises(ClientError) as e:
        sm.create_endpoint(EndpointName=unique("e"), EndpointConfigName=unique("noconfig"))
    assert error_code(e) == "ValidationException"
    assert "Could not find endpoint configuration" in error_message(e)
    with pytest.raises(ClientError) as e:
        sm.delete_endpoint(EndpointName=unique("nope"))
    assert error_code(e) == "ValidationException"


def failed_endpoint(sm, env=None, data_url=None, **variant_extra):
    name = unique("fail")
    create_echo_model(sm, name, env, data_url)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("V", name, **variant_extra)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = wait_status(sm, name, timeout=60)
    assert d["EndpointStatus"] == "Failed"
    return name, d["FailureReason"]


def test_container_that_exits_fails_the_endpoint(sm):
    name, reason = failed_endpoint(sm, {"ECHO_EXIT_ON_START": "1"})
    assert "exit" in reason.lower()
    assert "V" in reason
    # A failed endpoint is listed as such, can be deleted, and refuses updates.
    assert [e["EndpointName"] for e in sm.list_endpoints(NameContains=name, StatusEquals="Failed")["Endpoints"]] == [name]
    with pytest.raises(ClientError) as e:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=name)
    assert error_code(e) == "ValidationException"
    sm.delete_endpoint(EndpointName=name)


def test_ping_never_passing_fails_within_startup_timeout(own_berth):
    # SageMaker's minimum ContainerStartupHealthCheckTimeoutInSeconds is 60; the server's default
    # for variants that do not set it is a flag, shortened here.
    server = own_berth("--startup-timeout", "2")
    name, reason = failed_endpoint(server.sm(), {"ECHO_PING_FAIL": "1"})
    assert "ping" in reason.lower()
    assert "2 seconds" in reason or "2s" in reason


def test_tar_slip_archive_fails_the_endpoint(sm, tmp_path):
    import io
    import tarfile

    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"owned"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    name, reason = failed_endpoint(sm, data_url=f"file://{archive}")
    assert "escaped.txt" in reason
    assert not (tmp_path / "escaped.txt").exists()


def test_symlink_out_of_archive_fails_the_endpoint(sm, tmp_path):
    import tarfile

    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("model.txt")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    _, reason = failed_endpoint(sm, data_url=f"file://{archive}")
    assert "model.txt" in reason


def test_invoke_contract(berth, sm, runtime, tmp_path):
    name = unique("inv")
    create_echo_model(sm, name, data_url=f"file://{model_dir(tmp_path, 'dir-model')}")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant("Only", name)])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_status(sm, name)

    r = runtime.invoke_endpoint(
        EndpointName=name,
        Body=b"1,2,3",
        ContentType="text/csv",
        Accept="application/json",
        CustomAttributes="trace=abc",
        InferenceId="req-42",
    )
    assert r["ContentType"] == "application/json"
    assert r["InvokedProductionVariant"] == "Only"
    assert r["CustomAttributes"] == "echoed"
    out = json.loads(r["Body"].read())
    assert out["body"] == "1,2,3"
    assert out["content_type"] == "text/csv"
    assert out["accept"] == "application/json"
    assert out["custom_attributes"] == "trace=abc"
    assert out["inference_id"] == "req-42"
    assert out["model_file"] == "dir-model"
    assert out["name"] == name

    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x", TargetVariant="Missing")
    assert error_code(e) == "ValidationError" and http_status(e) == 400

    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=unique("ghost"), Body=b"x")
    assert error_code(e) == "ValidationError" and http_status(e) == 400
    assert "not found" in error_message(e)

    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x" * (6 * 1024 * 1024 + 1))
    assert error_code(e) == "ValidationError" and http_status(e) == 400

    # The container's failure comes back as ModelError with its status and message.
    with pytest.raises(runtime.exceptions.ModelError) as e:
        runtime.invoke_endpoint(EndpointName=name, Body=b"fail")
    err = e.value.response
    assert http_status(e) == 424
    assert err["OriginalStatusCode"] == 500
    assert err["OriginalMessage"] == "model failed on purpose"
    assert "model failed on purpose" in err["Error"]["Message"]

    # Exactly 6 MB is allowed.
    big = runtime.invoke_endpoint(EndpointName=name, Body=b"y" * (6 * 1024 * 1024))
    assert json.loads(big["Body"].read())["body_length"] == 6 * 1024 * 1024


def test_instances_are_told_their_size(sm, runtime):
    cores = len(os.sched_getaffinity(0))
    name = unique("sized")
    create_echo_model(sm, name)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{**variant("Small", name), "InstanceType": "ml.t2.medium"}, {**variant("Big", name), "InstanceType": "ml.c5.4xlarge"}],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_status(sm, name)
    small = json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"x", TargetVariant="Small")["Body"].read())
    big = json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"x", TargetVariant="Big")["Body"].read())
    assert (small["instance_type"], small["worker_threads"]) == ("ml.t2.medium", "1")
    # 16 vCPUs, capped by the host's cores so that instances do not oversubscribe the machine.
    assert (big["instance_type"], big["worker_threads"]) == ("ml.c5.4xlarge", str(min(16, cores)))
