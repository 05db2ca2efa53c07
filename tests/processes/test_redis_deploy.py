"""More than one machine, for real: redis-server and PostgreSQL from Debian's packages, engine
processes (`--role engine`) and web processes (`--role web`) that find each other only through
Redis and record into one PostgreSQL database, viewers on different web processes behind one
address (a TCP proxy, as nginx would be)."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from tests.support.helpers import REPO, ServerProcess, socketio_client, wait_for
from tests.support.redis_server import RedisServer
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

BLANK = {"pixels": [0.0] * 784}
RECORD = ("state", "metrics", "epoch", "engine", "run:closed", "run")


class EngineProcess:
    """`python -m server --role engine` until stopped; ready once it says it serves."""

    def __init__(self, data_dir: Path, redis_url: str, database: str, engine_id: str):
        self.engine_id = engine_id
        self.log_path = data_dir.parent / f"engine-{engine_id}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--role", "engine", "--redis", redis_url, "--database", database,
             "--data-dir", str(data_dir), "--engine-id", engine_id],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        with open(self.log_path, "w") as log:
            for line in self.process.stderr:
                log.write(line)
                log.flush()
                self.lines.append(line)
                if "serves on" in line:
                    self.ready.set()

    def wait_ready(self, timeout=180):
        if not self.ready.wait(timeout):
            raise AssertionError(f"engine {self.engine_id} did not start: {''.join(self.lines[-30:])}")

    def kill(self):
        self.process.kill()
        self.process.wait(10)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(5)
        self.process.stderr.close()


@pytest.fixture
def cluster(tmp_path, postgres_url):
    """Redis, one PostgreSQL database, engines and web processes made on demand, all stopped after."""
    redis_server = RedisServer().start()
    made = {"engines": [], "webs": [], "proxies": []}
    data = tmp_path / "data"
    data.mkdir()

    class Cluster:
        redis = redis_server
        database = postgres_url

        def engine(self, engine_id):
            engine = EngineProcess(data, redis_server.url, postgres_url, engine_id)
            made["engines"].append(engine)
            return engine

        def web(self):
            web = ServerProcess(data, "--role", "web", "--redis", redis_server.url, "--database", postgres_url)
            made["webs"].append(web)
            return web

        def proxy(self, webs):
            proxy = TcpProxy([web.port for web in webs])
            made["proxies"].append(proxy)
            return proxy

    try:
        yield Cluster()
    finally:
        for proxy in made["proxies"]:
            proxy.close()
        for web in made["webs"]:
            web.stop()
        for engine in made["engines"]:
            engine.stop()
        redis_server.stop()


def viewer(url, **auth):
    return socketio_client(url, record=RECORD, auth=auth)


def test_two_web_processes_one_engine_a_classroom_across_them(cluster):
    engine = cluster.engine("e1")
    engine.wait_ready()
    web1, web2 = cluster.web(), cluster.web()
    teacher, student = viewer(web1.url), viewer(web2.url, viewer="student-0123456789ab")
    try:
        # the teacher controls on web 1; the student on web 2 sees it
        assert teacher.call("train:step", {"batches": 7}, timeout=30)["ok"]
        wait_for(lambda: any(s["step"] == 7 for s in student.received["state"]), what="web 2 hears web 1's run")
        answer = student.call("predict", BLANK, timeout=30)
        assert answer["ok"] and answer["step"] == 7

        # a private run on web 2: the shared run untouched, web 1's viewer hears nothing of it
        made = student.call("run:create", {}, timeout=60)
        assert made["ok"], made
        assert student.call("train:step", {"batches": 3}, timeout=30)["ok"]
        wait_for(lambda: any(s["step"] == 3 and s["run_id"] == made["state"]["run_id"]
                             for s in student.received["state"]), what="the private run's state")
        time.sleep(1.0)
        assert teacher.call("run:watch", {"run": "shared"}, timeout=30)["state"]["step"] == 7
        assert all(s["step"] in (0, 7) for s in teacher.received["state"])

        # someone else's run, watched read-only from the other web process
        watcher = viewer(web1.url, viewer="watcher-0123456789ab", run=made["run"])
        wait_for(lambda: watcher.received["run"], what="the watcher is on the student's run")
        assert watcher.received["run"][0]["owner"] == "someone"
        refused = watcher.call("train:start", {}, timeout=30)
        assert not refused["ok"] and "someone else's" in refused["error"]
        watcher.disconnect()
    finally:
        teacher.disconnect()
        student.disconnect()


def test_a_web_process_killed_costs_its_viewers_a_reconnect_never_the_run(cluster):
    engine = cluster.engine("e1")
    engine.wait_ready()
    web1, web2 = cluster.web(), cluster.web()
    proxy = cluster.proxy([web1, web2])  # one address, as nginx would give
    page = socketio_client(proxy.url, record=RECORD, reconnection=True)
    try:
        assert page.call("train:step", {"batches": 5}, timeout=30)["ok"]
        wait_for(lambda: any(s["step"] == 5 for s in page.received["state"]), what="5 steps")
        before = len(page.received["state"])
        web1.process.kill()  # the process the page's connection went to
        web1.process.wait(10)
        # the page reconnects to the same address, reaches web 2, and gets the run as it was
        wait_for(lambda: len(page.received["state"]) > before and page.connected, timeout=30,
                 what="the page reconnected and resynced")
        assert page.received["state"][-1]["step"] == 5
        assert page.call("train:step", {"batches": 2}, timeout=30)["ok"]
        wait_for(lambda: any(s["step"] == 7 for s in page.received["state"]), what="it controls the run again")
    finally:
        page.disconnect()
        # The client library leaves the socket of the connection that broke for the garbage
        # collector (its warning is the client's, not the server's): collected here, quietly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def test_the_shared_run_is_taken_over_when_its_engine_dies_and_redis_may_restart(cluster):
    first = cluster.engine("e1")
    first.wait_ready()
    web = cluster.web()
    second = cluster.engine("e2")
    second.wait_ready()
    page = viewer(web.url)
    try:
        assert page.call("train:step", {"batches": 12}, timeout=30)["ok"]
        wait_for(lambda: any(s["step"] == 12 and s["status"] == "paused" for s in page.received["state"]),
                 what="12 recorded steps")
        time.sleep(1.0)  # the pause is recorded with the weights

        # Redis goes away for a few seconds and comes back empty: the page is told, in words, and
        # everything works again after
        cluster.redis.stop(remove=False)
        wait_for(lambda: any(e["status"] == "down" and "Redis" in (e.get("reason") or "")
                             for e in page.received["engine"]), timeout=15, what="the page is told Redis went away")
        cluster.redis.start()
        wait_for(lambda: time.sleep(0.2) or page.call("run:watch", {"run": "shared"}, timeout=30).get("ok"),
                 timeout=40, what="requests work again after Redis restarted")
        watched = page.call("run:watch", {"run": "shared"}, timeout=30)
        assert watched.get("ok") and watched["state"]["step"] == 12, watched
        assert page.call("predict", BLANK, timeout=30)["step"] == 12

        holder = next(e for e in (first, second) if any("holds the shared run now" in line for line in e.lines))
        other = second if holder is first else first
        killed_at = time.monotonic()
        holder.kill()
        wait_for(lambda: any("has the shared run's lease" in line for line in other.lines), timeout=20,
                 what="the other engine takes the shared run over")
        took = time.monotonic() - killed_at
        assert took <= 15.0, took  # the lease: 10 s after its holder's last renewal, polled every 1.5 s
        wait_for(lambda: any("took it over" in (s.get("notice") or "") for s in page.received["state"]),
                 timeout=30, what="the page is told and resyncs")
        state = page.received["state"][-1]
        assert state["step"] == 12 and state["status"] == "paused"
        assert any(e["status"] == "down" for e in page.received["engine"])
        stepped = page.call("train:step", {"batches": 1}, timeout=30)
        assert stepped["ok"], stepped
        wait_for(lambda: any(s["step"] == 13 for s in page.received["state"]), what="it trains on")
    finally:
        page.disconnect()
