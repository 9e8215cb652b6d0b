"""The model registry against a real berth: groups and numbered versions through boto3, approval,
`CreateModel` from a version's ARN, and the SageMaker SDK's `Model.register()` then
`ModelPackage(...).deploy()` unchanged."""

import json
import shutil
import time

import pytest

from conftest import ROLE, ROOT, error_message, unique, variant, wait_status

DEMO = ROOT / "crates" / "berth" / "demo"
ROW = b"5.1,3.5,1.4,0.2"


def onnx_container(tmp_path, which):
    shutil.copy(DEMO / f"iris-{which}.onnx", tmp_path / f"{which}.onnx")
    return {"Image": "berth/onnx", "ModelDataUrl": f"file://{tmp_path / f'{which}.onnx'}", "Environment": {"MODEL": which}}


def test_versions_approval_and_deploying_a_version(berth, tmp_path):
    sm, runtime = berth.sm(), berth.runtime()
    group = unique("iris-group")
    arn = sm.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription="iris classifiers")["ModelPackageGroupArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/{group}"
    versions = []
    for which in ("logistic", "forest"):
        spec = {"Containers": [onnx_container(tmp_path, which)], "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["application/json"]}
        versions.append(sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=spec, ModelPackageDescription=which,
                                                CustomerMetadataProperties={"trained-on": "iris"})["ModelPackageArn"])
    assert versions == [f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{n}" for n in (1, 2)]
    d = sm.describe_model_package(ModelPackageName=versions[1])
    assert (d["ModelPackageGroupName"], d["ModelPackageVersion"], d["ModelApprovalStatus"], d["ModelPackageStatus"]) == (group, 2, "PendingManualApproval", "Completed")
    assert d["InferenceSpecification"]["Containers"][0]["Image"] == "berth/onnx" and d["CustomerMetadataProperties"] == {"trained-on": "iris"}
    assert sm.describe_model_package(ModelPackageName=f"{group}/1")["ModelPackageDescription"] == "logistic"

    sm.update_model_package(ModelPackageArn=versions[1], ModelApprovalStatus="Approved", ApprovalDescription="best on holdout",
                            CustomerMetadataPropertiesToRemove=["trained-on"])
    d = sm.describe_model_package(ModelPackageName=versions[1])
    assert (d["ModelApprovalStatus"], d["ApprovalDescription"]) == ("Approved", "best on holdout") and "CustomerMetadataProperties" not in d
    approved = sm.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in approved] == [versions[1]]
    first = sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending", MaxResults=1)
    second = sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending", MaxResults=1, NextToken=first["NextToken"])
    assert [p["ModelPackageVersion"] for p in first["ModelPackageSummaryList"] + second["ModelPackageSummaryList"]] == [1, 2]
    assert group in [g["ModelPackageGroupName"] for g in sm.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]]

    # CreateModel from the approved version deploys its containers.
    model = unique("from-registry")
    sm.create_model(ModelName=model, Containers=[{"ModelPackageName": versions[1]}], ExecutionRoleArn=ROLE)
    container = sm.describe_model(ModelName=model)["Containers"][0]
    assert container["Image"] == "berth/onnx" and container["Environment"]["MODEL"] == "forest"
    sm.create_endpoint_config(EndpointConfigName=model, ProductionVariants=[variant("AllTraffic", model)])
    sm.create_endpoint(EndpointName=model, EndpointConfigName=model)
    assert wait_status(sm, model)["EndpointStatus"] == "InService"
    answer = json.loads(runtime.invoke_endpoint(EndpointName=model, Body=ROW, ContentType="text/csv")["Body"].read())
    assert answer["predictions"][0]["label"] == 0, answer

    with pytest.raises(Exception) as e:
        sm.delete_model_package_group(ModelPackageGroupName=group)
    assert "delete them first" in error_message(e)
    for v in versions:
        sm.delete_model_package(ModelPackageName=v)
    sm.delete_model_package_group(ModelPackageGroupName=group)
    with pytest.raises(Exception) as e:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    assert "does not exist" in error_message(e)


def test_the_registry_refuses_what_it_cannot_keep(berth, tmp_path):
    sm = berth.sm()
    group = unique("refusing-group")
    sm.create_model_package_group(ModelPackageGroupName=group)
    spec = {"Containers": [onnx_container(tmp_path, "logistic")]}
    for args, words in (
        ({"ModelPackageGroupName": group, "ModelPackageName": "both", "InferenceSpecification": spec}, "one of them"),
        ({"ModelPackageGroupName": group}, "InferenceSpecification.Containers is required"),
        ({"ModelPackageGroupName": "no-such-group", "InferenceSpecification": spec}, "does not exist"),
        ({"ModelPackageGroupName": group, "InferenceSpecification": spec, "ModelApprovalStatus": "Maybe"}, "Member must satisfy enum value set"),
        ({"ModelPackageGroupName": group, "InferenceSpecification": {"Containers": [{"ModelDataUrl": "s3://b/m.tar.gz"}]}}, "Image"),
        ({"ModelPackageGroupName": group, "InferenceSpecification": spec, "CertifyForMarketplace": True}, "Marketplace"),
    ):
        with pytest.raises(Exception) as e:
            sm.create_model_package(**args)
        assert words in error_message(e), (args, error_message(e))
    with pytest.raises(Exception) as e:
        sm.create_model_package_group(ModelPackageGroupName=group)
    assert "already exists" in error_message(e)
    with pytest.raises(Exception) as e:
        sm.create_model(ModelName=unique("nothing"), Containers=[{"ModelPackageName": f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/9"}], ExecutionRoleArn=ROLE)
    assert "does not exist" in error_message(e)


def test_the_sdks_register_then_model_package_deploy(berth, s3_server, tmp_path, monkeypatch):
    sagemaker = pytest.importorskip("sagemaker")
    if not sagemaker.__version__.startswith("2."):
        pytest.skip("this drives SDK v2")
    from sagemaker import ModelPackage
    from sagemaker.model import Model

    from conftest import sdk_session

    real_sleep = time.sleep
    monkeypatch.setattr(sagemaker.session.time, "sleep", lambda s: real_sleep(min(s, 1)))
    session = next(sdk_session(berth, s3_server, unique("registry")))
    shutil.copy(DEMO / "iris-logistic.onnx", tmp_path / "model.onnx")
    group = unique("sdk-group")
    session.sagemaker_client.create_model_package_group(ModelPackageGroupName=group)
    model = Model(image_uri="berth/onnx", model_data=f"file://{tmp_path / 'model.onnx'}", role=ROLE, sagemaker_session=session)
    registered = model.register(content_types=["text/csv"], response_types=["application/json"], inference_instances=["ml.m5.large"],
                                transform_instances=["ml.m5.large"], model_package_group_name=group)
    arn = registered.model_package_arn
    assert arn.endswith(f"model-package/{group}/1")
    assert berth.sm().describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"
    package = ModelPackage(role=ROLE, model_package_arn=arn, sagemaker_session=session)
    package.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=unique("pkg-endpoint"))
    assert berth.sm().describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved", "the SDK approves before deploying"
    d = berth.sm().describe_endpoint(EndpointName=package.endpoint_name)
    assert d["EndpointStatus"] == "InService"
    answer = json.loads(berth.runtime().invoke_endpoint(EndpointName=package.endpoint_name, Body=ROW, ContentType="text/csv")["Body"].read())
    assert answer["predictions"][0]["label"] == 0
    berth.sm().delete_endpoint(EndpointName=package.endpoint_name)


def test_approval_gates_deployment_and_is_an_event(own_berth, tmp_path):
    """With --require-approved-packages, CreateModel takes approved versions only; an approval
    change is one of berth's events (under the group's name) and is posted to --registry-webhook
    as EventBridge delivers SageMaker's, for a pipeline to act on."""
    import http.server
    import threading

    import requests

    posted = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    server = own_berth("--require-approved-packages", "--registry-webhook", f"http://127.0.0.1:{hook.server_port}/registry")
    sm = server.sm()
    group = unique("gated")
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification={"Containers": [onnx_container(tmp_path, "logistic")]})["ModelPackageArn"]
    with pytest.raises(Exception) as e:
        sm.create_model(ModelName=unique("gated-model"), Containers=[{"ModelPackageName": arn}], ExecutionRoleArn=ROLE)
    assert "is PendingManualApproval" in error_message(e) and "--require-approved-packages" in error_message(e)
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="passed review")
    sm.create_model(ModelName=unique("gated-model"), Containers=[{"ModelPackageName": arn}], ExecutionRoleArn=ROLE)
    events = requests.get(f"{server.url}/berth/v1/events", params={"endpoint": group}, timeout=10).json()["events"]
    assert [(e["kind"], e["message"]) for e in events] == [
        ("ModelPackageApprovalChanged", f"Model package {arn}: PendingManualApproval → Approved (passed review)")
    ], events
    deadline = time.time() + 10
    while not posted:
        assert time.time() < deadline, "the webhook was not called"
        time.sleep(0.1)
    hook.shutdown()
    [change] = posted
    assert change["detail-type"] == "SageMaker Model Package State Change" and change["source"] == "aws.sagemaker" and change["resources"] == [arn]
    detail = change["detail"]
    assert (detail["ModelPackageGroupName"], detail["ModelPackageVersion"], detail["ModelApprovalStatus"], detail["ApprovalDescription"]) == (group, 1, "Approved", "passed review")


def test_the_sdks_model_package_right_size(berth, s3_server, tmp_path, monkeypatch, capsys):
    """`ModelPackage.right_size()` load-tests the registered version itself (no model is made)."""
    sagemaker = pytest.importorskip("sagemaker")
    if not sagemaker.__version__.startswith("2."):
        pytest.skip("this drives SDK v2")
    import io
    import tarfile

    from sagemaker import ModelPackage
    from sagemaker.inference_recommender.inference_recommender_mixin import Phase
    from sagemaker.parameter import CategoricalParameter

    from conftest import sdk_session

    real_sleep = time.sleep
    monkeypatch.setattr(sagemaker.session.time, "sleep", lambda s: real_sleep(min(s, 1)))
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", berth.url)
    session = next(sdk_session(berth, s3_server, unique("pkg-sizing")))
    sm = berth.sm()
    group = unique("sized")
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification={"Containers": [onnx_container(tmp_path, "forest")]},
                                  ModelApprovalStatus="Approved")["ModelPackageArn"]
    with tarfile.open(tmp_path / "p.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("row.csv")
        info.size = len(ROW)
        tar.addfile(info, io.BytesIO(ROW))
    models_before = len(sm.list_models()["Models"])
    package = ModelPackage(role=ROLE, model_package_arn=arn, sagemaker_session=session)
    package.right_size(
        sample_payload_url=f"file://{tmp_path / 'p.tar.gz'}", supported_content_types=["text/csv"], framework="SKLEARN",
        hyperparameter_ranges=[{"instance_types": CategoricalParameter(["ml.c5.large"]), "OMP_NUM_THREADS": CategoricalParameter(["1"])}],
        phases=[Phase(duration_in_seconds=3, initial_number_of_users=2, spawn_rate=0)],
    )
    assert [r["EndpointConfiguration"]["InstanceType"] for r in package.inference_recommendations] == ["ml.c5.large"]
    assert len(sm.list_models()["Models"]) == models_before, "the job made no model"
    jobs = sm.list_inference_recommendations_jobs(ModelPackageVersionArnEquals=arn)["InferenceRecommendationsJobs"]
    assert len(jobs) == 1 and jobs[0]["ModelPackageVersionArn"] == arn and jobs[0]["Status"] == "COMPLETED"
    assert "Candidate 1/1" in capsys.readouterr().out


def test_a_webhook_that_is_not_http_is_refused_at_start(tmp_path):
    import subprocess

    from conftest import berth_binary

    out = subprocess.run([berth_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), "--registry-webhook", "file:///etc/passwd"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "must be http:// or https://" in out.stderr, out.stderr[-500:]
