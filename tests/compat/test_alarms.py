"""CloudWatch alarms on berth's metrics, evaluated by berth: PutMetricAlarm, DescribeAlarms,
SetAlarmState, DeleteAlarms through boto3; an error alarm goes to ALARM when a variant fails and
back to OK when it recovers; the state change is an endpoint event."""

import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import deploy, put_alarm, unique
from test_metrics import send


def wait_state(cw, name, want, timeout=30):
    deadline = time.time() + timeout
    while True:
        (alarm,) = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        if alarm["StateValue"] == want:
            return alarm
        assert time.time() < deadline, f"{name} stayed {alarm['StateValue']}: {alarm['StateReason']}"
        time.sleep(0.2)


def test_error_alarm_follows_the_variant(berth, sm, runtime):
    ep = deploy(sm, ["V"])
    cw = berth.client("cloudwatch")
    name = put_alarm(
        cw,
        ep,
        "Invocation5XXErrors",
        AlarmDescription="5XX errors of V",
        Statistic="Sum",
        Period=2,
        EvaluationPeriods=2,
        DatapointsToAlarm=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    (alarm,) = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert alarm["StateValue"] in ("INSUFFICIENT_DATA", "OK")
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 2 and alarm["AlarmDescription"] == "5XX errors of V"
    wait_state(cw, name, "OK")

    send(runtime, ep, "V", 3, body=b"fail")
    alarm = wait_state(cw, name, "ALARM")
    assert alarm["StateReason"].startswith("Threshold Crossed")
    assert alarm["StateUpdatedTimestamp"].tzinfo is not None
    # No more errors: two quiet periods later it is OK again.
    wait_state(cw, name, "OK", timeout=20)

    changes = requests.get(f"{berth.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]
    assert any(e["kind"] == "AlarmStateChanged" and f"Alarm {name} is ALARM" in e["message"] for e in changes)

    assert [a["AlarmName"] for a in cw.describe_alarms(StateValue="OK", AlarmNamePrefix=name)["MetricAlarms"]] == [name]
    cw.delete_alarms(AlarmNames=[name])
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []


def test_latency_percentile_alarm_and_set_alarm_state(berth, sm, runtime):
    ep = deploy(sm, ["V"], env={"ECHO_DELAY_MS": "30"})
    cw = berth.client("cloudwatch")
    name = put_alarm(
        cw,
        ep,
        "ModelLatency",
        ExtendedStatistic="p90",
        Period=1,
        EvaluationPeriods=3,
        DatapointsToAlarm=1,
        Threshold=20_000,  # microseconds
        ComparisonOperator="GreaterThanThreshold",
    )
    assert wait_state(cw, name, "INSUFFICIENT_DATA")["ExtendedStatistic"] == "p90"
    send(runtime, ep, "V", 5)
    wait_state(cw, name, "ALARM")

    # SetAlarmState holds for a while, then evaluation takes over again.
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="testing")
    (alarm,) = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("OK", "testing")
    wait_state(cw, name, "INSUFFICIENT_DATA", timeout=30)


def test_alarm_errors(berth):
    cw = berth.client("cloudwatch")
    base = dict(AlarmName=unique("bad"), Namespace="AWS/SageMaker", MetricName="Invocations", Period=60, EvaluationPeriods=1, Threshold=1)
    with pytest.raises(ClientError) as e:
        cw.put_metric_alarm(**base, Statistic="Median", ComparisonOperator="GreaterThanThreshold")
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        cw.put_metric_alarm(**base, Statistic="Sum", ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold")
    assert "anomaly detection" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        cw.put_metric_alarm(**base, Statistic="Sum", ComparisonOperator="GreaterThanThreshold", DatapointsToAlarm=2)
    assert "DatapointsToAlarm" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        cw.set_alarm_state(AlarmName="no-such-alarm", StateValue="ALARM", StateReason="x")
    assert e.value.response["Error"]["Code"] == "ResourceNotFound"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        cw.delete_alarms(AlarmNames=["no-such-alarm"])
    assert e.value.response["Error"]["Code"] == "ResourceNotFound"


def test_alarms_over_long_windows_hold_up_no_other_alarm(own_berth):
    """Eight alarms over a day of one-second periods on a custom metric with 5,000 datapoints
    (each evaluation one pass over its window's datapoints, not periods × datapoints), and
    CloudWatch's limits on an alarm's range and berth's on their number: an alarm on another
    metric still changes state within seconds."""
    import datetime

    server = own_berth("--max-alarms", "10")
    cw = server.client("cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc)
    for batch in range(100):  # small enough that boto3 does not gzip them
        cw.put_metric_data(
            Namespace="Hostile",
            MetricData=[
                {"MetricName": "Busy", "Value": float(i), "Timestamp": now - datetime.timedelta(seconds=batch * 50 + i)}
                for i in range(50)
            ],
        )
    common = dict(Namespace="Hostile", Statistic="Sum", Threshold=1e12, ComparisonOperator="GreaterThanThreshold")
    for i in range(8):
        cw.put_metric_alarm(AlarmName=f"long-{i}", MetricName="Busy", Period=1, EvaluationPeriods=86_400, **common)
    for period, periods in ((60, 1441), (3600, 169), (1, 86_401)):
        with pytest.raises(ClientError) as e:
            cw.put_metric_alarm(AlarmName=unique("too-long"), MetricName="Busy", Period=period, EvaluationPeriods=periods, **common)
        assert "cannot be longer than" in e.value.response["Error"]["Message"], e.value.response
    cw.put_metric_alarm(AlarmName="hourly-week", MetricName="Busy", Period=3600, EvaluationPeriods=168, **common)

    cw.put_metric_alarm(AlarmName="canary", Namespace="Hostile", MetricName="Canary", Statistic="Maximum", Period=2,
                        EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    with pytest.raises(ClientError) as e:
        cw.put_metric_alarm(AlarmName="one-too-many", MetricName="Busy", Period=60, EvaluationPeriods=1, **common)
    assert e.value.response["Error"]["Code"] == "LimitExceeded", e.value.response
    wait_state(cw, "canary", "OK", timeout=15)
    cw.put_metric_data(Namespace="Hostile", MetricData=[{"MetricName": "Canary", "Value": 10.0}])
    wait_state(cw, "canary", "ALARM", timeout=10)
    assert "Busy" in {m["MetricName"] for m in cw.list_metrics(Namespace="Hostile")["Metrics"]}
