"""Instance utilization in SageMaker's `/aws/sagemaker/Endpoints` namespace, measured from the
worker processes: a variant whose container keeps a core busy and holds memory reads back as such
through boto3's CloudWatch client; an idle one does not."""

import datetime
import shutil
import time

from conftest import deploy

NAMESPACE = "/aws/sagemaker/Endpoints"
HOLD_MB = 256
INSTANCE_MEMORY_MB = 8192  # ml.m5.large, the instance type deploy() uses


def datapoints(cw, endpoint, variant, metric, seconds, period, statistics, namespace=NAMESPACE):
    """GetMetricStatistics over the last `seconds` (and one more, for the second being closed)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}],
        StartTime=now - datetime.timedelta(seconds=seconds),
        EndTime=now + datetime.timedelta(seconds=1),
        Period=period,
        Statistics=statistics,
    )["Datapoints"]


def stats(cw, endpoint, variant, metric, seconds=20):
    points = datapoints(cw, endpoint, variant, metric, seconds, 60, ["Average", "Minimum", "Maximum", "SampleCount"])
    if not points:
        return None
    count = sum(p["SampleCount"] for p in points)
    return {
        "Average": sum(p["Average"] * p["SampleCount"] for p in points) / count,
        "SampleCount": count,
        "Maximum": max(p["Maximum"] for p in points),
        "Unit": points[0]["Unit"],
    }


def wait_samples(cw, endpoint, variant, metric, samples, timeout=20):
    deadline = time.time() + timeout
    while True:
        s = stats(cw, endpoint, variant, metric)
        if s and s["SampleCount"] >= samples:
            return s
        assert time.time() < deadline, f"{metric} of {variant}: {s}"
        time.sleep(0.2)


def test_cpu_memory_and_disk_per_variant(berth, sm):
    ep = deploy(
        sm,
        ["Busy", "Idle"],
        variant_env={"Busy": {"ECHO_BURN_CPU": "1", "ECHO_HOLD_MB": str(HOLD_MB)}},
        count=1,
    )
    cw = berth.client("cloudwatch")
    busy_cpu = wait_samples(cw, ep, "Busy", "CPUUtilization", 3)
    idle_cpu = wait_samples(cw, ep, "Idle", "CPUUtilization", 3)
    # A spinning process uses about one core (100%); the machine is shared, so allow slack.
    assert busy_cpu["Average"] > 40, busy_cpu
    assert idle_cpu["Average"] < 25, idle_cpu
    assert busy_cpu["Unit"] == "Percent"

    busy_mem = wait_samples(cw, ep, "Busy", "MemoryUtilization", 3)["Average"]
    idle_mem = wait_samples(cw, ep, "Idle", "MemoryUtilization", 3)["Average"]
    held = HOLD_MB / INSTANCE_MEMORY_MB * 100
    assert held * 0.9 < busy_mem - idle_mem < held * 1.5, (busy_mem, idle_mem, held)

    disk = wait_samples(cw, ep, "Idle", "DiskUtilization", 3)["Average"]
    usage = shutil.disk_usage(berth.data_dir)
    expected = usage.used / (usage.used + usage.free) * 100
    assert abs(disk - expected) < 2, (disk, expected)

    listed = cw.list_metrics(Namespace=NAMESPACE, Dimensions=[{"Name": "EndpointName", "Value": ep}])["Metrics"]
    names = {(m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]}["VariantName"]) for m in listed}
    assert {("CPUUtilization", "Busy"), ("MemoryUtilization", "Idle"), ("DiskUtilization", "Busy")} <= names
    assert all(m["Namespace"] == NAMESPACE for m in listed)
    # Instance metrics are not in the invocation namespace.
    assert datapoints(cw, ep, "Busy", "CPUUtilization", 300, 60, ["Average"], namespace="AWS/SageMaker") == []


def test_one_sample_per_instance_and_second(berth, sm):
    ep = deploy(sm, ["V"], count=2)
    cw = berth.client("cloudwatch")
    wait_samples(cw, ep, "V", "CPUUtilization", 6)
    # The second still being closed may hold one instance's sample only: leave it out.
    points = [p for p in datapoints(cw, ep, "V", "CPUUtilization", 30, 1, ["SampleCount"])]
    points.sort(key=lambda p: p["Timestamp"])
    counts = {p["SampleCount"] for p in points[:-1]}
    assert counts == {2.0}, points
