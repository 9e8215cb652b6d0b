#!/usr/bin/env python3
"""The API coverage table: every SageMaker, SageMaker Runtime, CloudWatch, CloudWatch Logs and
Application Auto Scaling operation berth serves, read from the code that dispatches them (the
`"Operation" =>` arms of each service's dispatcher that name an operation of botocore's model
of the service; the runtime's routes), and written as Markdown.

    python3 tools/api_coverage.py --write docs/src/reference/api-coverage.md
    python3 tools/api_coverage.py --check docs/src/reference/api-coverage.md   # the test command

The compatibility suite (test_api_coverage.py) then asks a running berth each operation of
each service: those in the table are answered, all others are UnknownOperation."""

import argparse
import gzip
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
AWS = ROOT / "crates" / "berth-aws" / "src"

# Service (botocore's name, title) → the files whose dispatch arms name its operations.
SERVICES = {
    ("sagemaker", "SageMaker"): [
        "control_plane.rs", "experiments.rs", "transform_jobs.rs", "processing_jobs.rs", "monitoring_api.rs",
        "recommendation_api.rs", "registry_api.rs", "components_api.rs",
    ],
    ("cloudwatch", "CloudWatch"): ["cloudwatch/mod.rs"],
    ("logs", "CloudWatch Logs"): ["logs.rs"],
    ("application-autoscaling", "Application Auto Scaling"): ["autoscaling/mod.rs"],
}
# The runtime is REST: its operations are routes.
RUNTIME_ROUTES = {
    "/endpoints/{name}/invocations": "InvokeEndpoint",
    "/endpoints/{name}/invocations-response-stream": "InvokeEndpointWithResponseStream",
    "/endpoints/{name}/async-invocations": "InvokeEndpointAsync",
}
ARM = re.compile(r'^\s*"([A-Z][A-Za-z0-9]+)"\s*=>', re.M)
# Operations answered with a refusal that says what berth does instead (not served, not unknown).
REFUSED = {
    ("sagemaker", "SageMaker"): {
        "CreateModelBiasJobDefinition": "berth monitors data quality and model quality",
        "CreateModelExplainabilityJobDefinition": "berth monitors data quality and model quality",
    },
}


def served():
    out = {}
    for (service, title), files in SERVICES.items():
        ops = set()
        for f in files:
            ops |= set(ARM.findall((AWS / f).read_text()))
        # Arms of other matches (statuses, enum values) are not operations of the service.
        out[(service, title)] = ops & botocore_operations(service)
    routes = (AWS / "lib.rs").read_text()
    out[("sagemaker-runtime", "SageMaker Runtime")] = {op for path, op in RUNTIME_ROUTES.items() if f'"{path}"' in routes}
    return out


def botocore_operations(service):
    import botocore

    data = pathlib.Path(botocore.__file__).parent / "data" / service
    version = sorted(d.name for d in data.iterdir() if d.is_dir())[-1]
    path = data / version / "service-2.json.gz"
    model = json.load(gzip.open(path)) if path.exists() else json.load(open(data / version / "service-2.json"))
    return set(model["operations"])


def table(ops):
    lines = [
        "# API coverage",
        "",
        "Every operation berth serves, by service, read from the code that dispatches them and checked against",
        "botocore's service models (`tools/api_coverage.py`). The test command checks this page against the code,",
        "and asks a running berth every operation of these services: those listed are answered, all others",
        "are refused as `UnknownOperation` (members berth does not implement are refused by name, never ignored).",
        "",
    ]
    for (service, title), names in ops.items():
        total = len(botocore_operations(service))
        lines += [f"## {title}", "", f"{len(names)} of the {total} operations of botocore's `{service}` model.", "", "| Operation |", "|---|"]
        lines += [f"| `{n}` |" for n in sorted(names)]
        lines.append("")
        refused = REFUSED.get((service, title), {})
        if refused:
            lines += ["Refused with a reason (a `ValidationException` saying what berth does instead):", "", "| Operation | Why |", "|---|---|"]
            lines += [f"| `{n}` | {why} |" for n, why in sorted(refused.items())]
            lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write")
    g.add_argument("--check")
    args = p.parse_args()
    ops = served()
    for (service, title), refused in REFUSED.items():
        code = "".join((AWS / f).read_text() for f in SERVICES[(service, title)])
        missing = [op for op in refused if f'"{op}"' not in code]
        if missing:
            sys.exit(f"refused operations no dispatcher names: {missing}")
    text = table(ops)
    if args.write:
        pathlib.Path(args.write).write_text(text)
        return
    if pathlib.Path(args.check).read_text() != text:
        sys.exit(f"{args.check} is not what the code serves: run tools/api_coverage.py --write {args.check}")
    print(f"api coverage: {sum(len(v) for v in ops.values())} operations of {len(ops)} services, as the table says")


if __name__ == "__main__":
    main()
