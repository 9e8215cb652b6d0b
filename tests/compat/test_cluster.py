"""Several berth servers on one PostgreSQL store: one leads and serves, the others stand by and
take over within seconds when it dies (kill -9) or loses its session, finishing what it left
half done; a deposed leader stops and its late writes are refused. Real PostgreSQL
(scripts/postgres.sh), real berth processes, boto3 and `berth nodes`."""

import json
import signal
import subprocess
import time

import pytest

from conftest import BerthServer, berth_binary, create_echo_model, deploy, eventually, new_database, postgres_server, unique, variant, wait_status


@pytest.fixture(scope="module")
def postgres():
    yield from postgres_server()


@pytest.fixture
def store(postgres):
    return new_database(postgres[0])


def node(tmp_path, name, store_url):
    return BerthServer(tmp_path / name / "data", ["--store", store_url, "--node-name", name])


def nodes(store_url):
    out = subprocess.run([berth_binary(), "nodes", "--json", "--store", store_url], check=True, capture_output=True, text=True).stdout
    return {n["Name"]: n for n in json.loads(out)["Nodes"]}


def new_leader(standbys, timeout=15):
    """The standby that comes to lead within `timeout` seconds, and how long it took."""
    start = time.time()
    while time.time() - start < timeout:
        for n in standbys:
            if n.wait_listening(0.1):
                return n, time.time() - start
    raise AssertionError(f"no standby led within {timeout}s")


def invoke(server, endpoint):
    answer = server.runtime().invoke_endpoint(EndpointName=endpoint, Body=b"ping", ContentType="text/plain")
    return answer["ResponseMetadata"]["HTTPStatusCode"]


def test_one_server_leads_the_others_stand_by_and_one_takes_over_finishing_what_was_left(tmp_path, store):
    n1 = node(tmp_path, "n1", store).start()
    standbys = [node(tmp_path, name, store).start(standby=True) for name in ("n2", "n3")]
    try:
        assert all(s.url is None for s in standbys), "a standby does not listen"
        # The leader's address is announced with its next heartbeat.
        listed = eventually(lambda: (got := nodes(store))["n1"]["Address"] == n1.url and got, 10)
        assert listed, nodes(store)
        assert {name: n["Leader"] for name, n in listed.items()} == {"n1": True, "n2": False, "n3": False}
        # A second server may not take a live server's name.
        twin = node(tmp_path / "twin", "n2", store)
        with pytest.raises(RuntimeError):
            twin.start(standby=True)
        assert twin.proc.wait(timeout=30) != 0 and "give each server its own --node-name" in twin.log_text()

        sm = n1.sm()
        serving = deploy(sm, ["A", "B"])
        assert invoke(n1, serving) == 200
        # The leader dies in the middle of a CreateEndpoint it acknowledged.
        half = unique("half")
        create_echo_model(sm, half)
        sm.create_endpoint_config(EndpointConfigName=half, ProductionVariants=[variant("A", half)])
        sm.create_endpoint(EndpointName=half, EndpointConfigName=half)
        n1.stop(sig=signal.SIGKILL)

        leader, took = new_leader(standbys)
        print(f"a standby led {took:.2f}s after the leader was killed")
        sm = leader.sm()
        for endpoint in (serving, half):
            described = wait_status(sm, endpoint, timeout=60)
            assert described["EndpointStatus"] == "InService", described.get("FailureReason")
            assert invoke(leader, endpoint) == 200
        listed = nodes(store)
        assert [name for name, n in listed.items() if n["Leader"]] == [leader.data_dir.parent.name]
        assert not listed["n1"]["Connected"] and all(listed[n]["Connected"] for n in ("n2", "n3")), listed

        # The old leader, back, stands by.
        n1.start(standby=True)
        assert n1.url is None
        # A standby stops at once and cleanly on SIGTERM.
        assert n1.stop() == 0
    finally:
        for s in [n1, *standbys]:
            s.stop()


def test_a_leader_whose_session_is_cut_is_deposed_and_stops(tmp_path, postgres, store):
    admin, _ = postgres
    n1 = node(tmp_path, "n1", store).start()
    n2 = node(tmp_path, "n2", store).start(standby=True)
    try:
        endpoint = deploy(n1.sm(), ["A"])
        # As a cut network would: PostgreSQL ends the leader's election session (its lock goes).
        database = store.rsplit("/", 1)[1]
        ended = subprocess.run(
            ["psql", admin, "-Atc", f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}' AND application_name = 'berth-election/n1'"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        assert ended == "1"
        # The standby leads; the old leader, reconnected, finds itself deposed and stops.
        leader, _ = new_leader([n2])
        assert n1.proc.wait(timeout=60) != 0
        assert "n2 leads the cluster now, so this server stopped" in n1.log_text()
        assert wait_status(leader.sm(), endpoint, timeout=60)["EndpointStatus"] == "InService"
        assert invoke(leader, endpoint) == 200
    finally:
        for s in (n1, n2):
            s.stop()
