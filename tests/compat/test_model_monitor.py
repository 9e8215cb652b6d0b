"""Model Monitor baselining through the SageMaker Python SDK v2 unchanged:
`DefaultModelMonitor.suggest_baseline` sends CreateProcessingJob with AWS's analyzer image, berth
does the analysis itself, and the SDK reads `statistics.json` and `constraints.json` back from S3
(the moto server). The figures are checked against NumPy on the same data."""

import csv
import io
import time

import boto3
import numpy as np
import pytest

from conftest import CREDENTIALS, ROLE, create_echo_model, error_code, error_message, sdk_session, unique, wait_status

sagemaker = pytest.importorskip("sagemaker")
if not sagemaker.__version__.startswith("2."):
    pytest.skip("this module drives SDK v2", allow_module_level=True)

from sagemaker.model_monitor import DefaultModelMonitor, EndpointInput, ModelQualityMonitor  # noqa: E402
from sagemaker.model_monitor.dataset_format import DatasetFormat  # noqa: E402

BUCKET = "berth-model-monitor"
ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


@pytest.fixture
def session(berth, s3_server):
    yield from sdk_session(berth, s3_server, BUCKET)


def dataset(rows=2_000, seed=7):
    """A CSV with a header: two numeric features, an integer one with gaps, a categorical one."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, rows)
    income = rng.normal(50_000, 12_000, rows)
    score = rng.uniform(-1, 1, rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["age", "income", "score", "colour"])
    for i in range(rows):
        w.writerow([age[i] if i % 50 else "", repr(float(income[i])), repr(float(score[i])), colour[i]])
    return out.getvalue(), {"age": age, "income": income, "score": score, "colour": colour}


def upload(session, key, text):
    session.boto_session.client("s3").put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    return f"s3://{BUCKET}/{key}"


def monitor(session):
    return DefaultModelMonitor(role=ROLE, instance_count=1, instance_type="ml.m5.xlarge", sagemaker_session=session, max_runtime_in_seconds=600)


def test_suggest_baseline_writes_the_analyzers_statistics_and_constraints(session):
    text, columns = dataset()
    prefix = unique("baseline")
    data = upload(session, f"{prefix}/input/train.csv", text)
    m = monitor(session)
    assert m.image_uri.endswith("/sagemaker-model-monitor-analyzer"), m.image_uri
    job = m.suggest_baseline(
        baseline_dataset=data,
        dataset_format=DatasetFormat.csv(header=True),
        output_s3_uri=f"s3://{BUCKET}/{prefix}/output",
        wait=True,
        logs=False,
    )
    described = job.describe()
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["AppSpecification"]["ImageUri"] == m.image_uri
    assert described["ProcessingInputs"][0]["S3Input"]["S3Uri"] == data
    assert described["ProcessingJobArn"] == f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job.job_name.lower()}"

    stats = m.baseline_statistics().body_dict
    assert stats["dataset"]["item_count"] == 2_000
    features = {f["name"]: f for f in stats["features"]}
    assert [f["name"] for f in stats["features"]] == ["age", "income", "score", "colour"]
    assert features["age"]["inferred_type"] == "Integral"
    assert features["income"]["inferred_type"] == "Fractional"
    assert features["colour"]["inferred_type"] == "String"

    present = np.array([v for i, v in enumerate(columns["age"]) if i % 50], dtype=float)
    age = features["age"]["numerical_statistics"]
    assert age["common"] == {"num_present": len(present), "num_missing": 2_000 - len(present)}
    for name, values in (("age", present), ("income", columns["income"]), ("score", columns["score"])):
        n = features[name]["numerical_statistics"]
        assert n["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-9), name
        assert n["sum"] == pytest.approx(values.sum(), rel=1e-9, abs=1e-9), name
        assert n["std_dev"] == pytest.approx(values.std(), rel=1e-9), name
        assert (n["min"], n["max"]) == (values.min(), values.max()), name
        kll = n["distribution"]["kll"]
        assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
        assert len(kll["buckets"]) == 10
        assert sum(b["count"] for b in kll["buckets"]) == len(values)
        # Every bucket's count against NumPy's count in the same bounds (the last one closed).
        for i, b in enumerate(kll["buckets"]):
            upper = values <= b["upper_bound"] if i == 9 else values < b["upper_bound"]
            assert b["count"] == np.count_nonzero((values >= b["lower_bound"]) & upper), (name, i)

    colour = features["colour"]["string_statistics"]
    assert colour["distinct_count"] == 3
    counts = {b["value"]: b["count"] for b in colour["distribution"]["categorical"]["buckets"]}
    assert counts == {c: int(np.count_nonzero(columns["colour"] == c)) for c in ("red", "green", "blue")}

    constraints = m.suggested_constraints().body_dict
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["age"]["completeness"] == pytest.approx(len(present) / 2_000)
    assert by_name["age"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["score"]["num_constraints"] == {"is_non_negative": False}
    assert by_name["colour"]["string_constraints"] == {"domains": ["blue", "green", "red"]}
    config = constraints["monitoring_config"]
    assert config["distribution_constraints"]["comparison_threshold"] == 0.1
    assert config["distribution_constraints"]["categorical_drift_method"] == "LInfinity"

    listed = session.sagemaker_client.list_processing_jobs(NameContains=job.job_name[-12:], StatusEquals="Completed")
    assert [s["ProcessingJobName"] for s in listed["ProcessingJobSummaries"]] == [job.job_name]


def test_a_baseline_that_cannot_be_made_fails_with_the_analyzers_reason(session):
    """The SDK's wait raises with the job's FailureReason, as it does on SageMaker."""
    m = monitor(session)
    for body, reason in (
        ("age,income\n", "AlgorithmError: Job inputs had no data"),
        ("a,b\n1,2\n1,2,3\n", "3 values, but the header names 2 features"),
    ):
        name = unique("bad-baseline")
        data = upload(session, f"{name}/train.csv", body)
        with pytest.raises(sagemaker.exceptions.UnexpectedStatusException) as e:
            m.suggest_baseline(baseline_dataset=data, dataset_format=DatasetFormat.csv(header=True), job_name=name, wait=True, logs=False)
        assert f"Reason: {reason}" in str(e.value) or reason in str(e.value), e.value
        d = session.sagemaker_client.describe_processing_job(ProcessingJobName=name)
        assert d["ProcessingJobStatus"] == "Failed" and reason in d["FailureReason"], d
        assert "ProcessingEndTime" in d and d["ExitMessage"] in d["FailureReason"]


def test_other_processing_images_and_scripts_are_refused_and_jobs_are_found_by_name(berth):
    sm = berth.sm()
    job = {
        "ProcessingJobName": unique("not-the-analyzer"),
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
        "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-processing:1"},
        "RoleArn": ROLE,
    }
    with pytest.raises(Exception) as e:
        sm.create_processing_job(**job)
    assert error_code(e) == "ValidationException" and "sagemaker-model-monitor-analyzer" in error_message(e)

    analyzer = {
        **job,
        "AppSpecification": {"ImageUri": ANALYZER},
        "ProcessingInputs": [{"InputName": "baseline_dataset_input", "S3Input": {"S3Uri": f"s3://{BUCKET}/x", "LocalPath": "/opt/ml/processing/input/baseline_dataset_input", "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output", "S3Output": {"S3Uri": f"s3://{BUCKET}/out", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
        "Environment": {
            "dataset_format": '{"csv": {"header": true}}',
            "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
            "output_path": "/opt/ml/processing/output",
            "record_preprocessor_script": "/opt/ml/processing/code/pre.py",
        },
    }
    with pytest.raises(Exception) as e:
        sm.create_processing_job(**analyzer)
    assert "does not run the caller's scripts" in error_message(e)
    for env, words in (
        ({"dataset_source": "/elsewhere"}, "is the LocalPath of no ProcessingInput"),
        ({"dataset_format": '{"parquet": {}}'}, "not one berth reads"),
        ({"dataset_format": "not json"}, "dataset_format is not JSON"),
    ):
        settings = {k: v for k, v in analyzer["Environment"].items() if k != "record_preprocessor_script"}
        with pytest.raises(Exception) as e:
            sm.create_processing_job(**{**analyzer, "Environment": {**settings, **env}})
        assert words in error_message(e), (env, error_message(e))

    with pytest.raises(Exception) as e:
        sm.describe_processing_job(ProcessingJobName="no-such-job")
    assert error_code(e) == "ResourceNotFound" and "does not exist" in error_message(e)
    with pytest.raises(Exception) as e:
        sm.stop_processing_job(ProcessingJobName="no-such-job")
    assert error_code(e) == "ResourceNotFound"


def capturing_endpoint(sm, name, destination):
    """An echo endpoint capturing every request's input and output to `destination`."""
    create_echo_model(sm, name)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": destination,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
        },
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_status(sm, name)["EndpointStatus"] == "InService"


def send_rows(runtime, endpoint, columns, shift=0.0, rows=300):
    for i in range(rows):
        income, score = float(columns["income"][i] + shift), float(columns["score"][i])
        body = f"{columns['age'][i]},{income!r},{score!r},{columns['colour'][i]}"
        runtime.invoke_endpoint(EndpointName=endpoint, Body=body.encode(), ContentType="text/csv")


def wait_execution(sm, schedule, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        summaries = sm.list_monitoring_executions(MonitoringScheduleName=schedule, SortBy="ScheduledTime", SortOrder="Descending")["MonitoringExecutionSummaries"]
        if summaries and summaries[0]["MonitoringExecutionStatus"] not in ("Pending", "InProgress"):
            return summaries[0]
        time.sleep(0.5)
    raise AssertionError(f"no execution of {schedule} ended within {timeout} s")


def test_a_schedule_on_captured_traffic_finds_drift_publishes_it_and_an_alarm_fires(berth, session, s3_server):
    """The SDK's data-quality flow end to end: a baseline, two endpoints capturing traffic (one
    drawn from the baseline's distribution, one with `income` shifted), a NOW schedule on each;
    the first completes with no drift, the second with a baseline_drift_check on income; the
    drift is a CloudWatch metric, and an alarm on it goes to ALARM."""
    sm, runtime = berth.sm(), berth.runtime()
    text, columns = dataset(rows=2_000)
    prefix = unique("monitor")
    m = monitor(session)
    m.suggest_baseline(baseline_dataset=upload(session, f"{prefix}/train.csv", text), dataset_format=DatasetFormat.csv(header=True), output_s3_uri=f"s3://{BUCKET}/{prefix}/baseline", wait=True, logs=False)
    steady, shifted = unique("steady"), unique("shifted")
    for endpoint in (steady, shifted):
        capturing_endpoint(sm, endpoint, f"s3://{BUCKET}/{prefix}/capture")
    send_rows(runtime, steady, columns)
    send_rows(runtime, shifted, columns, shift=40_000.0)
    time.sleep(2)  # the capture writer's objects land each second

    cw = boto3.client("cloudwatch", endpoint_url=berth.url, **CREDENTIALS)
    dims = lambda e: [{"Name": "Endpoint", "Value": e}, {"Name": "MonitoringSchedule", "Value": f"{e}-schedule"}]  # noqa: E731
    # Set before the executions: alarms evaluate each period as it closes (a short one, soon).
    cw.put_metric_alarm(
        AlarmName=f"{shifted}-drift", Namespace="aws/sagemaker/Endpoints/data-metrics", MetricName="feature_baseline_drift_income",
        Dimensions=dims(shifted), Statistic="Maximum", Period=10, EvaluationPeriods=1, Threshold=0.1, ComparisonOperator="GreaterThanThreshold",
    )
    results, monitors = {}, {}
    for endpoint in (steady, shifted):
        schedule = f"{endpoint}-schedule"
        # One monitor object per schedule, as the SDK wants; the baseline is the first's.
        monitors[endpoint] = monitor(session)
        monitors[endpoint].create_monitoring_schedule(
            monitor_schedule_name=schedule,
            endpoint_input=endpoint,
            output_s3_uri=f"s3://{BUCKET}/{prefix}/reports",
            statistics=m.baseline_statistics(),
            constraints=m.suggested_constraints(),
            schedule_cron_expression="NOW",
            data_analysis_start_time="-PT1H",
            data_analysis_end_time="-PT0H",
            enable_cloudwatch_metrics=True,
        )
        results[endpoint] = wait_execution(sm, schedule)
        described = sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
        assert described["MonitoringScheduleStatus"] == "Scheduled"
        assert described["LastMonitoringExecutionSummary"]["ProcessingJobArn"] == results[endpoint]["ProcessingJobArn"]
        assert described["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == "NOW"

    assert results[steady]["MonitoringExecutionStatus"] == "Completed", results[steady]
    assert results[shifted]["MonitoringExecutionStatus"] == "CompletedWithViolations", results[shifted]

    # The SDK reads the latest execution's files through its processing job.
    stats = monitors[shifted].latest_monitoring_statistics().body_dict
    assert stats["dataset"]["item_count"] == 300
    assert [f["name"] for f in stats["features"]] == ["age", "income", "score", "colour"], "captured CSV takes the baseline's names"
    income = next(f for f in stats["features"] if f["name"] == "income")["numerical_statistics"]
    assert income["mean"] == pytest.approx(float(np.mean(columns["income"][:300] + 40_000.0)), rel=1e-9)
    violations = monitors[shifted].latest_monitoring_constraint_violations().body_dict["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [("income", "baseline_drift_check")], violations
    job = sm.describe_processing_job(ProcessingJobName=results[shifted]["ProcessingJobArn"].split("/")[-1])
    assert job["ProcessingJobStatus"] == "Completed" and job["ExitMessage"].startswith("CompletedWithViolations")
    assert job["MonitoringScheduleArn"].endswith(f"monitoring-schedule/{shifted}-schedule".lower())

    drift = {}
    for endpoint in (steady, shifted):
        points = cw.get_metric_statistics(
            Namespace="aws/sagemaker/Endpoints/data-metrics", MetricName="feature_baseline_drift_income", Dimensions=dims(endpoint),
            StartTime=time.time() - 3600, EndTime=time.time() + 60, Period=60, Statistics=["Maximum"],
        )["Datapoints"]
        assert len(points) == 1, points
        drift[endpoint] = points[0]["Maximum"]
    assert drift[steady] < 0.1 < drift[shifted], drift
    deadline = time.time() + 30
    while cw.describe_alarms(AlarmNames=[f"{shifted}-drift"])["MetricAlarms"][0]["StateValue"] != "ALARM":
        assert time.time() < deadline, cw.describe_alarms(AlarmNames=[f"{shifted}-drift"])["MetricAlarms"][0]
        time.sleep(0.5)

    # A baseline that is not one, and an output that cannot be written: Failed, with the reason.
    for name, baseline, output, words in (
        ("bad-baseline", f"s3://{BUCKET}/{prefix}/train.csv", f"s3://{BUCKET}/{prefix}/reports", "is not a constraints file"),
        ("bad-output", m.suggested_constraints().file_s3_uri, f"s3://{unique('no-such-bucket')}/reports", "cannot write"),
    ):
        sm.create_monitoring_schedule(MonitoringScheduleName=f"{steady}-{name}", MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H", "DataAnalysisEndTime": "-PT0H"},
            "MonitoringJobDefinition": {
                "BaselineConfig": {"ConstraintsResource": {"S3Uri": baseline}},
                "MonitoringInputs": [{"EndpointInput": {"EndpointName": steady, "LocalPath": "/opt/ml/processing/input/endpoint"}}],
                "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {"S3Uri": output, "LocalPath": "/opt/ml/processing/output"}}]},
                "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
                "MonitoringAppSpecification": {"ImageUri": ANALYZER}, "RoleArn": ROLE,
            }})
        failed = wait_execution(sm, f"{steady}-{name}")
        assert failed["MonitoringExecutionStatus"] == "Failed" and words in failed["FailureReason"], failed
        sm.delete_monitoring_schedule(MonitoringScheduleName=f"{steady}-{name}")

    for endpoint in (steady, shifted):
        monitors[endpoint].delete_monitoring_schedule()
        with pytest.raises(Exception) as e:
            sm.describe_monitoring_schedule(MonitoringScheduleName=f"{endpoint}-schedule")
        assert error_code(e) == "ResourceNotFound"


def test_schedules_and_job_definitions_refuse_what_berth_does_not_do(berth):
    sm = berth.sm()
    name = unique("dq")
    capturing_endpoint(sm, name, f"s3://{BUCKET}/hostile-capture")
    definition = {
        "JobDefinitionName": name,
        "DataQualityAppSpecification": {"ImageUri": ANALYZER},
        "DataQualityJobInput": {"EndpointInput": {"EndpointName": name, "LocalPath": "/opt/ml/processing/input/endpoint"}},
        "DataQualityJobOutputConfig": {"MonitoringOutputs": [{"S3Output": {"S3Uri": f"s3://{BUCKET}/reports", "LocalPath": "/opt/ml/processing/output"}}]},
        "JobResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
        "RoleArn": ROLE,
    }
    for change, words in (
        ({"DataQualityAppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1"}}, "is not it"),
        ({"DataQualityAppSpecification": {"ImageUri": ANALYZER, "RecordPreprocessorSourceUri": "s3://b/pre.py"}}, "does not run the caller's scripts"),
        ({"DataQualityJobInput": {"BatchTransformInput": {"DataCapturedDestinationS3Uri": "s3://b/x", "DatasetFormat": {"Csv": {"Header": True}}, "LocalPath": "/x"}}}, "BatchTransformInput"),
        ({"DataQualityJobInput": {"EndpointInput": {"EndpointName": name, "LocalPath": "/x", "StartTimeOffset": "PT1H"}}}, "Invalid time offset"),
        ({"DataQualityJobOutputConfig": {"MonitoringOutputs": definition["DataQualityJobOutputConfig"]["MonitoringOutputs"] * 2}}, "one output"),
        ({"DataQualityBaselineConfig": {"ConstraintsResource": {"S3Uri": "/etc/passwd"}}}, "must be an s3:// or file:// URI"),
    ):
        with pytest.raises(Exception) as e:
            sm.create_data_quality_job_definition(**{**definition, **change})
        assert words in error_message(e), (change, error_message(e))
    sm.create_data_quality_job_definition(**definition)
    described = sm.describe_data_quality_job_definition(JobDefinitionName=name)
    assert described["DataQualityJobInput"] == definition["DataQualityJobInput"]
    assert [d["MonitoringJobDefinitionName"] for d in sm.list_data_quality_job_definitions(EndpointName=name)["JobDefinitionSummaries"]] == [name]

    config = {"MonitoringJobDefinitionName": name, "MonitoringType": "DataQuality", "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"}}
    for change, words in (
        ({"ScheduleConfig": {"ScheduleExpression": "cron(*/5 * ? * * *)"}}, "hourly or daily"),
        ({"ScheduleConfig": {"ScheduleExpression": "rate(0 minutes)"}}, "positive whole number"),
        ({"ScheduleConfig": {"ScheduleExpression": "NOW"}}, "needs DataAnalysisStartTime"),
        ({"ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT0H", "DataAnalysisEndTime": "-PT1H"}}, "must be before"),
        ({"MonitoringType": "ModelBias"}, "monitors data quality and model quality"),
        ({"MonitoringJobDefinitionName": "no-such-definition"}, "Could not find job definition"),
    ):
        with pytest.raises(Exception) as e:
            sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig={**config, **change})
        assert words in error_message(e), (change, error_message(e))
    sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=config)
    with pytest.raises(Exception) as e:
        sm.delete_data_quality_job_definition(JobDefinitionName=name)
    assert "delete the schedule first" in error_message(e)
    sm.stop_monitoring_schedule(MonitoringScheduleName=name)
    assert sm.describe_monitoring_schedule(MonitoringScheduleName=name)["MonitoringScheduleStatus"] == "Stopped"
    sm.start_monitoring_schedule(MonitoringScheduleName=name)
    listed = sm.list_monitoring_schedules(EndpointName=name, StatusEquals="Scheduled")["MonitoringScheduleSummaries"]
    assert [s["MonitoringScheduleName"] for s in listed] == [name]
    sm.delete_monitoring_schedule(MonitoringScheduleName=name)
    sm.delete_data_quality_job_definition(JobDefinitionName=name)
    with pytest.raises(Exception) as e:
        sm.describe_data_quality_job_definition(JobDefinitionName=name)
    assert error_code(e) == "ResourceNotFound"


def test_processing_jobs_logs_are_served_as_cloudwatch_logs(berth, session, monkeypatch, capsys):
    """The SDK's `logs=True` path and `aws logs` read a processing job's log through CloudWatch
    Logs' read API on berth's port (AWS_ENDPOINT_URL_CLOUDWATCH_LOGS)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", berth.url)
    text, _ = dataset(rows=100)
    name = unique("logged")
    m = monitor(session)
    m.suggest_baseline(baseline_dataset=upload(session, f"{name}/train.csv", text), dataset_format=DatasetFormat.csv(header=True), job_name=name, wait=True, logs=False)
    logs = boto3.client("logs", endpoint_url=berth.url, **CREDENTIALS)
    groups = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/P")["logGroups"]]
    assert groups == ["/aws/sagemaker/ProcessingJobs"]
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=name + "/")["logStreams"]
    assert [s["logStreamName"].split("/")[0] for s in streams] == [name] and streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=streams[0]["logStreamName"], startFromHead=True)
    messages = [e["message"] for e in events["events"]]
    assert any("Analyzed 100 records of 4 features" in m for m in messages), messages
    again = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=streams[0]["logStreamName"], nextToken=events["nextForwardToken"])
    assert again["events"] == [], "read to the end"
    found = logs.filter_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=name, filterPattern="statistics.json")["events"]
    assert len(found) == 1 and found[0]["logStreamName"] == streams[0]["logStreamName"]

    # The SDK reads the same (as suggest_baseline's default logs=True does once the job ended).
    # (boto3 reads AWS_ENDPOINT_URL_CLOUDWATCH_LOGS when a session is made.)
    logged = sagemaker.Session(boto_session=boto3.Session(**CREDENTIALS), sagemaker_client=session.sagemaker_client, default_bucket=BUCKET)
    logged.logs_for_processing_job(name, wait=False, poll=1)
    assert "Analyzed 100 records of 4 features" in capsys.readouterr().out

    for call, code in (
        (lambda: logs.describe_log_streams(logGroupName="/aws/sagemaker/Endpoints/none"), "ResourceNotFoundException"),
        (lambda: logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName="nope/algo-1-1"), "ResourceNotFoundException"),
        (lambda: logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=streams[0]["logStreamName"], nextToken="bogus"), "InvalidParameterException"),
        (lambda: logs.put_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName="x", logEvents=[{"timestamp": 1, "message": "m"}]), "UnknownOperationException"),
    ):
        with pytest.raises(Exception) as e:
            call()
        assert error_code(e) == code, error_message(e)


def labelled_probabilities(rows, seed):
    """Labels (40% positive) and a model's probability of the positive class for each: right more
    often than not, never sure."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=rows) < 0.4).astype(int)
    probabilities = np.clip(labels * 0.35 + rng.uniform(0.0, 0.65, rows), 0.01, 0.99).round(4)
    return labels, probabilities


def test_model_quality_baseline_and_schedule_compute_what_scikit_learn_does(berth, session):
    """The SDK's model-quality flow: `ModelQualityMonitor.suggest_baseline` on a labelled CSV (its
    metrics are scikit-learn's), then a schedule over an endpoint's captured answers joined with
    ground truth (in S3, and sent to berth's own ground-truth API) by InferenceId: the execution's accuracy, precision, recall, F1 and AUC are
    scikit-learn's on the same pairs, a worse model than the baseline violates its constraints,
    and the metrics are in CloudWatch's model-metrics namespace."""
    from sklearn import metrics as skm

    sm, runtime = berth.sm(), berth.runtime()
    prefix = unique("quality")
    labels, probabilities = labelled_probabilities(1_000, seed=11)
    predictions = (probabilities >= 0.5).astype(int)
    baseline = "probability,prediction,label\n" + "".join(f"{p},{q},{l}\n" for p, q, l in zip(probabilities, predictions, labels))
    m = ModelQualityMonitor(role=ROLE, instance_count=1, instance_type="ml.m5.xlarge", sagemaker_session=session, max_runtime_in_seconds=600)
    job = m.suggest_baseline(
        baseline_dataset=upload(session, f"{prefix}/baseline.csv", baseline),
        dataset_format=DatasetFormat.csv(header=True),
        problem_type="BinaryClassification",
        inference_attribute="prediction",
        probability_attribute="probability",
        ground_truth_attribute="label",
        output_s3_uri=f"s3://{BUCKET}/{prefix}/baseline",
        wait=True,
        logs=False,
    )
    assert job.describe()["Environment"]["analysis_type"] == "MODEL_QUALITY"
    stats = m.latest_baselining_job.baseline_statistics().body_dict
    got = stats["binary_classification_metrics"]
    assert stats["dataset"]["item_count"] == 1_000
    expected = {
        "accuracy": skm.accuracy_score(labels, predictions),
        "precision": skm.precision_score(labels, predictions),
        "recall": skm.recall_score(labels, predictions),
        "f1": skm.f1_score(labels, predictions),
        "f2": skm.fbeta_score(labels, predictions, beta=2),
        "auc": skm.roc_auc_score(labels, probabilities),
    }
    for name, value in expected.items():
        assert got[name]["value"] == pytest.approx(value, abs=1e-12), name
        assert got[name]["standard_deviation"] > 0, "1000 rows give a deviation"
    tn, fp, fn, tp = skm.confusion_matrix(labels, predictions).ravel()
    assert got["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    constraints = m.latest_baselining_job.suggested_constraints().body_dict["binary_classification_constraints"]
    assert constraints["accuracy"] == {"threshold": got["accuracy"]["value"], "comparison_operator": "LessThanThreshold"}
    assert constraints["false_positive_rate"]["comparison_operator"] == "GreaterThanThreshold"

    # A worse model in production: its probabilities are noisier; each request carries an
    # InferenceId, and the ground truth names it. The echo model answers JSON with the request
    # in `body`: that is the probability.
    # Two variants share the traffic: berth also publishes each one's metrics (a Variant dimension).
    endpoint = unique("scored")
    create_echo_model(sm, endpoint)
    sm.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=[{"VariantName": v, "ModelName": endpoint, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0} for v in ("A", "B")],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{BUCKET}/{prefix}/capture",
                           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]},
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    assert wait_status(sm, endpoint)["EndpointStatus"] == "InService"
    live_labels, live = labelled_probabilities(300, seed=12)
    live = np.clip(live * 0.5 + np.random.default_rng(13).uniform(0, 0.5, 300), 0.01, 0.99).round(4)
    served = []
    for i, p in enumerate(live):
        answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=f"{p}".encode(), ContentType="text/csv", InferenceId=f"req-{i}")
        served.append(answer["InvokedProductionVariant"])
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime())
    truth = "".join(
        '{"groundTruthData": {"data": "%d", "encoding": "CSV"}, "eventMetadata": {"eventId": "req-%d"}, "eventVersion": "0"}\n' % (l, i)
        for i, l in enumerate(live_labels[:250])
    )
    upload(session, f"{prefix}/ground-truth/{hour}/labels.jsonl", truth)
    # The last 50 labels arrive through berth's own ground-truth API instead.
    import requests

    labels = [{"inference_id": f"req-{i}", "label": int(live_labels[i])} for i in range(250, 300)]
    assert requests.post(f"{berth.url}/berth/v1/endpoints/{endpoint}/ground-truth", json={"labels": labels}, timeout=10).json() == {"stored": 50}
    time.sleep(2)  # the capture writer's objects land each second

    schedule = f"{endpoint}-quality"
    m.create_monitoring_schedule(
        monitor_schedule_name=schedule,
        endpoint_input=EndpointInput(endpoint_name=endpoint, destination="/opt/ml/processing/input_data", probability_attribute="$.body", probability_threshold_attribute=0.5),
        ground_truth_input=f"s3://{BUCKET}/{prefix}/ground-truth",
        problem_type="BinaryClassification",
        output_s3_uri=f"s3://{BUCKET}/{prefix}/reports",
        constraints=m.suggested_constraints(),
        schedule_cron_expression="NOW",
        data_analysis_start_time="-PT1H",
        data_analysis_end_time="-PT0H",
        enable_cloudwatch_metrics=True,
    )
    described = sm.describe_model_quality_job_definition(JobDefinitionName=m.job_definition_name)
    assert described["ModelQualityAppSpecification"]["ProblemType"] == "BinaryClassification"
    result = wait_execution(sm, schedule)
    assert result["MonitoringType"] == "ModelQuality"
    assert result["MonitoringExecutionStatus"] == "CompletedWithViolations", result.get("FailureReason")

    y, scores = live_labels, live
    predicted = (scores >= 0.5).astype(int)
    stats = m.latest_monitoring_statistics().body_dict
    got = stats["binary_classification_metrics"]
    assert stats["dataset"]["item_count"] == 300
    assert got["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)
    assert got["f1"]["value"] == pytest.approx(skm.f1_score(y, predicted), abs=1e-12)
    assert got["auc"]["value"] == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    violations = m.latest_monitoring_constraint_violations().body_dict["violations"]
    assert "auc" in {v["metric_name"] for v in violations}, violations
    assert all(v["constraint_check_type"] in ("LessThanThreshold", "GreaterThanThreshold") for v in violations)

    cw = boto3.client("cloudwatch", endpoint_url=berth.url, **CREDENTIALS)
    points = cw.get_metric_statistics(
        Namespace="aws/sagemaker/Endpoints/model-metrics", MetricName="accuracy",
        Dimensions=[{"Name": "Endpoint", "Value": endpoint}, {"Name": "MonitoringSchedule", "Value": schedule}],
        StartTime=time.time() - 3600, EndTime=time.time() + 60, Period=60, Statistics=["Maximum"],
    )["Datapoints"]
    assert [p["Maximum"] for p in points] == [pytest.approx(got["accuracy"]["value"])]
    for variant in ("A", "B"):
        mine = [i for i in range(300) if served[i] == variant]
        points = cw.get_metric_statistics(
            Namespace="aws/sagemaker/Endpoints/model-metrics", MetricName="accuracy",
            Dimensions=[{"Name": "Endpoint", "Value": endpoint}, {"Name": "MonitoringSchedule", "Value": schedule}, {"Name": "Variant", "Value": variant}],
            StartTime=time.time() - 3600, EndTime=time.time() + 60, Period=60, Statistics=["Maximum"],
        )["Datapoints"]
        assert [p["Maximum"] for p in points] == [pytest.approx(skm.accuracy_score(y[mine], predicted[mine]))], variant
    definition = m.job_definition_name
    m.delete_monitoring_schedule()  # and, as the SDK does, its job definition
    with pytest.raises(Exception) as e:
        sm.describe_model_quality_job_definition(JobDefinitionName=definition)
    assert error_code(e) == "ResourceNotFound"


def test_model_quality_definitions_refuse_what_they_cannot_run(berth):
    sm = berth.sm()
    name = unique("mq")
    capturing_endpoint(sm, name, f"s3://{BUCKET}/hostile-mq-capture")
    definition = {
        "JobDefinitionName": name,
        "ModelQualityAppSpecification": {"ImageUri": ANALYZER, "ProblemType": "Regression"},
        "ModelQualityJobInput": {
            "EndpointInput": {"EndpointName": name, "LocalPath": "/opt/ml/processing/input/endpoint", "InferenceAttribute": "0"},
            "GroundTruthS3Input": {"S3Uri": f"s3://{BUCKET}/truth"},
        },
        "ModelQualityJobOutputConfig": {"MonitoringOutputs": [{"S3Output": {"S3Uri": f"s3://{BUCKET}/reports", "LocalPath": "/opt/ml/processing/output"}}]},
        "JobResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
        "RoleArn": ROLE,
    }
    endpoint_input = definition["ModelQualityJobInput"]["EndpointInput"]
    for change, words in (
        ({"ModelQualityAppSpecification": {"ImageUri": ANALYZER, "ProblemType": "Ranking"}}, "Ranking"),
        ({"ModelQualityJobInput": {"EndpointInput": endpoint_input, "GroundTruthS3Input": {"S3Uri": "file:///etc"}}}, "--file-root"),
        ({"ModelQualityJobInput": {"EndpointInput": {**endpoint_input, "InferenceAttribute": "$.[bad"}, "GroundTruthS3Input": {"S3Uri": "s3://b/t"}}}, "JSONPath"),
        ({"ModelQualityJobInput": {"EndpointInput": {**endpoint_input, "StartTimeOffset": "-PT1H", "EndTimeOffset": "-PT2H"}, "GroundTruthS3Input": {"S3Uri": "s3://b/t"}}}, "must be before"),
        ({"ModelQualityJobInput": {"EndpointInput": {**endpoint_input, "FeaturesAttribute": "features"}, "GroundTruthS3Input": {"S3Uri": "s3://b/t"}}}, "FeaturesAttribute"),
    ):
        with pytest.raises(Exception) as e:
            sm.create_model_quality_job_definition(**{**definition, **change})
        assert words in error_message(e), (change, error_message(e))
    sm.create_model_quality_job_definition(**definition)
    # Each kind's API sees its own definitions only.
    with pytest.raises(Exception) as e:
        sm.describe_data_quality_job_definition(JobDefinitionName=name)
    assert error_code(e) == "ResourceNotFound"
    assert [d["MonitoringJobDefinitionName"] for d in sm.list_model_quality_job_definitions(EndpointName=name)["JobDefinitionSummaries"]] == [name]
    assert sm.list_data_quality_job_definitions(EndpointName=name)["JobDefinitionSummaries"] == []
    inline = {"MonitoringType": "ModelQuality", "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"}, "MonitoringJobDefinition": {
        "MonitoringInputs": [{"EndpointInput": endpoint_input}], "MonitoringOutputConfig": definition["ModelQualityJobOutputConfig"],
        "MonitoringResources": definition["JobResources"], "MonitoringAppSpecification": {"ImageUri": ANALYZER}, "RoleArn": ROLE}}
    with pytest.raises(Exception) as e:
        sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=inline)
    assert "names its job definition" in error_message(e)
    # A schedule whose window has no labelled answer fails as the analyzer does.
    sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig={
        "MonitoringType": "ModelQuality", "MonitoringJobDefinitionName": name,
        "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H", "DataAnalysisEndTime": "-PT0H"}})
    failed = wait_execution(sm, name)
    assert failed["MonitoringExecutionStatus"] == "Failed" and "Job inputs had no data" in failed["FailureReason"], failed
    sm.delete_monitoring_schedule(MonitoringScheduleName=name)
    sm.delete_model_quality_job_definition(JobDefinitionName=name)
