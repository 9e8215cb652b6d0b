"""berth's operations against botocore's service models: which operations berth serves (asked of
a real berth, operation by operation), that each one's input members are botocore's (a request
missing a required member is a ValidationException naming it), and — through `shapes.py`,
which checks every answer the suite gets — that its answers have the output shape's members,
names and types."""

import json
import urllib.error
import urllib.request

import botocore.session

import shapes

# Operations botocore marks no member of as required but that need one of several, as SageMaker
# does: with no input they are a ValidationException naming the choice.
ONE_OF = {"CreateModelPackage": ["ModelPackageGroupName", "ModelPackageName"]}

# Per service: its X-Amz-Target prefix, content type, and the error of a missing member.
PROTOCOLS = {
    "sagemaker": ("SageMaker", "application/x-amz-json-1.1", "ValidationException"),
    "application-autoscaling": ("AnyScaleFrontendService", "application/x-amz-json-1.1", "ValidationException"),
    "cloudwatch": ("GraniteServiceVersion20100801", "application/x-amz-json-1.0", "MissingRequiredParameterException"),
}


def call(url, service, operation, body):
    prefix, content_type, _ = PROTOCOLS[service]
    headers = {"X-Amz-Target": f"{prefix}.{operation}", "Content-Type": content_type}
    request = urllib.request.Request(url + "/", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def served(url, service):
    """The operations of botocore's model of `service` that berth does not call unknown."""
    model = botocore.session.get_session().get_service_model(service)
    out = {}
    for name in model.operation_names:
        status, answer = call(url, service, name, {})
        if not answer.get("__type", "").endswith("UnknownOperationException"):
            out[name] = (model.operation_model(name), status, answer)
    return out


def test_every_operation_berth_serves_takes_botocores_input_members(berth):
    counts = {}
    for service in PROTOCOLS:
        operations = served(berth.url, service)
        counts[service] = len(operations)
        for name, (model, status, answer) in operations.items():
            required = model.input_shape.required_members if model.input_shape else []
            if name in ONE_OF:
                message = answer.get("Message", "")
                assert status == 400 and all(m in message for m in ONE_OF[name]), f"{service}.{name} with no input: {status} {answer}"
                continue
            if not required:
                assert status == 200, f"{service}.{name} with no input: {status} {answer}"
                continue
            message = answer.get("Message") or answer.get("message", "")
            missing = PROTOCOLS[service][2]
            assert status == 400 and answer.get("__type", "").endswith(missing), f"{service}.{name}: {status} {answer}"
            assert any(member in message for member in required), f"{service}.{name} should name one of {required}: {message}"
    # What berth serves today (SageMaker hosting, its autoscaling and metrics): a change to the
    # dispatch shows here.
    assert counts["sagemaker"] >= 28 and counts["application-autoscaling"] == 7 and counts["cloudwatch"] >= 8, counts


def test_the_shape_check_finds_a_misspelt_member_a_missing_one_and_a_wrong_type():
    model = botocore.session.get_session().get_service_model("sagemaker").operation_model("DescribeEndpoint")
    good = {"EndpointName": "e", "EndpointArn": "arn", "EndpointStatus": "InService", "CreationTime": 1.5, "LastModifiedTime": 2}
    assert list(shapes.walk(model.output_shape, good, "DescribeEndpoint")) == []
    bad = {**good, "EndpointStatus": "Serving", "ProductionVariants": [{"VariantName": "V", "CurrentWeight": "1"}], "Endpointname": "e"}
    del bad["EndpointArn"]
    problems = "\n".join(shapes.walk(model.output_shape, bad, "DescribeEndpoint"))
    assert "DescribeEndpoint.Endpointname is not a member" in problems
    assert "DescribeEndpoint.EndpointArn is required" in problems
    assert "'Serving', not one of EndpointStatus's values" in problems
    assert "ProductionVariants[0].CurrentWeight should be a number" in problems


def test_answers_of_the_read_operations_have_botocores_shapes(berth, sm):
    seen_before = dict(shapes.SEEN)
    sm.list_models()
    sm.list_endpoint_configs()
    sm.list_endpoints()
    sm.list_transform_jobs()
    sm.list_inference_experiments()
    berth.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    berth.client("cloudwatch").list_metrics(Namespace="AWS/SageMaker")
    berth.client("cloudwatch").describe_alarms()
    checked = {k for k in shapes.SEEN if shapes.SEEN[k] > seen_before.get(k, 0)}
    assert {"sagemaker.ListModels", "application-autoscaling.DescribeScalableTargets", "cloudwatch.ListMetrics"} <= checked, checked
    assert not shapes.VIOLATIONS, shapes.VIOLATIONS
