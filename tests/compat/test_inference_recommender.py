"""Inference Recommender against a real berth: a Default job load-tests three instance types of a
`berth/onnx` model with its sample payloads and recommends them with measured throughput (checked
against wrk on the same configuration), an Advanced job follows its traffic phases and reports a
step per candidate, and bad payloads, impossible thresholds and refused members say why."""

import io
import re
import shutil
import signal
import subprocess
import tarfile
import time

import boto3
import pytest

from conftest import CREDENTIALS, ROLE, ROOT, error_message, marked_workers, unique, variant, wait_status

IRIS = ROOT / "crates" / "berth" / "demo" / "iris-logistic.onnx"
ROWS = ["5.1,3.5,1.4,0.2", "6.2,2.9,4.3,1.3", "7.7,3.0,6.1,2.3"]
PRICES = {"ml.c5.large": 0.102, "ml.m5.large": 0.115, "ml.c5.xlarge": 0.204}


def payload_archive(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return f"file://{path}"


def iris_model(sm, tmp_path):
    name = unique("iris")
    model = tmp_path / f"{name}.onnx"
    shutil.copy(IRIS, model)
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "berth/onnx", "ModelDataUrl": f"file://{model}"}, ExecutionRoleArn=ROLE)
    return name


def input_config(model, payloads, **extra):
    return {
        "ModelName": model,
        "ContainerConfig": {"Domain": "MACHINE_LEARNING", "Task": "CLASSIFICATION", "Framework": "SAGEMAKER-SCIKIT-LEARN",
                            "PayloadConfig": {"SamplePayloadUrl": payloads, "SupportedContentTypes": ["text/csv"]}},
        **extra,
    }


def wait_job(sm, name, timeout=300):
    deadline = time.time() + timeout
    while True:
        d = sm.describe_inference_recommendations_job(JobName=name)
        if d["Status"] not in ("PENDING", "IN_PROGRESS", "STOPPING"):
            return d
        assert time.time() < deadline, d
        time.sleep(1)


def wrk_rate(url, script_dir, seconds=5, connections=8):
    """Requests a second wrk (Debian's, which the test command installs) sustains against an
    endpoint's invocation URL with the first row."""
    assert shutil.which("wrk"), "wrk is installed by the test command (scripts/test.sh)"
    script = script_dir / "invoke.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = "%s"\nwrk.headers["Content-Type"] = "text/csv"\n' % ROWS[0])
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    assert "Non-2xx" not in out, out
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def test_a_default_job_recommends_measured_instances(berth, tmp_path):
    sm = berth.sm()
    model = iris_model(sm, tmp_path)
    payloads = payload_archive(tmp_path / "payloads.tar.gz", {f"row-{i}.csv": r.encode() for i, r in enumerate(ROWS)})
    job = unique("default-job")
    arn = sm.create_inference_recommendations_job(JobName=job, JobType="Default", RoleArn=ROLE, InputConfig=input_config(model, payloads))["JobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:inference-recommendations-job/{job}"
    started = time.time()
    d = wait_job(sm, job)
    assert d["Status"] == "COMPLETED", d.get("FailureReason")
    assert time.time() - started < 300, "a Default job takes minutes"
    recs = d["InferenceRecommendations"]
    assert len(recs) >= 3, recs
    for r in recs:
        config, m = r["EndpointConfiguration"], r["Metrics"]
        assert config["InstanceType"] in PRICES and config["InitialInstanceCount"] == 1 and config["VariantName"] == "AllTraffic"
        assert m["CostPerHour"] == pytest.approx(PRICES[config["InstanceType"]])
        assert m["MaxInvocations"] > 0 and m["CostPerInference"] == pytest.approx(m["CostPerHour"] / (m["MaxInvocations"] * 60))
        assert m["ModelLatency"] <= 100 and m["ModelSetupTime"] >= 0
    steps = sm.list_inference_recommendations_job_steps(JobName=job)["Steps"]
    assert [s["Status"] for s in steps] == ["COMPLETED"] * 3 and all(s["StepType"] == "BENCHMARK" for s in steps)
    listed = sm.list_inference_recommendations_jobs(NameContains=job, StatusEquals="COMPLETED")["InferenceRecommendationsJobs"]
    assert [j["JobName"] for j in listed] == [job] and listed[0]["ModelName"] == model

    # An independent load test of the same configuration: wrk against an endpoint of it.
    best = max(recs, key=lambda r: r["Metrics"]["MaxInvocations"])
    sm.create_endpoint_config(EndpointConfigName=job, ProductionVariants=[{**variant("AllTraffic", model), "InstanceType": best["EndpointConfiguration"]["InstanceType"]}])
    sm.create_endpoint(EndpointName=job, EndpointConfigName=job)
    assert wait_status(sm, job)["EndpointStatus"] == "InService"
    measured = wrk_rate(f"{berth.url}/endpoints/{job}/invocations", tmp_path) * 60
    ratio = best["Metrics"]["MaxInvocations"] / measured
    assert 0.5 <= ratio <= 2.0, (best["Metrics"]["MaxInvocations"], measured)
    sm.delete_endpoint(EndpointName=job)


def test_an_advanced_job_follows_its_phases_and_thresholds(berth, tmp_path):
    sm = berth.sm()
    model = iris_model(sm, tmp_path)
    payloads = payload_archive(tmp_path / "p.tar.gz", {"a.csv": ROWS[0].encode()})
    job = unique("advanced-job")
    sm.create_inference_recommendations_job(
        JobName=job, JobType="Advanced", RoleArn=ROLE,
        InputConfig=input_config(
            model, payloads,
            EndpointConfigurations=[{"InstanceType": "ml.c5.large"},
                                    {"InstanceType": "ml.m5.large", "EnvironmentParameterRanges": {"CategoricalParameterRanges": [{"Name": "OMP_NUM_THREADS", "Value": ["1"]}]}}],
            TrafficPattern={"TrafficType": "PHASES", "Phases": [{"InitialNumberOfUsers": 2, "SpawnRate": 60, "DurationInSeconds": 10}]},
            ResourceLimit={"MaxNumberOfTests": 5, "MaxParallelOfTests": 1},
        ),
        StoppingConditions={"MaxInvocations": 6000, "ModelLatencyThresholds": [{"Percentile": "P95", "ValueInMilliseconds": 100}]},
    )
    d = wait_job(sm, job)
    assert d["Status"] == "COMPLETED", d.get("FailureReason")
    assert d["StoppingConditions"]["ModelLatencyThresholds"] == [{"Percentile": "P95", "ValueInMilliseconds": 100}]
    steps = sm.list_inference_recommendations_job_steps(JobName=job, StepType="BENCHMARK")["Steps"]
    assert [s["InferenceBenchmark"]["EndpointConfiguration"]["InstanceType"] for s in steps] == ["ml.c5.large", "ml.m5.large"]
    for s in steps:
        bench = s["InferenceBenchmark"]
        # Two users plus one a second over 10 s: about 7 and then 12 requests a second.
        assert s["Status"] == "COMPLETED" and 5 * 60 <= bench["EndpointMetrics"]["MaxInvocations"] <= 20 * 60, bench
        assert bench["Metrics"]["CpuUtilization"] >= 0 and bench["Metrics"]["MemoryUtilization"] > 0, "sampled while it ran"
    assert steps[1]["InferenceBenchmark"]["ModelConfiguration"]["EnvironmentParameters"] == [{"Key": "OMP_NUM_THREADS", "ValueType": "String", "Value": "1"}]
    assert len(d["InferenceRecommendations"]) == 2
    page = sm.list_inference_recommendations_job_steps(JobName=job, MaxResults=1)
    assert len(page["Steps"]) == 1 and "NextToken" in page


def test_jobs_that_cannot_recommend_say_why(berth, tmp_path):
    sm = berth.sm()
    model = iris_model(sm, tmp_path)
    one = {"EndpointConfigurations": [{"InstanceType": "ml.c5.large"}], "TrafficPattern": {"Phases": [{"InitialNumberOfUsers": 1, "SpawnRate": 0, "DurationInSeconds": 2}]}}
    cases = (
        ({"rows.csv": b"not,a,row,of,numbers,at,all"}, "Advanced", one, None, ("FAILED", "rejected sample payload rows.csv")),
        ({}, "Advanced", one, None, ("FAILED", "holds no payload file")),
        ({"a.csv": ROWS[0].encode()}, "Advanced", one, [{"Percentile": "P99", "ValueInMilliseconds": 0}], ("COMPLETED", "No recommendation")),
    )
    for files, kind, extra, thresholds, (status, words) in cases:
        job = unique("sad-job")
        stopping = {"ModelLatencyThresholds": thresholds} if thresholds else {}
        sm.create_inference_recommendations_job(JobName=job, JobType=kind, RoleArn=ROLE, StoppingConditions=stopping,
                                                 InputConfig=input_config(model, payload_archive(tmp_path / f"{job}.tar.gz", files), **extra))
        d = wait_job(sm, job, timeout=120)
        assert d["Status"] == status and words in d.get("FailureReason", ""), d
        if status == "COMPLETED":
            assert d["InferenceRecommendations"] == []
    # A crowd of two billion users is held to StoppingConditions.MaxInvocations (per minute).
    job = unique("crowd-job")
    crowd = {"EndpointConfigurations": [{"InstanceType": "ml.c5.large"}], "TrafficPattern": {"Phases": [{"InitialNumberOfUsers": 2**31 - 1, "SpawnRate": 2**31 - 1, "DurationInSeconds": 2}]}}
    sm.create_inference_recommendations_job(JobName=job, JobType="Advanced", RoleArn=ROLE, StoppingConditions={"MaxInvocations": 600},
                                             InputConfig=input_config(model, payload_archive(tmp_path / "crowd.tar.gz", {"a.csv": ROWS[0].encode()}), **crowd))
    d = wait_job(sm, job, timeout=60)
    assert d["Status"] == "COMPLETED" and d["InferenceRecommendations"][0]["Metrics"]["MaxInvocations"] <= 660, d
    not_an_archive = tmp_path / "plain.csv"
    not_an_archive.write_text(ROWS[0])
    job = unique("plain-job")
    sm.create_inference_recommendations_job(JobName=job, JobType="Default", RoleArn=ROLE, InputConfig=input_config(model, f"file://{not_an_archive}"))
    d = wait_job(sm, job, timeout=60)
    assert d["Status"] == "FAILED" and "not a .tar.gz" in d["FailureReason"], d

    payloads = payload_archive(tmp_path / "ok.tar.gz", {"a.csv": ROWS[0].encode()})
    base = {"JobName": unique("refused"), "RoleArn": ROLE, "JobType": "Default", "InputConfig": input_config(model, payloads)}
    for change, words in (
        ({"JobType": "Fast"}, "Member must satisfy enum value set: [Default, Advanced]"),
        ({"InputConfig": {**input_config(model, payloads), "ModelPackageVersionArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/p/1"}}, "one of them"),
        ({"InputConfig": {**{k: v for k, v in input_config(model, payloads).items() if k != "ModelName"}, "ModelPackageVersionArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/p/1"}}, "does not exist"),
        ({"InputConfig": {"ModelName": model}}, "SamplePayloadUrl is required"),
        ({"InputConfig": input_config("no-such-model", payloads)}, "Could not find model"),
        ({"InputConfig": input_config(model, "file:///etc/passwd")}, "--file-root"),
        ({"JobType": "Advanced"}, "needs InputConfig.EndpointConfigurations"),
        ({"InputConfig": input_config(model, payloads, EndpointConfigurations=[{"InstanceType": "ml.c5.large"}] * 11)}, "1 to 10"),
        ({"InputConfig": input_config(model, payloads, EndpointConfigurations=[{"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}])}, "ServerlessConfig"),
        ({"InputConfig": input_config(model, payloads, EndpointConfigurations=[{"InstanceType": "ml.bogus.large"}])}, "ml.bogus.large"),
        ({"StoppingConditions": {"ModelLatencyThresholds": [{"Percentile": "median", "ValueInMilliseconds": 5}]}}, "P50, P90, P95, P99"),
        ({"InputConfig": input_config(model, payloads, TrafficPattern={"TrafficType": "WAVES"})}, "PHASES, STAIRS"),
        ({"InputConfig": input_config(model, payloads, JobDurationInSeconds=10**9)}, "at most"),
    ):
        with pytest.raises(Exception) as e:
            sm.create_inference_recommendations_job(**{**base, **change})
        assert words in error_message(e), (change, error_message(e))
    for call in (lambda: sm.describe_inference_recommendations_job(JobName="no-such-job"), lambda: sm.stop_inference_recommendations_job(JobName="no-such-job")):
        with pytest.raises(Exception) as e:
            call()
        assert "does not exist" in error_message(e)


def test_a_stopped_job_ends_its_fleet(own_berth, tmp_path):
    """A job stopped in the middle of a load test is STOPPED, its candidate's instances gone."""
    server = own_berth()
    sm = server.sm()
    model = iris_model(sm, tmp_path)
    job = unique("stopped-job")
    sm.create_inference_recommendations_job(
        JobName=job, JobType="Advanced", RoleArn=ROLE,
        InputConfig=input_config(model, payload_archive(tmp_path / "s.tar.gz", {"a.csv": ROWS[0].encode()}),
                                 EndpointConfigurations=[{"InstanceType": "ml.c5.large"}, {"InstanceType": "ml.m5.large"}],
                                 TrafficPattern={"Phases": [{"InitialNumberOfUsers": 1, "SpawnRate": 0, "DurationInSeconds": 120}]}),
    )
    deadline = time.time() + 60
    while not any(s["Status"] == "IN_PROGRESS" for s in sm.list_inference_recommendations_job_steps(JobName=job)["Steps"]):
        assert time.time() < deadline
        time.sleep(0.5)
    while not marked_workers(server):
        assert time.time() < deadline, "the candidate's instance never started"
        time.sleep(0.2)
    sm.stop_inference_recommendations_job(JobName=job)
    assert sm.describe_inference_recommendations_job(JobName=job)["Status"] in ("STOPPING", "STOPPED")
    d = wait_job(sm, job, timeout=60)
    assert d["Status"] == "STOPPED", d
    assert [s["Status"] for s in sm.list_inference_recommendations_job_steps(JobName=job)["Steps"]] == ["STOPPED", "STOPPED"]
    assert marked_workers(server) == [], "the candidate's instances ended with the job"
    with pytest.raises(Exception) as e:
        sm.stop_inference_recommendations_job(JobName=job)
    assert "status STOPPED" in error_message(e)


def test_a_job_cut_by_a_restart_runs_again_and_leaves_no_instance(own_berth, tmp_path):
    server = own_berth()
    sm = server.sm()
    model = iris_model(sm, tmp_path)
    job = unique("restarted-job")
    sm.create_inference_recommendations_job(
        JobName=job, JobType="Advanced", RoleArn=ROLE,
        InputConfig=input_config(model, payload_archive(tmp_path / "r.tar.gz", {"a.csv": ROWS[0].encode()}),
                                 EndpointConfigurations=[{"InstanceType": "ml.c5.large"}],
                                 TrafficPattern={"Phases": [{"InitialNumberOfUsers": 2, "SpawnRate": 0, "DurationInSeconds": 6}]}),
    )
    deadline = time.time() + 60
    while not marked_workers(server):
        assert time.time() < deadline, "the candidate's instance never started"
        time.sleep(0.2)
    old = server.proc.pid
    server.restart(signal.SIGKILL)
    d = wait_job(server.sm(), job, timeout=120)
    assert d["Status"] == "COMPLETED" and len(d["InferenceRecommendations"]) == 1, d
    assert marked_workers(server) == [], "the rerun's fleet ended with it"
    assert marked_workers(server, old) == [], "the first server's instances died with it"
    logs = boto3.client("logs", endpoint_url=server.url, **CREDENTIALS)
    stream = logs.get_log_events(logGroupName="/aws/sagemaker/InferenceRecommendationsJobs", logStreamName=f"{job}/execution", startFromHead=True)
    messages = [e["message"] for e in stream["events"]]
    assert any("berth restarted while the job ran" in m for m in messages), messages
    assert messages[-1].startswith("COMPLETED: 1 recommendation"), messages


def test_the_sdks_right_size_then_deploy(berth, s3_server, tmp_path, monkeypatch, capsys):
    """`Model.right_size(...)` (an Advanced job, with the SDK's default Verbose log tailing
    through CloudWatch Logs) and then `deploy()`, which takes the cheapest recommendation. The
    SDK's waits sleep a minute between looks; here they sleep a second."""
    sagemaker = pytest.importorskip("sagemaker")
    if not sagemaker.__version__.startswith("2."):
        pytest.skip("right_size is SDK v2's")
    from sagemaker.inference_recommender.inference_recommender_mixin import ModelLatencyThreshold, Phase
    from sagemaker.model import Model
    from sagemaker.parameter import CategoricalParameter

    from conftest import sdk_session

    real_sleep = time.sleep
    monkeypatch.setattr(sagemaker.session.time, "sleep", lambda s: real_sleep(min(s, 1)))
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", berth.url)
    session = next(sdk_session(berth, s3_server, unique("right-size")))
    shutil.copy(IRIS, tmp_path / "model.onnx")
    model = Model(image_uri="berth/onnx", model_data=f"file://{tmp_path / 'model.onnx'}", role=ROLE, sagemaker_session=session)
    model.right_size(
        sample_payload_url=payload_archive(tmp_path / "p.tar.gz", {"a.csv": ROWS[0].encode()}),
        supported_content_types=["text/csv"],
        framework="SKLEARN",
        # (The SDK sends an empty range list, which botocore refuses, without an environment value.)
        hyperparameter_ranges=[{"instance_types": CategoricalParameter(["ml.m5.large", "ml.c5.large"]), "OMP_NUM_THREADS": CategoricalParameter(["1"])}],
        phases=[Phase(duration_in_seconds=5, initial_number_of_users=2, spawn_rate=0)],
        model_latency_thresholds=[ModelLatencyThreshold(percentile="P95", value_in_milliseconds=100)],
    )
    out = capsys.readouterr().out
    assert "Candidate 2/2" in out and "COMPLETED: 2 recommendation(s)" in out, out
    recs = model.inference_recommendations
    assert [r["EndpointConfiguration"]["InstanceType"] for r in recs] == ["ml.m5.large", "ml.c5.large"], "the cheapest last"
    model.deploy()  # a Model without a predictor class returns no predictor
    d = berth.sm().describe_endpoint(EndpointName=model.endpoint_name)
    config = berth.sm().describe_endpoint_config(EndpointConfigName=d["EndpointConfigName"])
    assert d["EndpointStatus"] == "InService"
    assert (config["ProductionVariants"][0]["InstanceType"], config["ProductionVariants"][0]["InitialInstanceCount"]) == ("ml.c5.large", 1)
    berth.sm().delete_endpoint(EndpointName=model.endpoint_name)


def test_a_job_can_load_test_a_running_endpoint_and_leaves_it_running(berth, tmp_path):
    sm = berth.sm()
    model = iris_model(sm, tmp_path)
    endpoint = unique("tested-endpoint")
    sm.create_endpoint_config(EndpointConfigName=endpoint, ProductionVariants=[{**variant("AllTraffic", model), "InstanceType": "ml.c5.xlarge"}])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    assert wait_status(sm, endpoint)["EndpointStatus"] == "InService"
    job = unique("endpoint-job")
    sm.create_inference_recommendations_job(
        JobName=job, JobType="Advanced", RoleArn=ROLE,
        InputConfig=input_config(model, payload_archive(tmp_path / "e.tar.gz", {"a.csv": ROWS[0].encode()}),
                                 Endpoints=[{"EndpointName": endpoint}],
                                 TrafficPattern={"Phases": [{"InitialNumberOfUsers": 3, "SpawnRate": 0, "DurationInSeconds": 4}]}),
    )
    d = wait_job(sm, job, timeout=60)
    assert d["Status"] == "COMPLETED", d.get("FailureReason")
    [performance] = d["EndpointPerformances"]
    assert performance["EndpointInfo"] == {"EndpointName": endpoint} and 2 * 60 <= performance["Metrics"]["MaxInvocations"] <= 4 * 60, performance
    [step] = sm.list_inference_recommendations_job_steps(JobName=job)["Steps"]
    assert step["InferenceBenchmark"]["EndpointConfiguration"]["InstanceType"] == "ml.c5.xlarge"
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
    assert berth.runtime().invoke_endpoint(EndpointName=endpoint, Body=ROWS[0].encode(), ContentType="text/csv")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(Exception) as e:
        sm.create_inference_recommendations_job(JobName=unique("gone"), JobType="Advanced", RoleArn=ROLE,
                                                 InputConfig=input_config(model, payload_archive(tmp_path / "g.tar.gz", {"a.csv": b"1"}), Endpoints=[{"EndpointName": "no-such-endpoint"}]))
    assert "Could not find endpoint" in error_message(e)
