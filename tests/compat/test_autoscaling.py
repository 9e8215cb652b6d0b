"""Autoscaling through boto3's application-autoscaling client: target tracking on
SageMakerVariantInvocationsPerInstance scales a variant out to the predicted count under a paced
load and back in after the cooldown, min/max hold, a CustomizedMetricSpecification on
CPUUtilization and a step policy driven by a CloudWatch alarm work, activities have readable
causes, and a client sending requests throughout sees no failure. berth runs with
--scaling-window 4 so decisions look at the last 4 s instead of a minute."""

import time

import pytest
from botocore.exceptions import ClientError

from conftest import Load, deploy, put_alarm

DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def target_tracking(aas, resource, **config):
    """A target tracking policy on the variant (named `invocations`; a new one replaces it); returns its ARN."""
    return aas.put_scaling_policy(
        PolicyName="invocations", ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=config,
    )["PolicyARN"]


def track_average(aas, resource, target, namespace, metric, dimensions, **config):
    """A target tracking policy keeping the Average of a CloudWatch metric (`dimensions`: name →
    value) at `target`; returns its ARN."""
    spec = {
        "MetricName": metric,
        "Namespace": namespace,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Statistic": "Average",
    }
    return target_tracking(aas, resource, TargetValue=target, CustomizedMetricSpecification=spec, **config)


def register(aas, resource, low, high):
    """Registers the variant `resource` as a scalable target between `low` and `high` instances."""
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION, MinCapacity=low, MaxCapacity=high)


def count(sm, ep, field="DesiredInstanceCount"):
    return sm.describe_endpoint(EndpointName=ep)["ProductionVariants"][0][field]


def wait_count(sm, ep, want, timeout=40):
    deadline = time.time() + timeout
    while True:
        d = sm.describe_endpoint(EndpointName=ep)
        v = d["ProductionVariants"][0]
        if v["CurrentInstanceCount"] == want and v["DesiredInstanceCount"] == want and d["EndpointStatus"] == "InService":
            return
        assert time.time() < deadline, f"{ep} has {v['CurrentInstanceCount']}/{v['DesiredInstanceCount']} instances, not {want}"
        time.sleep(0.1)


def settled_activities(aas, resource, timeout=10):
    """Scaling activities once none is in progress (newest first)."""
    deadline = time.time() + timeout
    while True:
        activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingActivities"]
        if all(a["StatusCode"] != "InProgress" for a in activities) or time.time() > deadline:
            return activities
        time.sleep(0.2)


@pytest.fixture
def scaled(own_berth):
    server = own_berth("--scaling-window", "4")
    sm = server.sm()
    ep = deploy(sm, ["V"])
    aas = server.client("application-autoscaling")
    resource = f"endpoint/{ep}/variant/V"
    register(aas, resource, 1, 4)
    return server, sm, aas, ep, resource


def test_target_tracking_scales_out_to_the_prediction_and_back_in(scaled):
    server, sm, aas, ep, resource = scaled
    (target,) = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"], target["ScalableDimension"]) == (1, 4, DIMENSION)
    arn = target_tracking(
        aas,
        resource,
        TargetValue=600.0,  # invocations per instance per minute: 10 req/s each
        PredefinedMetricSpecification={"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        ScaleOutCooldown=5,  # longer than the 4 s window: the next decision sees the new fleet only
        ScaleInCooldown=3,
    )
    assert arn.startswith("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:")
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling" and policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 600.0

    # 25 req/s = 1,500 a minute: ceil(1,500 / 600) = 3 instances (and 500 each at 3: it stays).
    with Load(server, ep, seconds=90, rate=25) as load:
        wait_count(sm, ep, 3)
        time.sleep(5)
        assert count(sm, ep) == 3, "the prediction holds under the same load"
    assert load.failures == [] and load.sent > 100
    wait_count(sm, ep, 1, timeout=30)  # no load: back to the minimum after the cooldown

    activities = settled_activities(aas, resource)
    assert len(activities) >= 2 and all(a["StatusCode"] == "Successful" for a in activities), activities
    # Out in one or two steps (the window fills as the load starts), never past the prediction.
    ups = [a for a in activities if a["Cause"].startswith("Increasing")]
    assert ups and max(int(a["Description"].split()[-1].rstrip(".")) for a in ups) == 3, [a["Cause"] for a in activities]
    assert all("InvocationsPerInstance" in a["Cause"] and "target of 600" in a["Cause"] for a in ups)
    assert activities[0]["Description"] == "Setting desired instance count to 1." and activities[0]["Cause"].startswith("Decreasing")

    # The maximum holds whatever the policy asks.
    target_tracking(
        aas,
        resource,
        TargetValue=30.0,
        PredefinedMetricSpecification={"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        ScaleOutCooldown=0,
        DisableScaleIn=True,
    )
    with Load(server, ep, seconds=90, rate=25) as load:
        wait_count(sm, ep, 4)
        time.sleep(3)
        assert count(sm, ep) == 4
    assert load.failures == []
    time.sleep(6)
    assert count(sm, ep) == 4, "DisableScaleIn: no scale-in without load"


def test_custom_cpu_metric_and_step_scaling(own_berth):
    server = own_berth("--scaling-window", "3")
    sm = server.sm()
    ep = deploy(sm, ["V"], env={"ECHO_BURN_CPU": "1"})
    aas = server.client("application-autoscaling")
    resource = f"endpoint/{ep}/variant/V"
    register(aas, resource, 1, 2)
    cpu = {"EndpointName": ep, "VariantName": "V"}
    track_average(aas, resource, 40.0, "/aws/sagemaker/Endpoints", "CPUUtilization", cpu, ScaleOutCooldown=0, DisableScaleIn=True)
    wait_count(sm, ep, 2)  # a busy core against a 40% target: out to the maximum of 2
    (activity,) = settled_activities(aas, resource)
    assert "CPUUtilization" in activity["Cause"]

    # Step scaling: an alarm on invocations with the policy as its action.
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION)
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"] == []
    register(aas, resource, 1, 3)
    step_arn = aas.put_scaling_policy(
        PolicyName="step",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            "Cooldown": 1,
        },
    )["PolicyARN"]
    cw = server.client("cloudwatch")
    alarm = put_alarm(
        cw, ep, "Invocations", Statistic="Sum", Period=1, EvaluationPeriods=1, Threshold=5,
        ComparisonOperator="GreaterThanThreshold", AlarmActions=[step_arn],
    )
    with Load(server, ep, seconds=90, rate=20) as load:
        wait_count(sm, ep, 3)
    assert load.failures == []
    causes = [a["Cause"] for a in settled_activities(aas, resource)]
    assert any(f"monitor alarm {alarm} in state ALARM triggered policy step" in c for c in causes), causes


def test_autoscaling_errors(scaled):
    server, sm, aas, ep, resource = scaled
    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=f"endpoint/{ep}", ScalableDimension=DIMENSION, MinCapacity=1, MaxCapacity=2)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION, MinCapacity=3, MaxCapacity=2)
    assert "Minimum capacity" in e.value.response["Error"]["Message"]
    other = f"endpoint/{ep}/variant/Nope"
    with pytest.raises(ClientError) as e:
        aas.put_scaling_policy(
            PolicyName="p", ServiceNamespace="sagemaker", ResourceId=other, ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={"TargetValue": 1.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}},
        )
    assert e.value.response["Error"]["Code"] == "ObjectNotFoundException"
    with pytest.raises(ClientError) as e:
        aas.delete_scaling_policy(PolicyName="none", ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION)
    assert e.value.response["Error"]["Code"] == "ObjectNotFoundException"
    with pytest.raises(ClientError) as e:
        aas.describe_scalable_targets(ServiceNamespace="dynamodb")
    assert "SageMaker variants only" in e.value.response["Error"]["Message"]
