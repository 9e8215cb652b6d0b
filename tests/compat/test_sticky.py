"""Sticky assignment by user (`berth:sticky-key`): the same key always reaches the same variant,
keys split by the weights, and a weight shift moves only the keys it must, from the variant that
shrinks to the one that grows. Real boto3 against a real berth; echo containers answer with
their variant's name."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import berth_binary, deploy, error_code, unique, wait_status

USERS = [f"user-{i}" for i in range(2000)]


def sticky_endpoint(sm, place, weights=(1, 1)):
    name = unique("sticky")
    deploy(sm, [("A", weights[0]), ("B", weights[1])], name=name)
    arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "berth:sticky-key", "Value": place}])
    return name


def variants_of(runtime, endpoint, users, header="user", **extra):
    """The variant each user's call reached, with the key as `header` in CustomAttributes (or
    as the InferenceId when header is None)."""

    def one(user):
        key = {"InferenceId": user} if header is None else {"CustomAttributes": f"session=s1; {header}={user}"}
        answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x", ContentType="text/plain", **key, **extra)
        return answer["InvokedProductionVariant"]

    with ThreadPoolExecutor(8) as pool:
        return dict(zip(users, pool.map(one, users)))


def share(assigned, variant):
    return sum(v == variant for v in assigned.values()) / len(assigned)


def test_users_stay_on_their_variant_and_a_shift_moves_only_what_it_must(own_berth):
    server = own_berth()
    sm, runtime = server.sm(), server.runtime()
    name = sticky_endpoint(sm, "CustomAttributes:user")

    first = variants_of(runtime, name, USERS)
    assert abs(share(first, "A") - 0.5) <= 0.04, share(first, "A")
    again = variants_of(runtime, name, USERS[:300])
    assert all(again[u] == first[u] for u in again), "the same users land where they were"

    # TargetVariant still wins over the key.
    assert set(variants_of(runtime, name, USERS[:50], TargetVariant="B").values()) == {"B"}
    # Without the key (or with another field), calls are routed by weight at random: one user
    # name sent 200 times without its field reaches both variants.
    spread = [runtime.invoke_endpoint(EndpointName=name, Body=b"x", CustomAttributes="username=u1")["InvokedProductionVariant"] for _ in range(200)]
    assert 60 < spread.count("A") < 140, spread.count("A")

    sm.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 40}, {"VariantName": "B", "DesiredWeight": 60}]
    )
    wait_status(sm, name, "InService")
    shifted = variants_of(runtime, name, USERS)
    assert abs(share(shifted, "A") - 0.4) <= 0.04, share(shifted, "A")
    moved = [u for u in USERS if shifted[u] != first[u]]
    assert len(moved) <= 0.14 * len(USERS), len(moved)
    assert all(first[u] == "A" and shifted[u] == "B" for u in moved), "only from the shrinking variant to the growing one"

    # No state: after a restart every user is where they were.
    server.restart()
    assert wait_status(server.sm(), name)["EndpointStatus"] == "InService"
    after = variants_of(server.runtime(), name, USERS[:300])
    assert all(after[u] == shifted[u] for u in after)

    # `berth invoke --key` sends the key where the tag says.
    cli = lambda user: subprocess.run(  # noqa: E731
        [berth_binary(), "invoke", name, "--key", user, "--url", server.url, "--content-type", "text/plain"],
        input=b"x",
        capture_output=True,
        check=True,
    ).stderr.decode()
    for user in USERS[:10]:
        assert cli(user).strip().endswith(f"from {shifted[user]}"), cli(user)


def test_the_inference_id_as_the_key_and_a_bad_tag_is_refused(own_berth):
    server = own_berth()
    sm, runtime = server.sm(), server.runtime()
    name = sticky_endpoint(sm, "InferenceId")
    first = variants_of(runtime, name, USERS[:400], header=None)
    assert 0.4 < share(first, "A") < 0.6, share(first, "A")
    assert variants_of(runtime, name, USERS[:400], header=None) == first

    arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
    with pytest.raises(Exception) as e:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "berth:sticky-key", "Value": "Cookie:user"}])
    assert error_code(e) == "ValidationException" and "CustomAttributes:<field>" in str(e.value)
    # Untagged, the same id is routed at random again.
    sm.delete_tags(ResourceArn=arn, TagKeys=["berth:sticky-key"])
    reached = {runtime.invoke_endpoint(EndpointName=name, Body=b"x", InferenceId="same-user")["InvokedProductionVariant"] for _ in range(60)}
    assert reached == {"A", "B"}
