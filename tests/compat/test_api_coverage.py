"""The API coverage table of the documentation (docs/src/reference/api-coverage.md, generated from
the code by tools/api_coverage.py) against a running berth: every operation of each service's
botocore model is asked with an empty request; those in the table are answered (a result or a
validation error), all others are refused as UnknownOperation."""

import pathlib
import re
import subprocess
import sys

import botocore.session
import requests

from conftest import ROOT

TABLE = ROOT / "docs" / "src" / "reference" / "api-coverage.md"
# Service → (X-Amz-Target prefix, content type); the runtime is REST (its routes below).
JSON_SERVICES = {
    "SageMaker": ("sagemaker", "SageMaker", "application/x-amz-json-1.1"),
    "CloudWatch": ("cloudwatch", "GraniteServiceVersion20100801", "application/x-amz-json-1.0"),
    "CloudWatch Logs": ("logs", "Logs_20140328", "application/x-amz-json-1.1"),
    "Application Auto Scaling": ("application-autoscaling", "AnyScaleFrontendService", "application/x-amz-json-1.1"),
}
RUNTIME_PATHS = {
    "InvokeEndpoint": "invocations",
    "InvokeEndpointWithResponseStream": "invocations-response-stream",
    "InvokeEndpointAsync": "async-invocations",
}


def listed():
    tables, section = {}, None
    for line in TABLE.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            tables[section] = set()
        elif section and (m := re.match(r"\| `(\w+)` \|", line)):
            tables[section].add(m.group(1))  # served, or refused with a reason: answered either way
    return tables


def test_the_table_is_what_the_code_serves():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "api_coverage.py"), "--check", str(TABLE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_listed_operation_is_answered_and_every_other_is_unknown(berth):
    tables = listed()
    assert set(tables) == set(JSON_SERVICES) | {"SageMaker Runtime"}
    session = botocore.session.get_session()
    for title, (service, prefix, content_type) in JSON_SERVICES.items():
        operations = session.get_service_model(service).operation_names
        assert tables[title] <= set(operations), tables[title] - set(operations)
        wrong = []
        for op in operations:
            r = requests.post(berth.url, data="{}", headers={"X-Amz-Target": f"{prefix}.{op}", "Content-Type": content_type}, timeout=10)
            kind = r.headers.get("x-amzn-errortype", "") + " " + (r.json().get("__type", "") if r.content else "")
            unknown = "UnknownOperation" in kind
            if unknown == (op in tables[title]):
                wrong.append((op, r.status_code, kind.strip()))
        assert not wrong, f"{title}: answered but not listed, or listed but unknown: {wrong}"
    for op in session.get_service_model("sagemaker-runtime").operation_names:
        assert op in tables["SageMaker Runtime"], op
        r = requests.post(f"{berth.url}/endpoints/no-such-endpoint/{RUNTIME_PATHS[op]}", data=b"x", timeout=10)
        assert r.status_code != 404 and "UnknownOperation" not in r.headers.get("x-amzn-errortype", ""), (op, r.status_code)
