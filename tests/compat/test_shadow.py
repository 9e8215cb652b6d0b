"""Shadow variants (ShadowProductionVariants): callers get only production answers and never
wait for the shadow; the shadow gets its sampling share of copies, has its own metrics, and its
answers are kept beside production's for comparison (GET /berth/v1/endpoints/{name}/shadows)."""

import json
import time

import requests

from conftest import create_echo_model, recent_statistics, unique, variant, wait_status


def shadow_endpoint(sm, shadow_weight, shadow_env=None, same_model=False):
    ep = unique("shadow")
    prod = f"{ep}-prod"
    create_echo_model(sm, prod)
    shadow = prod
    if not same_model:
        shadow = f"{ep}-shadow"
        create_echo_model(sm, shadow, shadow_env)
    sm.create_endpoint_config(
        EndpointConfigName=ep,
        ProductionVariants=[variant("Prod", prod, weight=1.0)],
        ShadowProductionVariants=[variant("Shadow", shadow, weight=shadow_weight)],
    )
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=ep)
    d = wait_status(sm, ep)
    assert d["EndpointStatus"] == "InService", d.get("FailureReason")
    return ep, prod, shadow


def shadow_stats(berth, ep, want_sampled=None, timeout=15):
    deadline = time.time() + timeout
    while True:
        r = requests.get(f"{berth.url}/berth/v1/endpoints/{ep}/shadows", timeout=10)
        assert r.status_code == 200
        shadows = r.json()["shadows"]
        if want_sampled is None or (shadows and shadows[0]["sampled"] >= want_sampled) or time.time() > deadline:
            return shadows
        time.sleep(0.1)


def invocations(cw, ep, variant_name):
    dimensions = [{"Name": "EndpointName", "Value": ep}, {"Name": "VariantName", "Value": variant_name}]
    found = recent_statistics(cw, "Invocations", dimensions, statistics=["Sum"])
    return found["Sum"] if found else 0


def test_callers_see_production_and_the_shadow_gets_its_share(berth, sm, runtime):
    ep, prod, shadow = shadow_endpoint(sm, shadow_weight=0.5)
    d = sm.describe_endpoint(EndpointName=ep)
    assert [v["VariantName"] for v in d["ProductionVariants"]] == ["Prod"]
    assert [v["VariantName"] for v in d["ShadowProductionVariants"]] == ["Shadow"]
    assert d["ShadowProductionVariants"][0]["CurrentInstanceCount"] == 1
    config = sm.describe_endpoint_config(EndpointConfigName=ep)
    assert config["ShadowProductionVariants"][0]["ModelName"] == shadow

    n = 400
    for _ in range(n):
        r = runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
        assert r["InvokedProductionVariant"] == "Prod"
        assert json.loads(r["Body"].read())["name"] == prod
    # Copies run in the background; wait until they are all in.
    cw = berth.client("cloudwatch")
    deadline, previous = time.time() + 15, None
    while True:
        stats = shadow_stats(berth, ep)
        counted = invocations(cw, ep, "Shadow")
        seen = (stats[0]["sampled"] if stats else 0, counted)
        if seen == previous and seen[0] == seen[1] > 0:
            break  # the same, and the same count both ways, two polls in a row
        assert time.time() < deadline, (stats, counted)
        previous = seen
        time.sleep(1.2)
    (s,) = stats
    assert 150 <= s["sampled"] <= 250, s["sampled"]  # 400 × 0.5, ± 5 standard deviations
    assert invocations(cw, ep, "Prod") == n
    # Different models answer differently: every comparison disagrees, and both answers are kept.
    assert s["agreed"] == 0 and s["agreement_rate"] == 0.0 and s["errors"] == 0 and s["dropped"] == 0
    latest = s["recent"][0]
    assert latest["production_variant"] == "Prod" and latest["production_status"] == latest["shadow_status"] == 200
    assert json.loads(latest["production_body"])["name"] == prod and json.loads(latest["shadow_body"])["name"] == shadow


def test_the_caller_never_waits_for_a_slow_shadow(berth, sm, runtime):
    ep, _, _ = shadow_endpoint(sm, shadow_weight=1.0, shadow_env={"ECHO_DELAY_MS": "1500"})
    for _ in range(5):
        started = time.time()
        runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
        assert time.time() - started < 1.0, "the caller waited for the shadow"
    (s,) = shadow_stats(berth, ep, want_sampled=5, timeout=20)
    assert s["sampled"] == 5 and min(c["shadow_latency_us"] for c in s["recent"]) >= 1_500_000


def test_an_identical_shadow_agrees(berth, sm, runtime):
    ep, _, _ = shadow_endpoint(sm, shadow_weight=1.0, same_model=True)
    for _ in range(20):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"same")
    (s,) = shadow_stats(berth, ep, want_sampled=20)
    # The echo container reports its pid, which differs between instances; so compare the rest.
    assert s["sampled"] == 20
    for c in s["recent"]:
        a, b = json.loads(c["production_body"]), json.loads(c["shadow_body"])
        a.pop("pid"), b.pop("pid")
        assert a == b


def test_shadow_weights_change_the_sampling(berth, sm, runtime):
    ep, _, _ = shadow_endpoint(sm, shadow_weight=1.0)
    sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Shadow", "DesiredWeight": 0.0}])
    for _ in range(50):
        runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
    time.sleep(0.5)
    assert shadow_stats(berth, ep) == [], "weight 0: no copies"
