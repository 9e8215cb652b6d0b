"""Several berth servers on one PostgreSQL store: every one answers (those that stand by route
invocations themselves on the routes the leader publishes, and forward the rest), one leads and runs the endpoints, and another takes over within seconds when it
dies (kill -9) or loses its session, finishing what it left half done; a deposed leader stops
its endpoints and stands by again. Real PostgreSQL
(scripts/postgres.sh), real berth processes, boto3 and `berth nodes`."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import ROOT, BerthServer, berth_binary, create_echo_model, deploy, eventually, recent_statistics, unique, variant, wait_status


def node(tmp_path, name, store_url):
    return BerthServer(tmp_path / name / "data", ["--store", store_url, "--node-name", name])


def nodes(store_url):
    out = subprocess.run([berth_binary(), "nodes", "--json", "--store", store_url], check=True, capture_output=True, text=True).stdout
    return {n["Name"]: n for n in json.loads(out)["Nodes"]}


def leader_of(store_url, timeout=15, not_=None):
    """The name of the server that leads (other than `not_`) within `timeout` seconds, and how
    long it took to find."""
    start = time.time()
    while time.time() - start < timeout:
        leaders = [name for name, n in nodes(store_url).items() if n["Leader"] and name != not_]
        if leaders:
            return leaders[0], time.time() - start
        time.sleep(0.1)
    raise AssertionError(f"no server led within {timeout}s: {nodes(store_url)}")


def answers(server):
    try:
        server.sm().list_endpoints()
        return True
    except Exception:
        return False


def invoke(server, endpoint):
    answer = server.runtime().invoke_endpoint(EndpointName=endpoint, Body=b"ping", ContentType="text/plain")
    return answer["ResponseMetadata"]["HTTPStatusCode"]


def test_every_server_answers_one_leads_and_another_takes_over_finishing_what_was_left(tmp_path, store):
    servers = {name: node(tmp_path, name, store).start() for name in ("n1", "n2", "n3")}
    n1, n2, n3 = servers.values()
    try:
        # n1 started first and leads; every server listens and announces where.
        listed = eventually(lambda: (got := nodes(store)) and all(got[n]["Address"] == s.url for n, s in servers.items()) and got, 10)
        assert listed, nodes(store)
        assert {name: n["Leader"] for name, n in listed.items()} == {"n1": True, "n2": False, "n3": False}
        # A second server may not take a live server's name.
        twin = node(tmp_path / "twin", "n2", store)
        with pytest.raises(RuntimeError):
            twin.start()
        assert twin.proc.wait(timeout=30) != 0 and "give each server its own --node-name" in twin.log_text()

        # Made through a standby, served through every server, with the same answers.
        serving = deploy(n2.sm(), ["A", "B"])
        assert all(invoke(s, serving) == 200 for s in servers.values())
        n3.sm().update_endpoint_weights_and_capacities(
            EndpointName=serving, DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 0.0}]
        )
        weights = lambda s: {v["VariantName"]: v["CurrentWeight"] for v in s.sm().describe_endpoint(EndpointName=serving)["ProductionVariants"]}  # noqa: E731
        assert weights(n1) == weights(n2) == {"A": 0.0, "B": 1.0}
        invoked = [n1.runtime().invoke_endpoint(EndpointName=serving, Body=b"x", ContentType="text/plain") for _ in range(10)]
        assert {a["InvokedProductionVariant"] for a in invoked} == {"B"}, "the weight set through n3 steers n1"
        names = lambda s: sorted(e["EndpointName"] for e in s.sm().list_endpoints()["Endpoints"])  # noqa: E731
        assert names(n1) == names(n2) == names(n3)
        # The dashboard's overview, read through a standby, shows the cluster.
        with urllib.request.urlopen(f"{n3.url}/berth/v1/overview", timeout=10) as r:
            overview = json.loads(r.read())
        assert {n["name"]: n["role"] for n in overview["nodes"]} == {"n1": "leader", "n2": "standby", "n3": "standby"}
        assert {n["name"]: n["instances"] for n in overview["nodes"]} == {"n1": 2, "n2": 0, "n3": 0}, "the leader runs both variants' instances"
        with urllib.request.urlopen(f"{n2.url}/metrics", timeout=10) as r:
            scraped = r.read().decode()
        assert 'berth_cluster_node{node="n1",role="leader"} 1' in scraped and 'berth_cluster_node{node="n3",role="standby"} 1' in scraped

        # The leader dies in the middle of a CreateEndpoint it acknowledged.
        half = unique("half")
        create_echo_model(n1.sm(), half)
        n1.sm().create_endpoint_config(EndpointConfigName=half, ProductionVariants=[variant("A", half)])
        n1.sm().create_endpoint(EndpointName=half, EndpointConfigName=half)
        n1.stop(sig=signal.SIGKILL)

        leader, took = leader_of(store, not_="n1")
        print(f"{leader} led {took:.2f}s after the leader was killed")
        standby = n3 if leader == "n2" else n2
        # The standby learns the new leader's address within a heartbeat or two (meanwhile it
        # answers 503 ServiceUnavailable, which the SDKs retry).
        assert eventually(lambda: answers(standby), 15)
        for endpoint in (serving, half):
            described = wait_status(standby.sm(), endpoint, timeout=60)
            assert described["EndpointStatus"] == "InService", described.get("FailureReason")
            assert eventually(lambda: invoke(standby, endpoint) == 200, 30)
        listed = nodes(store)
        assert not listed["n1"]["Connected"] and all(listed[n]["Connected"] for n in ("n2", "n3")), listed

        # The old leader, back, stands by and answers; a standby stops cleanly on SIGTERM.
        n1.start()
        assert eventually(lambda: nodes(store)["n1"]["Connected"], 10)
        assert invoke(n1, serving) == 200
        assert n1.stop() == 0
    finally:
        for s in servers.values():
            s.stop()


def scrape(server):
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as r:
        return r.read().decode()


def counted(scraped, endpoint, node):
    """Invocations a server's /metrics says it routed to `endpoint`, over its variants."""
    total = 0
    for line in scraped.splitlines():
        if line.startswith("berth_invocations_total{") and f'endpoint="{endpoint}"' in line and f'node="{node}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def postgres_ctl(postgres, action):
    """Halts or resumes the module's PostgreSQL (scripts/postgres.sh)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), action, str(postgres[1])], check=True)


def test_a_standby_routes_invocations_itself_on_the_leaders_routes(tmp_path, postgres, store):
    n1 = node(tmp_path, "n1", store).start()
    n2 = node(tmp_path, "n2", store).start()
    try:
        assert leader_of(store)[0] == "n1"
        endpoint = deploy(n1.sm(), ["A", "B"])
        # Until the standby has the leader's route (a tenth of a second or so), it forwards.
        assert eventually(lambda: f'berth_variant_weight{{node="n2",endpoint="{endpoint}",variant="B"}}' in scrape(n2), 10)
        # The standby routes these itself: its own metrics count them, labelled with its name.
        before = (counted(scrape(n1), endpoint, "n1"), counted(scrape(n2), endpoint, "n2"))
        for _ in range(20):
            assert invoke(n2, endpoint) == 200
        by_n2 = counted(scrape(n2), endpoint, "n2")
        assert (counted(scrape(n1), endpoint, "n1"), by_n2) == (before[0], before[1] + 20), "the leader routed none of them"

        # What the standby answers itself is checked as the leader checks it: a body past
        # SageMaker's 6 MB (announced, so the answer comes before it is sent) and an over-long
        # header are refused in the runtime's shape, and the standby goes on.
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", n2.port, timeout=30)
        conn.putrequest("POST", f"/endpoints/{endpoint}/invocations")
        conn.putheader("Content-Length", str(6 * 1024 * 1024 + 1))
        conn.endheaders()  # the answer comes before any of the body is sent
        refused = conn.getresponse()
        assert (refused.status, b"limit of an invocation (6 MB)" in refused.read()) == (400, True)
        conn.close()
        with pytest.raises(n2.runtime().exceptions.ValidationError, match="targetVariant"):
            n2.runtime().invoke_endpoint(EndpointName=endpoint, Body=b"x", TargetVariant="V" * 64)
        assert counted(scrape(n1), endpoint, "n1") == before[0], "refused at the standby, not forwarded"
        assert invoke(n2, endpoint) == 200
        by_n2 += 1
        # A weight set through the leader steers the standby's own routing within a second.
        n1.sm().update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 0.0}])
        changed = time.time()
        steered = lambda: all(n2.runtime().invoke_endpoint(EndpointName=endpoint, Body=b"x")["InvokedProductionVariant"] == "B" for _ in range(10))  # noqa: E731
        assert eventually(steered, 5)
        took = time.time() - changed
        print(f"the weight steered the standby {took:.3f}s after UpdateEndpointWeightsAndCapacities answered")
        assert took < 1.0

        # CloudWatch through either server sees the standby's invocations in the cluster's metrics.
        dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "B"}]
        routed_b = lambda: counted(scrape(n2), endpoint, "n2") - by_n2  # noqa: E731
        for server in (n1, n2):
            got = eventually(lambda: (p := recent_statistics(server.client("cloudwatch"), "Invocations", dims)) and p["Sum"] >= routed_b() and p, 15)
            assert got and got["Sum"] >= 10, got

        # The leader frozen: the standby's invocations flow on, straight to the instances.
        n1.proc.send_signal(signal.SIGSTOP)
        try:
            assert all(invoke(n2, endpoint) == 200 for _ in range(10))
        finally:
            n1.proc.send_signal(signal.SIGCONT)
        # PostgreSQL down: the standby routes on the routes it last knew.
        postgres_ctl(postgres, "halt")
        try:
            assert all(invoke(n2, endpoint) == 200 for _ in range(10))
        finally:
            postgres_ctl(postgres, "resume")
        assert eventually(lambda: all(n["Connected"] for n in nodes(store).values()), 30), nodes(store)

        # A deleted endpoint is no longer routed by the standby.
        n1.sm().delete_endpoint(EndpointName=endpoint)
        def gone():
            try:
                invoke(n2, endpoint)
                return False
            except n2.runtime().exceptions.ValidationError:
                return True
        assert eventually(gone, 10)
    finally:
        for s in (n1, n2):
            s.stop()


def faketime_library():
    """libfaketime (Debian's faketime package), which scripts/test.sh installs."""
    import glob

    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    if not found:
        pytest.fail("libfaketime is missing: install Debian's faketime package (scripts/test.sh does)")
    return found[0]


def test_servers_with_clocks_minutes_apart_keep_one_leader_and_file_metrics_where_they_belong(tmp_path, store):
    skewed = lambda name, offset: BerthServer(  # noqa: E731
        tmp_path / name / "data", ["--store", store, "--node-name", name], env={"LD_PRELOAD": faketime_library(), "FAKETIME": offset}
    )
    n1 = node(tmp_path, "n1", store).start()
    n2 = skewed("n2", "+5m").start()
    n3 = skewed("n3", "-5m").start()
    servers = (n1, n2, n3)
    try:
        assert leader_of(store)[0] == "n1"
        endpoint = deploy(n2.sm(), ["A"])
        # Several heartbeats later the leader is the same, and every server is in.
        time.sleep(4)
        listed = nodes(store)
        assert [n for n, v in listed.items() if v["Leader"]] == ["n1"] and all(v["Connected"] for v in listed.values()), listed
        assert all(v["SilentMs"] < 5000 for v in listed.values()), "heartbeats are told by the database's clock"
        # Invocations the skewed standbys route are counted in the seconds they happened.
        for s in (n2, n3):
            assert eventually(lambda: f'endpoint="{endpoint}"' in scrape(s), 10)
            for _ in range(10):
                assert invoke(s, endpoint) == 200
        dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "A"}]
        got = eventually(lambda: (p := recent_statistics(n1.client("cloudwatch"), "Invocations", dims)) and p["Sum"] >= 20 and p, 15)
        assert got and got["Sum"] == 20, got
        # The leader dies: a skewed server takes over within seconds, and writes go on.
        n1.stop(sig=signal.SIGKILL)
        leader, took = leader_of(store, not_="n1")
        print(f"{leader} (clock {'+' if leader == 'n2' else '-'}5 min) led {took:.2f}s after the leader was killed")
        assert took < 10
        survivor = n2 if leader == "n2" else n3
        assert eventually(lambda: answers(survivor), 15)
        create_echo_model(survivor.sm(), unique("after"))
        assert wait_status(survivor.sm(), endpoint, timeout=60)["EndpointStatus"] == "InService"
        # Its instances ended with the leader; the standby forwards to the new leader, which
        # started new ones, and routes itself once they are published.
        assert all(invoke(s, endpoint) == 200 for s in (n2, n3) for _ in range(5))
    finally:
        for s in servers:
            s.stop()


def test_a_standby_refuses_what_is_not_http_and_goes_on(tmp_path, store):
    n1 = node(tmp_path, "n1", store).start()
    n2 = node(tmp_path, "n2", store).start()
    try:
        leader_of(store)
        assert eventually(lambda: answers(n2), 15), "the standby forwards once it knows the leader"
        host, port = n2.url.removeprefix("http://").split(":")
        for raw in (
            b"\x16\x03\x01garbage\r\n\r\n",
            b"POST /endpoints/x/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        ):
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.sendall(raw)
                answer = conn.recv(4096)
                assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), (raw[:40], answer[:200])
        assert n2.sm().list_endpoints()["Endpoints"] == [], "the standby still answers (through the leader)"
    finally:
        n1.stop()
        n2.stop()


def test_a_leader_whose_session_is_cut_is_deposed_and_stands_by(tmp_path, postgres, store):
    admin, _ = postgres
    n1 = node(tmp_path, "n1", store).start()
    n2 = node(tmp_path, "n2", store).start()
    try:
        assert leader_of(store)[0] == "n1"
        endpoint = deploy(n1.sm(), ["A"])
        # As a cut network would: PostgreSQL ends the leader's election session (its lock goes).
        database = store.rsplit("/", 1)[1]
        ended = subprocess.run(
            ["psql", admin, "-Atc", f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}' AND application_name = 'berth-election/n1'"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        assert ended == "1"
        # The standby leads; the old leader, reconnected, finds itself deposed: it stops its
        # endpoints and stands by again, answering through the new leader.
        assert leader_of(store, not_="n1")[0] == "n2"
        assert eventually(lambda: "this one stopped its endpoints and stands by again" in n1.log_text(), 60), n1.log_text()[-2000:]
        assert n1.proc.poll() is None
        assert wait_status(n2.sm(), endpoint, timeout=60)["EndpointStatus"] == "InService"
        assert eventually(lambda: invoke(n2, endpoint) == 200, 30)
        assert eventually(lambda: answers(n1) and invoke(n1, endpoint) == 200, 30)
        listed = nodes(store)
        assert listed["n1"]["Connected"] and not listed["n1"]["Leader"] and listed["n2"]["Leader"], listed
    finally:
        for s in (n1, n2):
            s.stop()


class Writer(threading.Thread):
    """A client that creates models through the servers in turn until told to stop, keeping the
    names whose creation was acknowledged (answered 200)."""

    def __init__(self, servers):
        super().__init__(daemon=True)
        self.servers, self.acknowledged, self.refused, self.stop = servers, [], 0, threading.Event()

    def run(self):
        turn = 0
        while not self.stop.is_set():
            server = self.servers[turn % len(self.servers)]
            turn += 1
            name = unique("durable")
            try:
                create_echo_model(server.client("sagemaker", connect_timeout=2, read_timeout=15), name)
                self.acknowledged.append(name)
            except Exception:
                self.refused += 1
                time.sleep(0.05)


def lost(writer, server):
    sm = server.sm()
    missing = []
    for name in writer.acknowledged:
        try:
            sm.describe_model(ModelName=name)
        except Exception:
            missing.append(name)
    return missing


def test_twenty_leader_kills_under_a_writing_client_lose_no_acknowledged_write(tmp_path, store):
    servers = {name: node(tmp_path, name, store).start() for name in ("n1", "n2", "n3")}
    writer = Writer(list(servers.values()))
    writer.start()
    try:
        for _ in range(20):
            leader, _ = leader_of(store)
            servers[leader].stop(sig=signal.SIGKILL)
            leader_of(store, not_=leader)
            servers[leader].start()
            time.sleep(0.3)
        writer.stop.set()
        writer.join(timeout=30)
        survivor = next(s for s in servers.values() if s.proc.poll() is None)
        assert eventually(lambda: answers(survivor), 15)
        print(f"{len(writer.acknowledged)} writes acknowledged, {writer.refused} refused, across 20 leader kills")
        assert len(writer.acknowledged) >= 20, "the client got writes through"
        assert lost(writer, survivor) == []
    finally:
        writer.stop.set()
        for s in servers.values():
            s.stop()


def test_postgresql_restarted_under_load_loses_nothing_and_the_servers_recover_by_themselves(tmp_path, postgres, store):
    n1 = node(tmp_path, "n1", store).start()
    n2 = node(tmp_path, "n2", store).start()
    try:
        endpoint = deploy(n1.sm(), ["A"])
        writer = Writer([n1, n2])
        writer.start()
        time.sleep(1)
        postgres_ctl(postgres, "halt")
        try:
            # Invocations go on over the routes the leader has, through either server.
            leader = n1 if leader_of(store, timeout=1)[0] == "n1" else n2
        except Exception:
            leader = n1
        served = sum(invoke(s, endpoint) == 200 for s in (n1, n2) for _ in range(5))
        time.sleep(2)
        postgres_ctl(postgres, "resume")
        # Both servers come back by themselves: one leads, the other stands by, and writes go
        # through again.
        assert eventually(lambda: all(n["Connected"] for n in nodes(store).values()), 30), nodes(store)
        before = len(writer.acknowledged)
        assert eventually(lambda: len(writer.acknowledged) > before + 3, 30), "writes resumed"
        writer.stop.set()
        writer.join(timeout=30)
        assert n1.proc.poll() is None and n2.proc.poll() is None
        print(f"{served}/10 invocations served while PostgreSQL was down (leader {leader.url}); {len(writer.acknowledged)} writes acknowledged")
        assert served == 10
        assert eventually(lambda: answers(n1), 15)
        assert lost(writer, n1) == []
        assert eventually(lambda: wait_status(n1.sm(), endpoint, timeout=60)["EndpointStatus"] == "InService" and invoke(n2, endpoint) == 200, 60)
    finally:
        for s in (n1, n2):
            s.stop()


def test_a_new_leader_adopts_a_dead_leaders_containers_and_no_invocation_fails(tmp_path, store):
    sys.path.insert(0, str(ROOT / "tests" / "containers"))
    from build_image import build

    image = build("123456789012.dkr.ecr.us-east-1.amazonaws.com/echo-model:1")

    def containers(endpoint):
        out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label=berth.endpoint={endpoint}"], check=True, capture_output=True, text=True)
        return set(out.stdout.split())

    servers = [node(tmp_path, name, store).start() for name in ("n1", "n2", "n3")]
    n1, n2, n3 = servers
    stop = threading.Event()
    results = {"ok": 0, "failed": []}

    def traffic(server):
        runtime = server.runtime()
        while not stop.is_set():
            try:
                runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x", ContentType="text/plain")
                results["ok"] += 1
            except Exception as e:  # noqa: BLE001 — every failure is counted and shown
                results["failed"].append(f"{server.url}: {e}")
            time.sleep(0.01)

    try:
        assert leader_of(store)[0] == "n1"
        sm = n1.sm()
        endpoint = unique("imgcluster")
        data = tmp_path / "model"
        data.mkdir()
        (data / "model.txt").write_text("files")
        sm.create_model(ModelName=endpoint, ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                        PrimaryContainer={"Image": image, "ModelDataUrl": f"file://{data}", "Environment": {"ECHO_NAME": endpoint}})
        sm.create_endpoint_config(EndpointConfigName=endpoint, ProductionVariants=[variant("V", endpoint, count=2)])
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
        assert wait_status(sm, endpoint, timeout=120)["EndpointStatus"] == "InService"
        before = containers(endpoint)
        assert len(before) == 2
        for name, s in (("n2", n2), ("n3", n3)):
            assert eventually(lambda: f'berth_variant_weight{{node="{name}",endpoint="{endpoint}"' in scrape(s), 10), "the standbys route it"
        threads = [threading.Thread(target=traffic, args=(s,), daemon=True) for s in (n2, n3)]
        for t in threads:
            t.start()
        time.sleep(1)
        n1.stop(sig=signal.SIGKILL)
        leader, took = leader_of(store, not_="n1")
        new_leader = n2 if leader == "n2" else n3
        assert wait_status(new_leader.sm(), endpoint, want="InService", timeout=120)["EndpointStatus"] == "InService"
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        print(f"{leader} led {took:.2f}s after the leader was killed; {results['ok']} invocations through n2 and n3, {len(results['failed'])} failed")
        assert results["failed"] == [], results["failed"][:5]
        assert results["ok"] > 50
        assert containers(endpoint) == before, "the new leader serves with the dead leader's containers, not new ones"
        assert any("adopting the running container" in line for line in new_leader.log_text().splitlines())
        assert invoke(new_leader, endpoint) == 200
        # Servers that stop leave none behind.
        for s in (n2, n3):
            assert s.stop() == 0
        assert eventually(lambda: containers(endpoint) == set(), 60), containers(endpoint)
    finally:
        stop.set()
        for s in servers:
            s.stop()


def test_a_leader_killed_during_a_canary_leaves_it_to_the_next_to_run_again(tmp_path, store):
    n1 = node(tmp_path, "n1", store).start()
    n2 = node(tmp_path, "n2", store).start()
    try:
        assert leader_of(store)[0] == "n1"
        sm = n2.sm()
        endpoint = deploy(sm, ["V"])
        new = unique("canary")
        create_echo_model(sm, new)
        sm.create_endpoint_config(EndpointConfigName=new, ProductionVariants=[variant("V", new)])
        config = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 8},
                "TerminationWaitInSeconds": 0,
            }
        }
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=new, DeploymentConfig=config)

        def baking_canary():
            pending = sm.describe_endpoint(EndpointName=endpoint).get("PendingDeploymentSummary")
            return pending and pending["ProductionVariants"][0]["VariantStatus"][0]["Status"] == "ActivatingTraffic"

        assert eventually(baking_canary, 60), sm.describe_endpoint(EndpointName=endpoint)
        # Both fleets die with the leader: the next leader brings the current variants back and
        # runs the guarded deployment again from its first step (its canary bakes again), and
        # the endpoint ends on the new config.
        n1.stop(sig=signal.SIGKILL)
        assert leader_of(store, not_="n1")[0] == "n2"
        assert eventually(lambda: answers(n2), 15)
        def events():
            with urllib.request.urlopen(f"{n2.url}/berth/v1/events", timeout=10) as r:
                return r.read().decode()

        assert eventually(lambda: "starts again from its first step" in events(), 60), events()
        assert eventually(baking_canary, 60), sm.describe_endpoint(EndpointName=endpoint)
        done = eventually(lambda: (d := sm.describe_endpoint(EndpointName=endpoint))["EndpointStatus"] in ("InService", "Failed") and d, 120)
        assert done and done["EndpointStatus"] == "InService", done
        assert done["EndpointConfigName"] == new
        answer = n2.runtime().invoke_endpoint(EndpointName=endpoint, Body=b"x", ContentType="text/plain")
        assert json.loads(answer["Body"].read())["name"] == new
    finally:
        for s in (n1, n2):
            s.stop()
