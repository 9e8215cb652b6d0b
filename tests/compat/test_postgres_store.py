"""berth's state in PostgreSQL (`--store postgres://...`): a real PostgreSQL (Debian's package,
started by scripts/postgres.sh as an unprivileged cluster on 127.0.0.1) and real berth processes
driven by boto3. State outlives a server killed with SIGKILL and moves with the store, not the
data directory; bad URLs fail at start; a store out of reach answers ServiceUnavailable while
invocations go on, and berth reconnects by itself. (Several servers on one store: test_cluster.py.)"""

import subprocess

import pytest

from conftest import ROOT, BerthServer, create_echo_model, deploy, error_code, eventually, http_status, unique

SCRIPT = str(ROOT / "scripts" / "postgres.sh")


def server(tmp_path, label, store_url):
    return BerthServer(tmp_path / label / "data", ["--store", store_url, "--node-name", label])


def invoke(node, endpoint):
    answer = node.runtime().invoke_endpoint(EndpointName=endpoint, Body=b"ping", ContentType="text/plain")
    return answer["ResponseMetadata"]["HTTPStatusCode"]


def test_state_lives_in_postgresql_across_servers_and_data_directories(tmp_path, store):
    first = server(tmp_path, "first", store).start()
    sm = first.sm()
    endpoint = deploy(sm, ["A", "B"])
    arn = sm.describe_endpoint(EndpointName=endpoint)["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "ml"}])
    assert invoke(first, endpoint) == 200
    # Killed without a chance to write anything more; the next server has a data directory of
    # its own and reads everything from the store.
    assert first.stop(sig=9) == -9
    second = server(tmp_path, "second", store).start()
    try:
        sm = second.sm()
        described = eventually(lambda: (d := sm.describe_endpoint(EndpointName=endpoint))["EndpointStatus"] == "InService" and d, 60)
        assert described, sm.describe_endpoint(EndpointName=endpoint)
        assert [v["VariantName"] for v in described["ProductionVariants"]] == ["A", "B"]
        assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
        assert {m["ModelName"] for m in sm.list_models()["Models"]} == {f"{endpoint}-a", f"{endpoint}-b"}
        assert invoke(second, endpoint) == 200
    finally:
        assert second.stop() == 0


@pytest.mark.parametrize(
    "url, says",
    [
        ("mysql://berth:hunter2@127.0.0.1/berth", "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"),
        ("postgres://berth:hunter2@127.0.0.1:notaport/berth", "not a PostgreSQL URL"),
        ("postgres://berth:hunter2@127.0.0.1:1/berth", "cannot connect to PostgreSQL at postgres://berth:***@127.0.0.1:1/berth"),
    ],
)
def test_bad_store_urls_fail_at_start_naming_why(tmp_path, url, says):
    bad = server(tmp_path, "bad", url)
    with pytest.raises(RuntimeError):
        bad.start()
    assert bad.proc.wait(timeout=30) != 0
    log = bad.log_text()
    assert says in log, log
    assert "hunter2" not in log, "the password is never shown"


def test_a_store_out_of_reach_refuses_writes_with_503_while_invocations_go_on(tmp_path, postgres, store):
    _, cluster = postgres
    node = server(tmp_path, "node", store).start()
    try:
        sm = node.sm()
        endpoint = deploy(sm, ["A"])
        subprocess.run(["bash", SCRIPT, "halt", str(cluster)], check=True)
        try:
            with pytest.raises(Exception) as refused:
                create_echo_model(sm, unique("during-outage"))
            assert (error_code(refused), http_status(refused)) == ("ServiceUnavailable", 503), refused.value
            # Routing runs on what berth already knows.
            assert all(invoke(node, endpoint) == 200 for _ in range(20))
        finally:
            subprocess.run(["bash", SCRIPT, "resume", str(cluster)], check=True)

        def written():
            try:
                create_echo_model(sm, name := unique("after-outage"))
                return name
            except Exception:
                return None

        name = eventually(written, 30)
        assert name, "berth did not reconnect to PostgreSQL"
        assert sm.describe_model(ModelName=name)["ModelName"] == name
    finally:
        assert node.stop() == 0
