"""Traffic splitting: weights, TargetVariant, weight and capacity changes, UpdateEndpoint under load."""

import collections
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Load, create_echo_model, deploy, error_code, unique, variant, wait_status


def split(runtime, endpoint, n, **kw):
    counts = collections.Counter()
    for _ in range(n):
        counts[runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x", **kw)["InvokedProductionVariant"]] += 1
    return counts


def test_equal_weights_split_evenly(sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"])
    counts = split(runtime, ep, 1000)
    assert set(counts) == {"Variant1", "Variant2"}
    assert 450 <= counts["Variant1"] <= 550, counts


def test_target_variant_pins(sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"])
    assert split(runtime, ep, 50, TargetVariant="Variant2") == {"Variant2": 50}
    assert split(runtime, ep, 50, TargetVariant="Variant1") == {"Variant1": 50}


def test_weight_shifts_apply_to_the_next_request(sm, runtime):
    ep = deploy(sm, ["Variant1", "Variant2"])
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ep,
        DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 25}, {"VariantName": "Variant2", "DesiredWeight": 75}],
    )
    counts = split(runtime, ep, 1000)
    assert 200 <= counts["Variant1"] <= 300, counts
    d = sm.describe_endpoint(EndpointName=ep)
    weights = {v["VariantName"]: (v["CurrentWeight"], v["DesiredWeight"]) for v in d["ProductionVariants"]}
    assert weights == {"Variant1": (25.0, 25.0), "Variant2": (75.0, 75.0)}

    sm.update_endpoint_weights_and_capacities(
        EndpointName=ep,
        DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 0}, {"VariantName": "Variant2", "DesiredWeight": 1}],
    )
    # At once: not a single request goes to the variant whose weight is now 0.
    assert split(runtime, ep, 200) == {"Variant2": 200}
    # A variant at weight 0 still answers when targeted.
    assert split(runtime, ep, 5, TargetVariant="Variant1") == {"Variant1": 5}
    wait_status(sm, ep, "InService")


def test_weight_change_errors(sm):
    ep = deploy(sm, ["Variant1", "Variant2"])
    with pytest.raises(ClientError) as e:
        sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Nope", "DesiredWeight": 1}])
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=ep,
            DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 0}, {"VariantName": "Variant2", "DesiredWeight": 0}],
        )
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        sm.update_endpoint_weights_and_capacities(EndpointName=unique("ghost"), DesiredWeightsAndCapacities=[{"VariantName": "V", "DesiredWeight": 1}])
    assert error_code(e) == "ValidationException"


def test_instance_count_change_under_load(berth, sm):
    # Instances take a second to start, so the update is still running when the next call comes.
    ep = deploy(sm, ["Variant1"], env={"ECHO_STARTUP_DELAY": "1"})
    with Load(berth, ep) as load:
        load.wait_for(20)
        sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredInstanceCount": 3}])
        d = sm.describe_endpoint(EndpointName=ep)
        assert d["EndpointStatus"] == "Updating"
        assert d["ProductionVariants"][0]["DesiredInstanceCount"] == 3
        assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        # An update while one runs is refused, as SageMaker does.
        with pytest.raises(ClientError) as e:
            sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 2}])
        assert error_code(e) == "ValidationException"
        assert "in-progress" in e.value.response["Error"]["Message"]
        d = wait_status(sm, ep, "InService")
        assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 3
        sm.update_endpoint_weights_and_capacities(EndpointName=ep, DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredInstanceCount": 1}])
        d = wait_status(sm, ep, "InService")
        assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        n = sum(load.counts.values())
        load.wait_for(n + 20)
    assert load.failures == []


def test_update_endpoint_removes_a_variant_without_failing_requests(berth, sm):
    ep = deploy(sm, ["Variant1", "Variant2"])
    only2 = unique("only2")
    sm.create_endpoint_config(EndpointConfigName=only2, ProductionVariants=[variant("Variant2", f"{ep}-variant2".lower())])
    with Load(berth, ep) as load:
        load.wait_for(50)
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=only2)
        # Variant2's fleet is reused, so the update may already be done.
        assert sm.describe_endpoint(EndpointName=ep)["EndpointStatus"] in ("Updating", "InService")
        d = wait_status(sm, ep, ("InService",))
        before = sum(load.counts.values())
        load.wait_for(before + 100)
        after_counts = dict(load.counts)
    assert load.failures == []
    assert d["EndpointConfigName"] == only2
    assert [v["VariantName"] for v in d["ProductionVariants"]] == ["Variant2"]
    assert after_counts["Variant2"] > 0


def test_update_endpoint_replaces_and_adds_variants(berth, sm, runtime):
    ep = deploy(sm, ["Variant1"])
    new_model = unique("newmodel")
    create_echo_model(sm, new_model)
    cfg = unique("swap")
    sm.create_endpoint_config(
        EndpointConfigName=cfg,
        ProductionVariants=[variant("Variant1", new_model, 1.0), variant("Variant3", new_model, 3.0)],
    )
    with Load(berth, ep) as load:
        load.wait_for(20)
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=cfg)
        wait_status(sm, ep, "InService")
    assert load.failures == []
    import json

    names = {json.loads(runtime.invoke_endpoint(EndpointName=ep, Body=b"x", TargetVariant="Variant1")["Body"].read())["name"] for _ in range(5)}
    assert names == {new_model}
    counts = split(runtime, ep, 400)
    assert 60 <= counts["Variant1"] <= 140, counts


def test_update_endpoint_retains_variant_properties(sm):
    ep = deploy(sm, ["Variant1", "Variant2"])
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ep,
        DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 9}, {"VariantName": "Variant2", "DesiredWeight": 1}],
    )
    wait_status(sm, ep, "InService")
    cfg = unique("retain")
    sm.create_endpoint_config(
        EndpointConfigName=cfg,
        ProductionVariants=[variant("Variant1", f"{ep}-variant1".lower(), 1.0), variant("Variant2", f"{ep}-variant2".lower(), 1.0)],
    )
    sm.update_endpoint(EndpointName=ep, EndpointConfigName=cfg, RetainAllVariantProperties=True)
    d = wait_status(sm, ep, "InService")
    assert {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]} == {"Variant1": 9.0, "Variant2": 1.0}

    cfg2 = unique("exclude")
    sm.create_endpoint_config(
        EndpointConfigName=cfg2,
        ProductionVariants=[variant("Variant1", f"{ep}-variant1".lower(), 1.0), variant("Variant2", f"{ep}-variant2".lower(), 1.0)],
    )
    sm.update_endpoint(
        EndpointName=ep,
        EndpointConfigName=cfg2,
        RetainAllVariantProperties=True,
        ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredWeight"}],
    )
    d = wait_status(sm, ep, "InService")
    assert {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]} == {"Variant1": 1.0, "Variant2": 1.0}


def test_failed_update_keeps_the_old_fleet_serving(berth, sm, runtime):
    ep = deploy(sm, ["Variant1"])
    broken = unique("broken")
    create_echo_model(sm, broken, {"ECHO_EXIT_ON_START": "1"})
    cfg = unique("badcfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[variant("Variant1", broken)])
    with Load(berth, ep) as load:
        load.wait_for(10)
        sm.update_endpoint(EndpointName=ep, EndpointConfigName=cfg)
        d = wait_status(sm, ep, "InService", timeout=60)
        load.wait_for(sum(load.counts.values()) + 10)
    assert load.failures == []
    assert d["EndpointConfigName"] == ep
    assert "FailureReason" in d and "exit" in d["FailureReason"].lower()


def test_random_routing_strategy_spreads_over_instances(sm, runtime):
    import json

    name = unique("random")
    create_echo_model(sm, name)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[variant("V", name, 1.0, 3, RoutingConfig={"RoutingStrategy": "RANDOM"})],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_status(sm, name)
    pids = collections.Counter(json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read())["pid"] for _ in range(150))
    assert len(pids) == 3
    assert min(pids.values()) >= 20, pids


def test_weight_changes_under_load_fail_nothing(berth, sm):
    ep = deploy(sm, ["Variant1", "Variant2"])
    with Load(berth, ep) as load:
        load.wait_for(20)
        for i in range(20):
            w1, w2 = (0, 1) if i % 2 else (1, 0)
            sm.update_endpoint_weights_and_capacities(
                EndpointName=ep,
                DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": w1}, {"VariantName": "Variant2", "DesiredWeight": w2}],
            )
            load.wait_for(sum(load.counts.values()) + 5)
    assert load.failures == []
    assert load.counts["Variant1"] > 0 and load.counts["Variant2"] > 0
