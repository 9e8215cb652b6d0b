"""Per-variant metrics: exact counts after a known number of requests, read through Prometheus'
own text-format parser."""

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import create_echo_model, unique, variant, wait_status

prometheus_parser = pytest.importorskip("prometheus_client.parser")


def scrape(berth, endpoint):
    """Samples of `endpoint` from GET /metrics, as {(metric, variant, extra labels): value}."""
    r = requests.get(f"{berth.url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in prometheus_parser.text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.labels.get("endpoint") != endpoint:
                continue
            extra = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("endpoint", "variant")))
            samples[(s.name, s.labels["variant"], extra)] = s.value
    return samples


def test_counts_per_variant_are_exact(berth, sm, runtime):
    ep = unique("metrics")
    create_echo_model(sm, f"{ep}-ok")
    create_echo_model(sm, f"{ep}-client-errors", {"ECHO_STATUS": "400"})
    sm.create_endpoint_config(EndpointConfigName=ep, ProductionVariants=[variant("Variant1", f"{ep}-ok"), variant("Variant2", f"{ep}-client-errors")])
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    wait_status(sm, ep)

    for _ in range(30):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"x", TargetVariant="Variant1")
    for _ in range(10):
        with pytest.raises(ClientError):
            runtime.invoke_endpoint(EndpointName=ep, Body=b"fail", TargetVariant="Variant1")
    for _ in range(20):
        with pytest.raises(ClientError):
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x", TargetVariant="Variant2")

    m = scrape(berth, ep)
    assert m[("berth_invocations_total", "Variant1", ())] == 40
    assert m[("berth_invocations_total", "Variant2", ())] == 20
    assert m[("berth_invocation_5xx_errors_total", "Variant1", ())] == 10
    assert m[("berth_invocation_4xx_errors_total", "Variant1", ())] == 0
    assert m[("berth_invocation_4xx_errors_total", "Variant2", ())] == 20
    assert m[("berth_invocation_model_errors_total", "Variant1", ())] == 10
    assert m[("berth_invocation_model_errors_total", "Variant2", ())] == 20
    assert m[("berth_model_latency_seconds_count", "Variant1", ())] == 40
    assert m[("berth_overhead_latency_seconds_count", "Variant2", ())] == 20
    # Plausible latency: every request took more than nothing and less than the 60 s timeout.
    total = m[("berth_model_latency_seconds_sum", "Variant1", ())]
    assert 0 < total / 40 < 60
    assert m[("berth_model_latency_seconds_bucket", "Variant1", (("le", "+Inf"),))] == 40
    assert m[("berth_variant_instances", "Variant1", (("state", "healthy"),))] == 1

    # Counters survive a weight change (the route is republished, the counters are not reset).
    sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Variant2", "DesiredWeight": 0}])
    runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    assert scrape(berth, ep)[("berth_invocations_total", "Variant1", ())] == 41
