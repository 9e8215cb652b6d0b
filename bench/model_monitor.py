#!/usr/bin/env python3
"""Model Monitor benchmark (not a test): berth's analyzer beside pandas on the same data.

  1. Baselining: a CSV of ROWS rows (two fractional features, an integral one with gaps, a
     categorical one) through CreateProcessingJob with the analyzer's image, from and to
     file:// locations (so S3 costs nothing); the time from CreateProcessingJob to its
     ProcessingEndTime, and berth's peak resident memory (VmHWM of a fresh berth) beside its
     resident memory before.
  2. One data-quality execution over ROWS captured requests: capture files written in
     SageMaker's layout (as berth's capture writer writes them) for a capturing endpoint, a NOW
     schedule over the hour; the time from its processing job's creation to its end, and berth's
     peak memory.
  3. pandas 3 on the same bytes in a subprocess (its peak is `ru_maxrss`): read the CSV and
     compute each numeric column's count, mean, sum, std, min, max and 10 quantiles, and each
     string column's value counts; and for the capture, parse each JSON line and its CSV input
     first.

Run with the test venv's Python after a release build (bench/model_monitor.sh does both).
Usage: model_monitor.py [rows, default 1000000]. Prints a Markdown table on stdout.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import boto3
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/bench"
ECHO = f"exec:{ROOT / 'tests' / 'containers' / 'echo_container.py'}"
ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"

PANDAS = r"""
import io, json, resource, sys, time
import pandas as pd
path, kind = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if kind == "csv":
    df = pd.read_csv(path)
else:
    rows = []
    with open(path, "rb") as f:
        for line in f:
            rows.append(json.loads(line)["captureData"]["endpointInput"]["data"])
    df = pd.read_csv(io.StringIO("\n".join(rows)), header=None, names=["a", "b", "c", "d"])
out = {}
for name in df.columns:
    col = df[name]
    if pd.api.types.is_numeric_dtype(col):
        out[name] = [col.count(), col.mean(), col.sum(), col.std(), col.min(), col.max(), *col.quantile([i / 10 for i in range(1, 11)])]
    else:
        out[name] = col.value_counts().to_dict()
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def start_berth(work):
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(ROOT / "target" / "release" / "berth"), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work / f"data-{time.time_ns()}"),
         "--exec-root", str(ROOT / "tests" / "containers"), "--file-root", str(work)],
        stdout=subprocess.PIPE,
        stderr=open(work / "berth.log", "ab"),
        env=env,
    )
    line = proc.stdout.readline().decode()
    return proc, line.split()[-1]


def memory_mb(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def client(url):
    return boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")


def dataset(work, rows):
    rng = np.random.default_rng(7)
    age = rng.integers(18, 90, rows)
    income = rng.normal(50_000, 12_000, rows)
    score = rng.uniform(-1, 1, rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    lines = [f"{'' if i % 50 == 0 else age[i]},{income[i]!r},{score[i]!r},{colour[i]}" for i in range(rows)]
    (work / "train").mkdir()
    (work / "train" / "data.csv").write_text("age,income,score,colour\n" + "\n".join(lines) + "\n")
    return lines


def baseline(work, rows):
    proc, url = start_berth(work)
    try:
        sm = client(url)
        before = memory_mb(proc.pid, "VmRSS")
        name = f"baseline-{time.time_ns()}"
        sm.create_processing_job(
            ProcessingJobName=name, RoleArn=ROLE, AppSpecification={"ImageUri": ANALYZER},
            ProcessingInputs=[{"InputName": "baseline_dataset_input", "S3Input": {"S3Uri": f"file://{work}/train", "LocalPath": "/opt/ml/processing/input/baseline", "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
            ProcessingOutputConfig={"Outputs": [{"OutputName": "monitoring_output", "S3Output": {"S3Uri": f"file://{work}/baseline", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
            ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
            Environment={"dataset_format": '{"csv": {"header": true}}', "dataset_source": "/opt/ml/processing/input/baseline", "output_path": "/opt/ml/processing/output"},
        )
        while (d := sm.describe_processing_job(ProcessingJobName=name))["ProcessingJobStatus"] == "InProgress":
            time.sleep(0.05)
        assert d["ProcessingJobStatus"] == "Completed", d.get("FailureReason")
        seconds = (d["ProcessingEndTime"] - d["CreationTime"]).total_seconds()
        items = json.loads((work / "baseline" / "statistics.json").read_text())["dataset"]["item_count"]
        assert items == rows, items
        return seconds, before, memory_mb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait()


def execution(work, lines):
    proc, url = start_berth(work)
    try:
        sm = client(url)
        name = f"captured-{time.time_ns()}"
        sm.create_model(ModelName=name, PrimaryContainer={"Image": ECHO}, ExecutionRoleArn=ROLE)
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
            DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"file://{work}/capture", "CaptureOptions": [{"CaptureMode": "Input"}]},
        )
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
            time.sleep(0.05)
        # The requests as the capture writer records them, in files of 10,000 in this hour.
        now = time.gmtime()
        hour = work / "capture" / name / "AllTraffic" / time.strftime("%Y/%m/%d/%H", now)
        hour.mkdir(parents=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))  # inside the window that ends now
        capture = work / "capture.jsonl"
        with open(capture, "w") as all_lines:
            for start in range(0, len(lines), 10_000):
                chunk = "".join(
                    json.dumps({"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": line, "encoding": "CSV"}},
                                "eventMetadata": {"eventId": f"e{start + i}", "inferenceTime": stamp}, "eventVersion": "0"}) + "\n"
                    for i, line in enumerate(lines[start:start + 10_000])
                )
                (hour / f"{start:08d}.jsonl").write_text(chunk)
                all_lines.write(chunk)
        before = memory_mb(proc.pid, "VmRSS")
        schedule = f"{name}-schedule"
        sm.create_monitoring_schedule(MonitoringScheduleName=schedule, MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H", "DataAnalysisEndTime": "-PT0H"},
            "MonitoringJobDefinition": {
                "BaselineConfig": {"ConstraintsResource": {"S3Uri": f"file://{work}/baseline/constraints.json"}, "StatisticsResource": {"S3Uri": f"file://{work}/baseline/statistics.json"}},
                "MonitoringInputs": [{"EndpointInput": {"EndpointName": name, "LocalPath": "/opt/ml/processing/input/endpoint"}}],
                "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {"S3Uri": f"file://{work}/reports", "LocalPath": "/opt/ml/processing/output"}}]},
                "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}},
                "MonitoringAppSpecification": {"ImageUri": ANALYZER}, "RoleArn": ROLE,
            }})
        while True:
            summaries = sm.list_monitoring_executions(MonitoringScheduleName=schedule)["MonitoringExecutionSummaries"]
            if summaries and summaries[0]["MonitoringExecutionStatus"] not in ("Pending", "InProgress"):
                break
            time.sleep(0.05)
        assert summaries[0]["MonitoringExecutionStatus"] in ("Completed", "CompletedWithViolations"), summaries[0]
        job = sm.describe_processing_job(ProcessingJobName=summaries[0]["ProcessingJobArn"].split("/")[-1])
        seconds = (job["ProcessingEndTime"] - job["CreationTime"]).total_seconds()
        return seconds, before, memory_mb(proc.pid, "VmHWM"), capture
    finally:
        proc.terminate()
        proc.wait()


def pandas_run(path, kind):
    out = subprocess.run([sys.executable, "-c", PANDAS, str(path), kind], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory(prefix="berth-monitor-bench-") as tmp:
        work = pathlib.Path(tmp)
        lines = dataset(work, rows)
        size_mb = (work / "train" / "data.csv").stat().st_size / 1e6
        b_secs, b_before, b_peak = baseline(work, rows)
        e_secs, e_before, e_peak, capture = execution(work, lines)
        p_csv = pandas_run(work / "train" / "data.csv", "csv")
        p_cap = pandas_run(capture, "capture")
        cap_mb = capture.stat().st_size / 1e6
        print(f"{rows:,} rows: the CSV is {size_mb:.0f} MB, its capture files {cap_mb:.0f} MB.\n")
        print("| work | berth time | berth memory (before → peak) | pandas time | pandas peak |")
        print("|---|---|---|---|---|")
        print(f"| baseline (statistics + constraints) | {b_secs:.2f} s | {b_before:.0f} → {b_peak:.0f} MB | {p_csv['seconds']:.2f} s | {p_csv['peak_mb']:.0f} MB |")
        print(f"| one execution (capture → statistics, violations) | {e_secs:.2f} s | {e_before:.0f} → {e_peak:.0f} MB | {p_cap['seconds']:.2f} s | {p_cap['peak_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
