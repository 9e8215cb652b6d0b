"""Inference components against a real berth through boto3: an endpoint whose variant names no
model, components of different models sharing its instance, a third one for which managed
instance scaling adds an instance, invocations by component, copies to zero and back, what
cannot fit refused, per-component CloudWatch metrics, and copy autoscaling out under load and
back in."""

import json
import signal
import threading
import time

import pytest

import requests

from conftest import ROLE, Load, create_echo_model, error_message, eventually, recent_statistics, unique

DIMENSION = "sagemaker:inference-component:DesiredCopyCount"


def component_endpoint(sm, name, managed=None, count=1):
    v = {"VariantName": "AllTraffic", "InstanceType": "ml.m5.large", "InitialInstanceCount": count,
         "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}}
    if managed:
        v["ManagedInstanceScaling"] = {"Status": "ENABLED", **managed}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[v], ExecutionRoleArn=ROLE)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    d = eventually(lambda: sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService", timeout=30)
    assert d, sm.describe_endpoint(EndpointName=name)
    return name


def create_component(sm, name, endpoint, model, cores=1.0, memory=1024, copies=1):
    return sm.create_inference_component(
        InferenceComponentName=name, EndpointName=endpoint, VariantName="AllTraffic",
        Specification={"ModelName": model, "ComputeResourceRequirements": {"NumberOfCpuCoresRequired": cores, "MinMemoryRequiredInMb": memory}},
        RuntimeConfig={"CopyCount": copies},
    )["InferenceComponentArn"]


def wait_component(sm, name, want=("InService", "Failed"), timeout=60):
    deadline = time.time() + timeout
    while True:
        d = sm.describe_inference_component(InferenceComponentName=name)
        if d["InferenceComponentStatus"] in want:
            return d
        assert time.time() < deadline, f"{name} still {d['InferenceComponentStatus']}"
        time.sleep(0.1)


def delete_all(sm, endpoint):
    for c in sm.list_inference_components(EndpointNameEquals=endpoint)["InferenceComponents"]:
        sm.delete_inference_component(InferenceComponentName=c["InferenceComponentName"])
    assert eventually(lambda: not sm.list_inference_components(EndpointNameEquals=endpoint)["InferenceComponents"], timeout=30)
    sm.delete_endpoint(EndpointName=endpoint)


def instance_count(sm, endpoint):
    return sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"][0]["CurrentInstanceCount"]


def test_components_share_instances_and_managed_scaling_adds_one(berth):
    sm, runtime, cw = berth.sm(), berth.runtime(), berth.client("cloudwatch")
    ep = component_endpoint(sm, unique("ic-ep"), managed={"MinInstanceCount": 1, "MaxInstanceCount": 2})
    names = {}
    try:
        d = sm.describe_endpoint(EndpointName=ep)["ProductionVariants"][0]
        assert d["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2}
        assert d["CurrentInstanceCount"] == 1 and d["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
        config = sm.describe_endpoint_config(EndpointConfigName=ep)
        assert config["ExecutionRoleArn"] == ROLE and "ModelName" not in config["ProductionVariants"][0]
        with pytest.raises(Exception) as e:
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
        assert "Inference Component Name header is required" in error_message(e)

        for which in ("a", "b", "c"):
            names[which] = unique(f"ic-{which}")
            create_echo_model(sm, names[which])
        arn = create_component(sm, names["a"], ep, names["a"])
        assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:inference-component/{names['a']}"
        create_component(sm, names["b"], ep, names["b"])
        for which in ("a", "b"):
            d = wait_component(sm, names[which])
            assert d["InferenceComponentStatus"] == "InService", d.get("FailureReason")
            assert d["RuntimeConfig"]["DesiredCopyCount"] == d["RuntimeConfig"]["CurrentCopyCount"] == 1
        assert instance_count(sm, ep) == 1, "two 1-core copies share one 2-core ml.m5.large"
        d = sm.describe_inference_component(InferenceComponentName=names["a"])
        assert d["Specification"]["ModelName"] == names["a"] and d["EndpointName"] == ep and d["VariantName"] == "AllTraffic"
        assert d["Specification"]["ComputeResourceRequirements"] == {"NumberOfCpuCoresRequired": 1.0, "MinMemoryRequiredInMb": 1024}
        assert d["RuntimeConfig"]["PlacementStatus"] == [{"InstanceType": "ml.m5.large", "CurrentCopyCount": 1}]
        for which in ("a", "b"):
            answer = runtime.invoke_endpoint(EndpointName=ep, Body=b"hello", InferenceComponentName=names[which])
            assert names[which].encode() in answer["Body"].read() and answer["InvokedProductionVariant"] == "AllTraffic"
        streamed = runtime.invoke_endpoint_with_response_stream(EndpointName=ep, Body=b"stream:3:0", ContentType="text/plain",
                                                                InferenceComponentName=names["b"])
        assert len([e for e in streamed["Body"] if "PayloadPart" in e]) == 3

        # No room left: managed instance scaling adds the second instance for c's copy.
        create_component(sm, names["c"], ep, names["c"])
        d = wait_component(sm, names["c"])
        assert d["InferenceComponentStatus"] == "InService", d.get("FailureReason")
        assert instance_count(sm, ep) == 2
        assert names["c"].encode() in runtime.invoke_endpoint(EndpointName=ep, Body=b"x", InferenceComponentName=names["c"])["Body"].read()
        listed = sm.list_inference_components(EndpointNameEquals=ep, SortBy="Name", SortOrder="Ascending", MaxResults=2)
        rest = sm.list_inference_components(EndpointNameEquals=ep, SortBy="Name", SortOrder="Ascending", NextToken=listed["NextToken"])
        assert [c["InferenceComponentName"] for c in listed["InferenceComponents"] + rest["InferenceComponents"]] == sorted(names.values())

        # At most MaxInstanceCount: a fourth component's creation fails for capacity.
        fourth = unique("ic-d")
        create_echo_model(sm, fourth)
        create_component(sm, fourth, ep, fourth, cores=2.0)
        d = wait_component(sm, fourth)
        assert d["InferenceComponentStatus"] == "Failed" and d["FailureReason"].startswith("CapacityError"), d
        sm.delete_inference_component(InferenceComponentName=fourth)

        with pytest.raises(Exception) as e:
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x", InferenceComponentName="no-such-component")
        assert "does not exist" in error_message(e)
        with pytest.raises(Exception) as e:
            create_component(sm, unique("ic-huge"), ep, names["a"], cores=4.0)
        assert "can never be placed" in error_message(e)
        with pytest.raises(Exception) as e:
            sm.create_inference_component(InferenceComponentName=unique("ic-gpu"), EndpointName=ep, RuntimeConfig={"CopyCount": 1},
                                          Specification={"ModelName": names["a"], "ComputeResourceRequirements": {"NumberOfAcceleratorDevicesRequired": 1, "MinMemoryRequiredInMb": 1024}})
        assert "NumberOfAcceleratorDevicesRequired" in error_message(e)
        with pytest.raises(Exception) as e:
            sm.delete_endpoint(EndpointName=ep)
        assert "delete them first" in error_message(e)

        # To zero copies and back.
        sm.update_inference_component_runtime_config(InferenceComponentName=names["a"], DesiredRuntimeConfig={"CopyCount": 0})
        assert wait_component(sm, names["a"])["RuntimeConfig"]["CurrentCopyCount"] == 0
        with pytest.raises(Exception) as e:
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x", InferenceComponentName=names["a"])
        assert "no capacity" in error_message(e)
        sm.update_inference_component_runtime_config(InferenceComponentName=names["a"], DesiredRuntimeConfig={"CopyCount": 1})
        assert wait_component(sm, names["a"])["RuntimeConfig"]["CurrentCopyCount"] == 1

        # Deleting c leaves its instance empty: managed scaling releases it.
        sm.delete_inference_component(InferenceComponentName=names["c"])
        assert eventually(lambda: instance_count(sm, ep) == 1, timeout=30)
        with pytest.raises(Exception) as e:
            sm.describe_inference_component(InferenceComponentName=names["c"])
        assert "Could not find inference component" in error_message(e)

        # The dashboard's overview shows each component as a row: its copies and its traffic.
        import requests

        overview = requests.get(f"{berth.url}/berth/v1/overview", timeout=10).json()
        rows = {v["name"]: v for e in overview["endpoints"] if e["name"] == ep for v in e["variants"]}
        assert rows["AllTraffic"]["instances"] == 1 and rows["AllTraffic"]["healthy_instances"] == 1
        assert rows[names["a"]]["component_of"] == "AllTraffic" and rows[names["a"]]["model"] == names["a"]
        assert (rows[names["b"]]["healthy_instances"], rows[names["b"]]["desired_instances"]) == (1, 1)

        # Each component's invocations in CloudWatch, in the InferenceComponentName dimension.
        for _ in range(3):
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x", InferenceComponentName=names["b"])
        by_b = [{"Name": "InferenceComponentName", "Value": names["b"]}]
        assert eventually(lambda: (recent_statistics(cw, "Invocations", by_b) or {}).get("Sum", 0) >= 4, timeout=10)
        stats = recent_statistics(cw, "Invocations", by_b)
        per_copy = recent_statistics(cw, "InvocationsPerCopy", by_b)
        assert per_copy and per_copy["Sum"] == stats["Sum"], per_copy
        listed = cw.list_metrics(Namespace="AWS/SageMaker", MetricName="InvocationsPerCopy")["Metrics"]
        assert {"Name": "InferenceComponentName", "Value": names["b"]} in [d for m in listed for d in m["Dimensions"]]
    finally:
        delete_all(sm, ep)


def test_copy_autoscaling_out_under_load_and_back_in(own_berth):
    server = own_berth("--scaling-window", "4")
    sm, aas = server.sm(), server.client("application-autoscaling")
    ep = component_endpoint(sm, unique("ic-scale"), managed={"MinInstanceCount": 1, "MaxInstanceCount": 3})
    name = unique("ic-scaled")
    create_echo_model(sm, name)
    create_component(sm, name, ep, name, cores=1.0)
    assert wait_component(sm, name)["InferenceComponentStatus"] == "InService"
    resource = f"inference-component/{name}"
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION, MinCapacity=1, MaxCapacity=4)
    aas.put_scaling_policy(
        PolicyName="copies", ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 600.0, "ScaleOutCooldown": 5, "ScaleInCooldown": 3,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"},
        },
    )
    copies = lambda: sm.describe_inference_component(InferenceComponentName=name)["RuntimeConfig"]["CurrentCopyCount"]  # noqa: E731
    # 25 req/s = 1,500 a minute against 600 per copy: 3 copies, on two instances (two 1-core copies each).
    with Load(server, ep, seconds=90, rate=25, component=name) as load:
        assert eventually(lambda: copies() == 3, timeout=45), copies()
        assert eventually(lambda: instance_count(sm, ep) == 2, timeout=10)
    assert load.failures == [] and load.sent > 100, load.failures[:3]
    assert eventually(lambda: copies() == 1, timeout=40), copies()
    assert eventually(lambda: instance_count(sm, ep) == 1, timeout=10), "the emptied instance is released"
    activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingActivities"]
    assert any(a["Cause"].startswith("Increasing") and "InvocationsPerCopy" in a["Cause"] for a in activities), activities
    assert all(a["ScalableDimension"] == DIMENSION for a in activities)
    with pytest.raises(Exception) as e:
        aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                     MinCapacity=1, MaxCapacity=2)
    assert "use sagemaker:inference-component:DesiredCopyCount" in error_message(e)

    # Killed and started again, the server brings the component's copies back.
    server.restart(signal.SIGKILL)
    sm, runtime = server.sm(), server.runtime()
    body = eventually(lambda: _invoke_or_none(runtime, ep, name), timeout=30)
    assert body and name.encode() in body
    d = sm.describe_inference_component(InferenceComponentName=name)
    assert (d["InferenceComponentStatus"], d["RuntimeConfig"]["CurrentCopyCount"]) == ("InService", 1)


def _invoke_or_none(runtime, ep, component):
    try:
        return runtime.invoke_endpoint(EndpointName=ep, Body=b"x", InferenceComponentName=component)["Body"].read()
    except Exception:  # noqa: not back yet
        return None


def test_hostile_component_requests_get_validation_errors(berth):
    """Raw requests with wrong types, out-of-range numbers, names that are paths, a program
    outside the exec roots and an environment that would choose code: each a 400 in SageMaker's
    shape, nothing created, the server still answering."""
    sm = berth.sm()
    ep = component_endpoint(sm, unique("ic-hostile"))
    model = unique("ic-hostile-m")
    create_echo_model(sm, model)
    spec = {"ModelName": model, "ComputeResourceRequirements": {"NumberOfCpuCoresRequired": 1, "MinMemoryRequiredInMb": 1024}}
    bad = [
        ("CreateInferenceComponent", {"InferenceComponentName": "../../etc", "EndpointName": ep, "Specification": spec, "RuntimeConfig": {"CopyCount": 1}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "x" * 64, "EndpointName": ep, "Specification": spec, "RuntimeConfig": {"CopyCount": 1}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "neg", "EndpointName": ep, "Specification": spec, "RuntimeConfig": {"CopyCount": -1}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "str", "EndpointName": ep, "Specification": spec, "RuntimeConfig": {"CopyCount": "many"}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "huge", "EndpointName": ep, "Specification": spec, "RuntimeConfig": {"CopyCount": 2**40}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "nospec", "EndpointName": ep, "RuntimeConfig": {"CopyCount": 1}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "cores", "EndpointName": ep, "RuntimeConfig": {"CopyCount": 1},
                                      "Specification": {"ModelName": model, "ComputeResourceRequirements": {"NumberOfCpuCoresRequired": "all", "MinMemoryRequiredInMb": 1024}}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "mem", "EndpointName": ep, "RuntimeConfig": {"CopyCount": 1},
                                      "Specification": {"ModelName": model, "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 10**15}}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "prog", "EndpointName": ep, "RuntimeConfig": {"CopyCount": 1},
                                      "Specification": {"Container": {"Image": "exec:/bin/sh"}, "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 256}}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "env", "EndpointName": ep, "RuntimeConfig": {"CopyCount": 1},
                                      "Specification": {"Container": {"Image": "berth/onnx", "Environment": {"LD_PRELOAD": "/tmp/x.so"}}, "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 256}}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "nested", "EndpointName": ep, "RuntimeConfig": {"CopyCount": 1},
                                      "Specification": {"Container": {"Image": "berth/onnx", "Environment": {"A": {"B": ["C"]}}}, "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 256}}}),
        ("CreateInferenceComponent", {"InferenceComponentName": "models", "EndpointName": "no-such-endpoint", "Specification": spec, "RuntimeConfig": {"CopyCount": 1}}),
        ("UpdateInferenceComponentRuntimeConfig", {"InferenceComponentName": "no-such-component", "DesiredRuntimeConfig": {"CopyCount": 1}}),
        ("UpdateInferenceComponentRuntimeConfig", {"InferenceComponentName": "x", "DesiredRuntimeConfig": []}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 1}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 80}, "WaitIntervalInSeconds": 1}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 5000}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 10}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 1}, "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "no-such-alarm"}]}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": []}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 1},
                                                                                        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": f"a{i}"} for i in range(11)]}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 1},
                                                                                        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a" * 300}]}}}),
        ("UpdateInferenceComponent", {"InferenceComponentName": "x", "DeploymentConfig": {"RollingUpdatePolicy": "fast"}}),
        ("ListInferenceComponents", {"StatusEquals": "Sleeping"}),
        ("ListInferenceComponents", {"MaxResults": 0}),
        ("DescribeInferenceComponent", {"InferenceComponentName": None}),
    ]
    h = {"Content-Type": "application/x-amz-json-1.1"}
    for op, body in bad:
        r = requests.post(berth.url, json=body, headers={**h, "X-Amz-Target": f"SageMaker.{op}"}, timeout=10)
        assert r.status_code == 400 and "ValidationException" in r.json()["__type"], (op, body, r.status_code, r.text)
        if "DeploymentConfig" in body:
            # Refused for the configuration, before the (missing) component is looked up.
            assert "Could not find inference component" not in r.text, (body, r.text)
    assert sm.list_inference_components(EndpointNameEquals=ep)["InferenceComponents"] == []
    delete_all(sm, ep)


def test_the_sdks_inference_component_deploy(berth, s3_server, monkeypatch):
    """`Model.deploy(endpoint_type=INFERENCE_COMPONENT_BASED, resources=...)` of SDK v2 unchanged:
    an endpoint with ExecutionRoleArn and managed instance scaling, a component, a predictor
    that names it; then the predictor deletes its component."""
    sagemaker = pytest.importorskip("sagemaker")
    if not sagemaker.__version__.startswith("2."):
        pytest.skip("this drives SDK v2")
    from sagemaker.compute_resource_requirements.resource_requirements import ResourceRequirements
    from sagemaker.enums import EndpointType
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor

    from conftest import ECHO_IMAGE, sdk_session

    real_sleep = time.sleep
    monkeypatch.setattr(sagemaker.session.time, "sleep", lambda s: real_sleep(min(s, 1)))
    session = next(sdk_session(berth, s3_server, unique("ic-sdk")))
    name = unique("ic-sdk-model")
    model = Model(image_uri=ECHO_IMAGE, role=ROLE, sagemaker_session=session, name=name, env={"ECHO_NAME": name}, predictor_cls=Predictor)
    endpoint = unique("ic-sdk-ep")
    predictor = model.deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=endpoint, endpoint_type=EndpointType.INFERENCE_COMPONENT_BASED,
        resources=ResourceRequirements(requests={"num_cpus": 1, "memory": 1024, "copies": 2}),
        managed_instance_scaling={"MinInstanceCount": 1, "MaxInstanceCount": 2},
    )
    sm = berth.sm()
    try:
        component = predictor.component_name
        d = sm.describe_inference_component(InferenceComponentName=component)
        assert (d["InferenceComponentStatus"], d["RuntimeConfig"]["CurrentCopyCount"]) == ("InService", 2)
        assert sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"])["ExecutionRoleArn"]
        assert name.encode() in predictor.predict(b"hello")
    finally:
        for c in sm.list_inference_components(EndpointNameEquals=endpoint)["InferenceComponents"]:
            sm.delete_inference_component(InferenceComponentName=c["InferenceComponentName"])
        eventually(lambda: not sm.list_inference_components(EndpointNameEquals=endpoint)["InferenceComponents"], timeout=30)
        sm.delete_endpoint(EndpointName=endpoint)


class Answers:
    """Two threads invoking a component back to back while a `with` block runs: which model
    answered each call (the echo container names itself), and the calls that failed."""

    def __init__(self, runtime, endpoint, component):
        self.runtime, self.endpoint, self.component = runtime, endpoint, component
        self.models, self.errors = [], []
        self.stop = threading.Event()

    def _run(self):
        while not self.stop.is_set():
            try:
                r = self.runtime.invoke_endpoint(EndpointName=self.endpoint, InferenceComponentName=self.component, Body=b"x")
                self.models.append(json.loads(r["Body"].read())["name"])
            except Exception as e:  # noqa: BLE001 (recorded, asserted by the test)
                self.errors.append(str(e))
            time.sleep(0.02)

    def __enter__(self):
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def test_a_rolling_update_replaces_copies_in_batches_and_an_alarm_rolls_one_back(berth):
    """UpdateInferenceComponent with a DeploymentConfig: copies are replaced one batch at a
    time, each batch baking, with no failed request; a new specification whose copies fail
    sets off the rollback alarm, and the earlier specification comes back."""
    sm, runtime, cw = berth.sm(), berth.runtime(), berth.client("cloudwatch")
    ep = component_endpoint(sm, unique("ic-roll"))
    name, v1, v2, v3 = unique("ic-rolled"), unique("ic-v1"), unique("ic-v2"), unique("ic-v3")
    create_echo_model(sm, v1)
    create_echo_model(sm, v2)
    create_echo_model(sm, v3, env={"ECHO_STATUS": "500"})
    spec = lambda model: {"ModelName": model, "ComputeResourceRequirements": {"NumberOfCpuCoresRequired": 0.5, "MinMemoryRequiredInMb": 512}}  # noqa: E731
    sm.create_inference_component(InferenceComponentName=name, EndpointName=ep, VariantName="AllTraffic", Specification=spec(v1),
                                  RuntimeConfig={"CopyCount": 2})
    assert wait_component(sm, name)["InferenceComponentStatus"] == "InService"
    alarm = unique("ic-errors")
    cw.put_metric_alarm(AlarmName=alarm, Namespace="AWS/SageMaker", MetricName="InvocationModelErrors", Statistic="Sum",
                        Dimensions=[{"Name": "InferenceComponentName", "Value": name}], Period=1, EvaluationPeriods=1, Threshold=0,
                        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    config = lambda wait: {  # noqa: E731
        "RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": wait},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    events = lambda kind: [e["message"] for e in requests.get(f"{berth.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"]  # noqa: E731
                           if e["kind"] == kind and name in e["message"]]
    try:
        with Answers(runtime, ep, name) as rolling:
            sm.update_inference_component(InferenceComponentName=name, Specification=spec(v2), DeploymentConfig=config(2))
            d = sm.describe_inference_component(InferenceComponentName=name)
            assert d["InferenceComponentStatus"] == "Updating" and d["LastDeploymentConfig"] == config(2)
            d = wait_component(sm, name, timeout=60)
        assert d["InferenceComponentStatus"] == "InService" and "FailureReason" not in d, d
        assert d["Specification"]["ModelName"] == v2 and d["RuntimeConfig"]["CurrentCopyCount"] == 2
        assert rolling.errors == [], rolling.errors[:3]
        assert v2 in rolling.models[-5:] and set(rolling.models) <= {v1, v2}
        steps = events("DeploymentStep")
        assert any("1 of 2 copies run the new specification; baking for 2 s" in m for m in steps), steps
        assert any("next batch, to 2 of 2 copies" in m for m in steps), steps

        # v3's copies fail every call: the alarm goes off during the first batch's baking.
        with Answers(runtime, ep, name) as failing:
            sm.update_inference_component(InferenceComponentName=name, Specification=spec(v3), DeploymentConfig=config(30))
            d = wait_component(sm, name, timeout=90)
        assert d["InferenceComponentStatus"] == "InService", d
        assert d["FailureReason"].startswith("The update was rolled back: alarm(s) in ALARM: " + alarm), d["FailureReason"]
        assert d["Specification"]["ModelName"] == v2 and d["RuntimeConfig"]["CurrentCopyCount"] == 2
        assert failing.errors, "v3's copy answered some calls, with errors"
        assert any("rolled back to its earlier specification" in m for m in events("DeploymentRolledBack"))
        for _ in range(6):
            body = runtime.invoke_endpoint(EndpointName=ep, InferenceComponentName=name, Body=b"x")["Body"].read()
            assert json.loads(body)["name"] == v2
    finally:
        cw.delete_alarms(AlarmNames=[alarm])
        delete_all(sm, ep)


def test_a_rolling_update_carries_on_after_kill_9(own_berth):
    """A server killed while a rolling update bakes its first batch comes back with one copy of
    each revision and finishes the update from the stored step."""
    server = own_berth()
    sm, runtime = server.sm(), server.runtime()
    ep = component_endpoint(sm, unique("ic-restart"))
    name, v1, v2 = unique("ic-restarted"), unique("ic-v1"), unique("ic-v2")
    create_echo_model(sm, v1)
    create_echo_model(sm, v2)
    spec = lambda model: {"ModelName": model, "ComputeResourceRequirements": {"NumberOfCpuCoresRequired": 0.5, "MinMemoryRequiredInMb": 512}}  # noqa: E731
    sm.create_inference_component(InferenceComponentName=name, EndpointName=ep, VariantName="AllTraffic", Specification=spec(v1),
                                  RuntimeConfig={"CopyCount": 2})
    assert wait_component(sm, name)["InferenceComponentStatus"] == "InService"
    policy = {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 8}}
    sm.update_inference_component(InferenceComponentName=name, Specification=spec(v2), DeploymentConfig=policy)
    baking = lambda: any("baking for" in e["message"] and name in e["message"]  # noqa: E731
                         for e in requests.get(f"{server.url}/berth/v1/events", params={"endpoint": ep}, timeout=10).json()["events"])
    assert eventually(baking, timeout=30)

    server.restart(signal.SIGKILL)
    sm, runtime = server.sm(), server.runtime()
    d = sm.describe_inference_component(InferenceComponentName=name)
    assert d["InferenceComponentStatus"] == "Updating" and d["Specification"]["ModelName"] == v2, d
    both = lambda: sm.describe_inference_component(InferenceComponentName=name)["RuntimeConfig"]["CurrentCopyCount"] == 2  # noqa: E731
    assert eventually(both, timeout=30), "one copy of each revision came back"
    d = wait_component(sm, name, timeout=60)
    assert d["InferenceComponentStatus"] == "InService" and "FailureReason" not in d, d
    for _ in range(4):
        assert json.loads(runtime.invoke_endpoint(EndpointName=ep, InferenceComponentName=name, Body=b"x")["Body"].read())["name"] == v2
