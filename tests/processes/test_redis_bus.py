"""The engine line over a real Redis (server/link/redis_bus.py): engines answer the commands of
several web processes, refusals keep their words, messages reach every web process, runs are
found where they are held, the shared run's lease moves only when its holder is gone, and a
Redis restart is told in words and then forgotten. Engines here are plain Python (no torch):
an echo handler in this process, or tests/support/redis_echo_engine.py in a process of its own."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from server.errors import AccessError, EngineUnavailable, NotFound, UserError
from server.link.names import SHARED
from server.engine.redis_endpoint import EngineEndpoint, Lease
from server.link.redis_bus import PREFIX, describe_url, engine_key, run_key
from server.link.redis_client import EngineClient

REPO = Path(__file__).resolve().parents[2]


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def echo_handler(engine_id: str):
    def handle(name: str, args: dict):
        if name == "echo":
            return {"engine": engine_id, "args": args}
        if name == "reverse":
            return {"data": args["data"][::-1]}
        if name == "control":
            raise AccessError("only the run's owner may control it; you are watching")
        if name == "runs:get":
            raise NotFound(f"no recorded run {args.get('id')!r}")
        if name == "slow":
            time.sleep(args["s"])
            return {"slept": args["s"]}
        raise RuntimeError("a bug in the engine")
    return handle


@pytest.fixture
def bus(redis_url):
    """Makes endpoints, clients and leases on the test Redis and closes every one after."""
    made = []

    class Bus:
        url = redis_url

        def engine(self, engine_id, *, serve=True, **options):
            endpoint = EngineEndpoint(redis_url, engine_id, **options)
            made.append(endpoint)
            if serve:
                endpoint.serve(echo_handler(engine_id))
            return endpoint

        def web(self, web_id, **options):
            client = EngineClient(redis_url, web_id, **options)
            made.append(client)
            assert client.subscribed.wait(10), "the web client never subscribed"
            return client

        def lease(self, holder, **options):
            lease = Lease(redis_url, SHARED, holder, **options)
            made.append(lease)
            return lease

    yield Bus()
    # Each close waits out its readers' one-second blocking reads: close them side by side.
    with ThreadPoolExecutor(max(1, len(made))) as pool:
        list(pool.map(lambda thing: thing.close(), made))


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_one_engine_answers_two_web_processes_each_its_own_answers(bus):
    engine = bus.engine("e1")
    engine.hold("p-1")
    alice, bob = bus.web("alice"), bus.web("bob")

    def ask(client, i):
        return client.request("echo", {"i": i, "who": client.web_id}, run="p-1")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job: ask(*job), [(c, i) for i in range(40) for c in (alice, bob)]))
    expected = [{"engine": "e1", "args": {"i": i, "who": c.web_id, "run": "p-1"}} for i in range(40) for c in (alice, bob)]
    assert answers == expected
    # Bytes go both ways untouched, a megabyte of them too.
    data = os.urandom(1 << 20)
    assert alice.request("reverse", {"data": data}, run="p-1") == {"data": data[::-1]}


def test_refusals_keep_their_words_and_status(bus):
    engine = bus.engine("e1")
    engine.hold("p-1")
    web = bus.web("web")
    with pytest.raises(AccessError, match="only the run's owner may control it; you are watching") as refused:
        web.request("control", run="p-1")
    assert refused.value.status == 403
    with pytest.raises(NotFound, match="no recorded run 'r-9'") as missing:
        web.request("runs:get", {"id": "r-9"}, run="p-1")
    assert missing.value.status == 404
    with pytest.raises(UserError, match="internal error in the training engine") as bug:
        web.request("explode", run="p-1")
    assert bug.value.status == 500
    # A value the line cannot carry is refused before anything is sent.
    with pytest.raises(UserError, match="cannot be used"):
        web.request("echo", {"n": 1 << 70}, run="p-1")
    # And the engine still answers after all of that.
    assert web.request("echo", {"n": 1}, run="p-1")["args"]["n"] == 1


def test_messages_reach_every_web_process(bus):
    engine = bus.engine("e1")
    heard = {"alice": [], "bob": []}
    alice = bus.web("alice", on_message=heard["alice"].append)
    bob = bus.web("bob", on_message=heard["bob"].append)
    frame = os.urandom(1 << 20)
    engine.publish({"topic": "state", "run": "shared", "payload": {"state": "running", "step": 3}})
    engine.publish({"topic": "metrics", "run": "p-7", "payload": {"loss": [0.5, 0.25]}})
    engine.publish({"topic": "frame", "run": "p-7", "payload": {"stream": "weights", "data": frame}})
    for name in heard:
        assert wait_for(lambda: len(heard[name]) == 3), f"{name} heard {heard[name]}"
        assert heard[name] == [
            {"kind": "message", "topic": "state", "run": "shared", "payload": {"state": "running", "step": 3}},
            {"kind": "message", "topic": "metrics", "run": "p-7", "payload": {"loss": [0.5, 0.25]}},
            {"kind": "message", "topic": "frame", "run": "p-7", "payload": {"stream": "weights", "data": frame}},
        ]
    assert alice.threads and bob.threads


def test_the_newest_frame_of_a_stream_always_arrives(bus):
    engine = bus.engine("e1")
    heard = []
    bus.web("web", on_message=heard.append)
    for step in range(300):
        engine.publish({"topic": "frame", "run": "shared", "payload": {"stream": "weights", "step": step,
                                                                      "data": bytes(20_000)}})
    assert wait_for(lambda: heard and heard[-1]["payload"]["step"] == 299), [m["payload"]["step"] for m in heard[-3:]]
    steps = [m["payload"]["step"] for m in heard]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # in order, none twice


def test_every_frame_of_a_chain_arrives_in_order(bus):
    """A delta builds on the one before: unlike whole frames, none may be skipped."""
    engine = bus.engine("e1")
    heard = []
    bus.web("web", on_message=heard.append)
    for step in range(200):
        engine.publish({"topic": "frame", "run": "shared",
                        "payload": {"stream": "weights-delta", "kind": "delta", "step": step, "data": bytes(5_000)}})
    assert wait_for(lambda: len(heard) == 200)
    assert [m["payload"]["step"] for m in heard] == list(range(200))


def test_a_redis_url_is_shown_without_its_password():
    assert describe_url("redis://:s3cret@10.0.0.10:6379/0") == "redis://10.0.0.10:6379/0"
    assert describe_url("redis://app:s3cret@10.0.0.10/2") == "redis://app@10.0.0.10/2"
    assert describe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_runs_are_found_where_they_are_held_and_new_ones_go_to_the_least_loaded_engine(bus, raw):
    busy, idle = bus.engine("busy"), bus.engine("idle")
    assert busy.hold("p-a") and busy.hold("p-b")
    assert not idle.hold("p-a"), "a run held by an alive engine cannot be held by another"
    web = bus.web("web")
    assert web.engine_for("p-a") == "busy"
    assert web.engine_for("p-new") is None
    loads = {info["engine"]: info for info in web.engines()}
    assert set(loads) == {"busy", "idle"}
    assert (loads["busy"]["runs"], sorted(loads["busy"]["held"]), loads["idle"]["runs"]) == (2, ["p-a", "p-b"], 0)
    assert web.pick_engine() == "idle"
    assert web.request("echo", run="p-a")["engine"] == "busy"
    assert web.request("echo", run="p-new")["engine"] == "idle"  # nobody holds it: the least loaded
    # Letting a run go: it is nobody's, and the other engine may take it.
    busy.release("p-b")
    assert web.engine_for("p-b") is None and idle.hold("p-b")
    assert web.engine_for("p-b") == "idle"
    # An engine that leaves takes its runs with it.
    busy.close()
    assert [info["engine"] for info in web.engines()] == ["idle"]
    assert web.engine_for("p-a") is None
    # Every key the bus wrote is under the one prefix.
    assert all(key.startswith(PREFIX.encode()) for key in raw.keys("*"))


def test_the_shared_run_is_served_only_by_its_lease_holder(bus):
    web = bus.web("web")
    bus.engine("e1")
    with pytest.raises(EngineUnavailable, match="no training engine holds the shared run right now"):
        web.request("echo")
    holder = bus.engine("e2")
    lease = holder.lease(SHARED)
    assert lease.wait_held(5)
    assert web.request("echo")["engine"] == "e2"
    assert web.engine_for(SHARED) == "e2"
    # Its load counts the shared run (told when the lease is taken, not at the next heartbeat).
    assert wait_for(lambda: {info["engine"]: info["runs"] for info in web.engines()} == {"e1": 0, "e2": 1}, 2)


def test_no_engine_at_all_is_said_in_words(bus):
    web = bus.web("web")
    with pytest.raises(EngineUnavailable, match=r"no training engine is running \(start one with --role engine\)"):
        web.request("echo", run="p-1")


def test_an_engine_that_does_not_answer_in_time_is_said_in_words(bus):
    engine = bus.engine("e1")
    engine.hold("p-1")
    web = bus.web("web")
    with pytest.raises(EngineUnavailable, match=r"the training engine \(e1\) did not answer slow within 0.3 s"):
        web.request("slow", {"s": 1.0}, run="p-1", timeout=0.3)
    assert web.request("echo", run="p-1")["engine"] == "e1"  # its late answer confuses nobody


def test_an_engine_id_alive_elsewhere_is_refused(bus):
    bus.engine("e1")
    with pytest.raises(UserError, match="an engine with the id 'e1' is already running on this Redis"):
        EngineEndpoint(bus.url, "e1", claim_timeout_s=0.5)


def test_a_lease_moves_to_the_waiter_within_its_ttl_once_the_holder_stops_renewing(bus, raw):
    events = []
    first = bus.lease("engine-a", ttl_s=1.0, poll_s=0.1, on_lost=lambda why: events.append(("a lost", why)))
    second = bus.lease("engine-b", ttl_s=1.0, poll_s=0.1, on_acquired=lambda: events.append(("b acquired",)))
    first.start()
    assert first.wait_held(5)
    second.start()
    # While the holder renews, the waiter never gets it (four ttls of renewals).
    time.sleep(4.0)
    assert (first.held, second.held, events) == (True, False, [])
    assert raw.get(run_key(SHARED)) == b"engine-a"
    # The holder stops renewing (a process that died: its thread is gone, the key stays).
    stopped = time.monotonic()
    first.close(release=False)
    assert second.wait_held(1.0 + 0.1 + 1.0), "the waiter did not take the lease within ttl + poll (+1 s)"
    taken_after = time.monotonic() - stopped
    assert taken_after <= 2.1
    assert raw.get(run_key(SHARED)) == b"engine-b" and events == [("b acquired",)]


def test_a_stale_holder_never_renews_nor_deletes_someone_elses_lease(bus, raw):
    stale = Lease(raw, SHARED, "engine-a", ttl_s=0.3)
    assert stale.try_acquire()
    time.sleep(0.4)  # it lapsed: the holder was stuck longer than its ttl
    fresh = Lease(raw, SHARED, "engine-b", ttl_s=10)
    assert fresh.try_acquire()
    assert not stale.renew() and not stale.release()
    assert raw.get(run_key(SHARED)) == b"engine-b" and raw.pttl(run_key(SHARED)) > 9000
    # The holder's own thread says it lost the lease, and to whom, and stops renewing it.
    lost = []
    running = bus.lease("engine-a", ttl_s=1.0, poll_s=0.1, on_lost=lost.append)
    running._held.set()  # as if it had held it before engine-b took over
    running._renewed_at = time.monotonic()
    running.start()
    assert wait_for(lambda: lost, 3)
    assert lost == ["another holder (engine-b) has the lease on shared"]
    time.sleep(1.5)
    assert raw.get(run_key(SHARED)) == b"engine-b" and not running.held
    # Once the other holder lets it go, it is a waiter like any other: it takes the lease again.
    assert fresh.release()
    assert running.wait_held(2) and raw.get(run_key(SHARED)) == b"engine-a"


class EngineProcess:
    """tests/support/redis_echo_engine.py in a process of its own; what it prints is kept."""

    def __init__(self, url: str, engine_id: str, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.support.redis_echo_engine", url, engine_id, *args],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def printed(self, line: str, timeout: float = 60.0) -> bool:
        return bool(wait_for(lambda: line in self.lines, timeout))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self._reader.join(5)
        self.process.stdout.close()


def refusal_of(web: EngineClient, run: str):
    try:
        web.request("echo", run=run, timeout=10)
    except EngineUnavailable as err:
        return str(err)
    return None


@pytest.mark.slow
def test_a_killed_engine_process_hands_the_shared_run_to_another_within_15_s(bus):
    """The real numbers: ttl 10 s, a waiter polling every 1.5 s, two engine processes."""
    web = bus.web("web")
    first = EngineProcess(bus.url, "engine-1", "--lease", SHARED, "--hold", "p-1")
    second = None
    try:
        assert first.printed("ready") and first.printed("acquired shared")
        second = EngineProcess(bus.url, "engine-2", "--lease", SHARED)
        assert second.printed("ready")
        assert web.request("echo")["engine"] == "engine-1"
        assert web.request("echo", run="p-1")["engine"] == "engine-1"
        first.kill()
        killed = time.monotonic()
        # A request sent to it hears so once its registration lapses (5 s), not at its timeout;
        # from then until its lease lapses (10 s), requests say where the run stands, in words.
        assert refusal_of(web, SHARED) == "the training engine (engine-1) stopped while handling echo; try again in a moment"
        assert refusal_of(web, SHARED) == (
            "the engine that held the shared run (engine-1) stopped; another engine takes the run over within 15 s")
        assert refusal_of(web, "p-1") == "the engine that held run p-1 (engine-1) stopped; try again in 10 s"
        assert second.printed("acquired shared", timeout=20)
        assert time.monotonic() - killed < 15.0
        assert web.request("echo")["engine"] == "engine-2"
        assert [info["engine"] for info in web.engines()] == ["engine-2"]
        # The killed engine's private run record expired too: the run goes to an alive engine.
        assert wait_for(lambda: refusal_of(web, "p-1") is None, 12)
        assert web.request("echo", run="p-1")["engine"] == "engine-2"
    finally:
        for engine in (first, second):
            if engine is not None:
                engine.stop()


def test_a_redis_restart_is_told_in_words_and_everything_works_again(bus, redis_server):
    statuses = {"web": [], "engine": []}
    heard = []
    engine = bus.engine("e1", on_status=statuses["engine"].append)
    holder = engine.lease(SHARED)
    assert holder.wait_held(5)
    engine.hold("p-1")
    waiter_acquired = []
    waiter = bus.engine("e2").lease(SHARED, on_acquired=lambda: waiter_acquired.append(True))
    web = bus.web("web", on_status=statuses["web"].append, on_message=heard.append)
    assert web.request("echo")["engine"] == "e1"
    threads = web.threads + engine.threads

    # A request waiting for its answer when Redis goes: told at once, not at its timeout.
    waiting = ThreadPoolExecutor(1).submit(web.request, "slow", {"s": 2.0}, run="p-1", timeout=25)
    time.sleep(0.3)
    redis_server.stop(remove=False)
    with pytest.raises(EngineUnavailable, match=f"Redis is unreachable at {redis_server.url}"):
        waiting.result(10)
    with pytest.raises(EngineUnavailable, match=f"Redis is unreachable at {redis_server.url}"):
        web.request("echo", timeout=5)
    assert wait_for(lambda: statuses["web"] and statuses["engine"], 10)
    assert statuses["web"][0]["status"] == "down"
    assert statuses["web"][0]["reason"].startswith(f"Redis is unreachable at {redis_server.url} (")
    assert statuses["web"][0]["reason"].endswith("; retrying")
    assert statuses["engine"][0]["status"] == "down"
    time.sleep(1.0)
    redis_server.start()  # empty: nothing was saved

    assert wait_for(lambda: statuses["web"][-1]["status"] == "up", 10), statuses["web"]
    assert statuses["web"][-1] == {"status": "up", "reason": f"Redis is reachable again at {redis_server.url}"}
    assert wait_for(lambda: statuses["engine"][-1]["status"] == "up", 10), statuses["engine"]
    # The engine registers again, takes its lease and runs back; requests work again.
    assert wait_for(lambda: web.engine_for(SHARED) == "e1", 10)
    assert wait_for(lambda: web.engine_for("p-1") == "e1", 10)
    assert web.request("echo")["engine"] == "e1"
    assert web.request("echo", run="p-1")["engine"] == "e1"
    assert wait_for(web.subscribed.is_set, 10)
    engine.publish({"topic": "state", "run": SHARED, "payload": {"after": "restart"}})
    assert wait_for(lambda: heard and heard[-1]["payload"] == {"after": "restart"}, 10)
    engine.publish({"topic": "state", "run": "p-1", "payload": {"after": "restart"}})
    assert wait_for(lambda: heard[-1]["run"] == "p-1", 10)
    # The shared run did not move: the waiter held off while the holder took its lease back.
    time.sleep(2.0)
    assert holder.held and not waiter.held and waiter_acquired == []
    assert all(thread.is_alive() for thread in threads), [t.name for t in threads if not t.is_alive()]
    # Told once each way, no flapping.
    assert [s["status"] for s in statuses["web"]] == ["down", "up"]


def test_a_web_process_started_while_redis_is_away_works_once_it_is_back(bus, redis_server):
    redis_server.stop(remove=False)
    statuses = []
    web = EngineClient(redis_server.url, "early", on_status=statuses.append)
    try:
        with pytest.raises(EngineUnavailable, match="Redis is unreachable at"):
            web.request("echo", run="p-1", timeout=2)
        assert wait_for(lambda: statuses, 10) and statuses[0]["status"] == "down"
        redis_server.start()
        engine = bus.engine("e1")
        engine.hold("p-1")
        assert wait_for(lambda: statuses[-1]["status"] == "up", 10)
        assert web.request("echo", run="p-1")["engine"] == "e1"
    finally:
        web.close()


def test_an_engine_key_that_lapsed_is_taken_back_not_lost(bus, raw):
    """A heartbeat that finds its registration gone (Redis restarted, or it lapsed) writes it again."""
    engine = bus.engine("e1")
    engine.hold("p-1")
    raw.delete(engine_key("e1"), run_key("p-1"))
    web = bus.web("web")
    assert wait_for(lambda: raw.exists(engine_key("e1")), 5)
    assert wait_for(lambda: web.engine_for("p-1") == "e1", 6)


def test_the_test_redis_restarts_on_its_port_empty_and_stops_for_good(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("nnlp:probe", "1")
        pid = redis_server.process.pid
        redis_server.restart()
        assert redis_server.process.pid != pid and redis_server.url.endswith(f":{redis_server.port}/0")
        assert client.get("nnlp:probe") is None  # nothing was saved
        client.set("nnlp:probe", "2")
        assert client.get("nnlp:probe") == b"2"
    finally:
        client.close()
    process = redis_server.process
    redis_server.stop()
    assert process.poll() is not None and not redis_server.folder.exists()
    assert not redis_server._answers_ping()
