"""Every answer berth gives a botocore client, checked against botocore's own output shape.

`install()` (called by conftest.py) hooks every botocore client the suite makes — the tests'
boto3 clients and those the SageMaker SDK makes in-process — for the services berth speaks
in JSON or CBOR (SageMaker, Application Auto Scaling, CloudWatch). Each successful answer's raw
body is walked against the operation's output shape: every member name exists in the shape
(exactly, case included), every required member is present, every value has its shape's type,
and an enum's value is one botocore lists. What is found goes into `VIOLATIONS`, which the
session's teardown reports; `SEEN` counts the operations checked. botocore itself drops unknown
members and accepts missing ones, so without this a misspelt field would pass every test.
"""

import datetime
import json

import botocore.parsers
import botocore.session

SERVICES = {"sagemaker", "application-autoscaling", "cloudwatch"}
SEEN = {}
VIOLATIONS = []


def install():
    original = botocore.session.Session.create_client
    if getattr(original, "berth_shapes", False):
        return

    def create_client(self, service_name, *args, **kwargs):
        client = original(self, service_name, *args, **kwargs)
        if service_name in SERVICES:
            client.meta.events.register("after-call", _check)
        return client

    create_client.berth_shapes = True
    botocore.session.Session.create_client = create_client


def decode(content_type, body):
    """The answer's body as plain values, by its content type; None for the query protocol's
    XML (CloudWatch's oldest protocol, whose shapes botocore reads by name: not checked here)."""
    if content_type.startswith("text/xml"):
        return None
    if not body:
        return {}
    if content_type.startswith("application/cbor"):
        parser = botocore.parsers.RpcV2CBORParser()
        return parser.parse_data_item(parser.get_peekable_stream_from_bytes(body))
    return json.loads(body)


def _check(http_response, parsed, model, **_):
    if not 200 <= http_response.status_code < 300 or model.output_shape is None:
        return
    key = f"{model.service_model.service_name}.{model.name}"
    try:
        body = decode(http_response.headers.get("content-type", ""), http_response.content)
    except Exception as e:  # noqa: whatever the body is, the check reports it, never raises
        VIOLATIONS.append(f"{key}: the answer cannot be read: {e!r}")
        return
    if body is None:
        return
    SEEN[key] = SEEN.get(key, 0) + 1
    for problem in walk(model.output_shape, body, model.name):
        VIOLATIONS.append(f"{key}: {problem}")


def walk(shape, value, path):
    """What is wrong with `value` as a `shape`, one line per problem."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            yield f"{path} should be a structure, is {type(value).__name__}"
            return
        for name in value:
            if name not in shape.members and name != "__type":
                yield f"{path}.{name} is not a member of {shape.name} (its members: {', '.join(shape.members)})"
        for name in shape.required_members:
            if name not in value:
                yield f"{path}.{name} is required by {shape.name} and missing"
        for name, member in shape.members.items():
            if value.get(name) is not None:
                yield from walk(member, value[name], f"{path}.{name}")
    elif kind == "list":
        if not isinstance(value, list):
            yield f"{path} should be a list, is {type(value).__name__}"
            return
        for i, item in enumerate(value):
            yield from walk(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            yield f"{path} should be a map, is {type(value).__name__}"
            return
        for k, v in value.items():
            yield from walk(shape.value, v, f"{path}[{k!r}]")
    elif kind == "string":
        if not isinstance(value, str):
            yield f"{path} should be a string, is {value!r}"
        elif shape.enum and value not in shape.enum:
            yield f"{path} is {value!r}, not one of {shape.name}'s values {shape.enum}"
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            yield f"{path} should be an integer, is {value!r}"
    elif kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            yield f"{path} should be a number, is {value!r}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            yield f"{path} should be a boolean, is {value!r}"
    elif kind == "timestamp":
        if not isinstance(value, (int, float, str, datetime.datetime)) or isinstance(value, bool):
            yield f"{path} should be a timestamp, is {value!r}"
    elif kind == "blob":
        if not isinstance(value, (str, bytes)):
            yield f"{path} should be a blob, is {value!r}"
