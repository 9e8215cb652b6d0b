"""The Grafana dashboard in grafana/berth-dashboard.json: importable as is (a datasource input,
no hard-wired datasource), every panel query valid PromQL (promql-parser, the Rust parser's
Python binding), and every metric it reads present in a real berth's /metrics while the demo
runs its A/B test."""

import json
import re

import promql_parser
import requests

from conftest import ROOT, BerthServer

DASHBOARD = ROOT / "grafana" / "berth-dashboard.json"
# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$endpoint": ".*"}


def queries(dashboard):
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def test_the_dashboard_is_importable_and_its_queries_parse():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS" and dashboard["__inputs"][0]["pluginId"] == "prometheus"
    assert dashboard["uid"] and dashboard["title"] == "berth"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    for title, expr in queries(dashboard):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, (title, expr)
        promql_parser.parse(expr)  # raises on invalid PromQL


def test_every_metric_the_dashboard_reads_is_exported(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    wanted = set()
    for _, expr in queries(dashboard):
        wanted |= set(re.findall(r"\bberth_[a-z0-9_]+", expr))
    assert {"berth_invocations_total", "berth_model_latency_seconds_bucket", "berth_variant_accuracy", "berth_ab_decided"} <= wanted
    server = BerthServer(tmp_path / "data", ["--demo"]).start()
    try:
        import time

        deadline = time.time() + 90
        while True:
            text = requests.get(f"{server.url}/metrics", timeout=10).text
            exported = set(re.findall(r"^(berth_[a-z0-9_]+)\{", text, re.M))
            missing = wanted - exported
            if not missing:
                break
            assert time.time() < deadline, f"not in /metrics: {sorted(missing)}"
            time.sleep(1)
        weights = re.findall(r'^berth_variant_weight\{endpoint="demo",variant="(Variant[12])"\} 1$', text, re.M)
        assert sorted(weights) == ["Variant1", "Variant2"], text[-2000:]
        accuracy = re.search(r'^berth_variant_accuracy\{endpoint="demo",variant="Variant1"\} ([0-9.]+)$', text, re.M)
        lower = re.search(r'^berth_variant_accuracy_ci95_lower\{endpoint="demo",variant="Variant1"\} ([0-9.]+)$', text, re.M)
        assert accuracy and lower and 0 <= float(lower.group(1)) <= float(accuracy.group(1)) <= 1
    finally:
        server.stop()
