"""Redis as a boundary (issue 23, item 6), with real processes: a real redis-server and
`python -m server --redis`. Whoever reaches Redis without the deployment's secret
(PLAYGROUND_REDIS_SECRET) cannot make an engine act, tell the pages anything or pose as an
engine; the same items signed with the secret do work (so it is the signature that decides).
With `--redis` on a fresh SQLite data directory three engines all come up; a killed engine is
started again and /healthz says it is missing meanwhile; the Redis password never shows in ps."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis

from server.link.codec import pack, unpack
from server.link.redis_auth import Signer
from server.link.redis_bus import commands_key, engine_key, engines_key, load_key, messages_channel
from server.link.redis_client import EngineClient
from server.engine.redis_endpoint import EngineEndpoint
from tests.support.helpers import REPO, ServerProcess, descendants, socketio_client, wait_for
from tests.support.redis_server import RedisServer

OPENED: list = []


@pytest.fixture(autouse=True)
def close_redis_clients():
    """Every Redis client a test opens, closed after it (no socket left to the collector)."""
    yield
    while OPENED:
        OPENED.pop().close()


def client_of(url: str, **options) -> redis.Redis:
    client = redis.Redis.from_url(url, **options)
    OPENED.append(client)
    return client


OURS = Signer.of()  # the tests' secret (tests/conftest.py), which the servers they start inherit
NOT_OURS = Signer("someone-else's-secret-0123456789")


def healthz(url) -> dict:
    with urllib.request.urlopen(url + "/healthz", timeout=10) as answer:
        return json.loads(answer.read())


def teacher_of(url):
    return socketio_client(url, record=("state", "engine", "metrics"))


def step_when_served(client, batches: int, timeout: float = 120.0) -> dict:
    """train:step once an engine holds the shared run (the server serves pages before that)."""
    answers = []
    wait_for(lambda: answers.append(client.call("train:step", {"batches": batches}, timeout=60)) or answers[-1]["ok"],
             timeout=timeout, what=f"train:step answered ok (last: {answers[-1] if answers else None})")
    return answers[-1]


def shared_state(client) -> dict:
    return client.call("run:watch", {"run": "shared"}, timeout=30)["state"]


def forged_command(name: str, args: dict, reply_to: str) -> dict:
    return {"kind": "command", "id": 1, "name": name, "args": {"run": "shared", **args}, "reply_to": reply_to,
            "sent": time.time(), "timeout": 30.0}


def test_a_forged_command_or_message_is_dropped_and_changes_nothing(redis_url, tmp_path):
    r = client_of(redis_url)
    with ServerProcess(tmp_path / "data", "--redis", redis_url, "--engines", "1") as server:
        teacher = teacher_of(server.url)
        try:
            step_when_served(teacher, 3)
            wait_for(lambda: shared_state(teacher)["step"] == 3, timeout=60, what="3 steps")
            holder = r.get("nnlp:run:shared").decode()
            reply_to = "nnlp:web:forger:answers"

            # unsigned, and signed with another secret: dropped unread, no answer, no step
            for seal in (lambda data: data, NOT_OURS.seal):
                command = forged_command("train:step", {"batches": 5}, reply_to)
                r.rpush(commands_key(holder), seal(pack(command)))
            time.sleep(3.0)
            assert r.llen(reply_to) == 0
            assert shared_state(teacher)["step"] == 3

            # the same command signed with the deployment's secret is taken: it is the signature
            signed = forged_command("train:step", {"batches": 5}, reply_to)
            r.rpush(commands_key(holder), OURS.seal(pack(signed)))
            wait_for(lambda: r.llen(reply_to) == 1, timeout=30, what="the signed command's answer")
            answer = unpack(OURS.open(r.lpop(reply_to)))
            assert answer["ok"], answer
            wait_for(lambda: shared_state(teacher)["step"] == 8, timeout=60, what="the signed command's 5 steps")

            # that signed command copied off the wire and pushed again is not run twice
            r.rpush(commands_key(holder), OURS.seal(pack(signed)))
            time.sleep(3.0)
            assert r.llen(reply_to) == 0 and shared_state(teacher)["step"] == 8

            # a forged message to every page: nobody hears it; signed, the page does
            fake = {"kind": "message", "topic": "state", "run": "shared",
                    "payload": {**shared_state(teacher), "step": 777_777, "notice": "forged"}}
            for seal in (lambda data: data, NOT_OURS.seal):
                r.publish(messages_channel("shared"), seal(pack(fake)))
            time.sleep(2.0)
            assert not any(s.get("step") == 777_777 for s in teacher.received["state"])
            r.publish(messages_channel("shared"), OURS.seal(pack(fake)))
            wait_for(lambda: any(s.get("step") == 777_777 for s in teacher.received["state"]), timeout=10,
                     what="the signed message reaching the page (so the unsigned ones were dropped for their signature)")

            # a forged Socket.IO queue broadcast ("engine down, go to ...") reaches no page
            queue = {"method": "emit", "event": "engine", "data": [{"status": "down", "reason": "go to evil.example"}],
                     "binary": False, "namespace": "/", "room": None, "skip_sid": None, "callback": None,
                     "host_id": "forger"}
            r.publish("nnlp:socketio", json.dumps(queue))
            time.sleep(2.0)
            assert not any("evil" in str(e) for e in teacher.received["engine"])
            assert "dropped a Redis" in server.log()
        finally:
            teacher.disconnect()


def test_an_engine_that_is_not_signed_or_announces_an_impossible_load_gets_no_run(redis_url):
    r = client_of(redis_url)
    real = EngineEndpoint(redis_url, "real-engine")
    client = EngineClient(redis_url, "web-under-test")
    try:
        real.serve(lambda name, args: {"engine": "real-engine"})

        def pose_as_engine(engine_id: str, load: bytes) -> None:
            r.set(engine_key(engine_id), b"token", px=60_000)
            r.sadd(engines_key(), engine_id)
            r.set(load_key(engine_id), load, px=60_000)

        ok_load = {"runs": 0, "held": [], "pid": 4242, "host": "x", "since": time.time()}
        pose_as_engine("unsigned", pack({"engine": "unsigned", **ok_load}))
        pose_as_engine("other-secret", NOT_OURS.seal(pack({"engine": "other-secret", **ok_load})))
        pose_as_engine("negative", OURS.seal(pack({"engine": "negative", **ok_load, "runs": -1000})))
        pose_as_engine("lies-about-runs", OURS.seal(pack({"engine": "lies-about-runs", **ok_load, "runs": 0,
                                                           "held": ["p-1", "p-2"]})))
        pose_as_engine("someone-elses-load", OURS.seal(pack({"engine": "real-engine", **ok_load})))
        wait_for(lambda: [e["engine"] for e in client.engines()] == ["real-engine"], timeout=10,
                 what="only the real engine counted")
        for _ in range(20):
            assert client.pick_engine() == "real-engine"
        # a well-formed signed load is an engine (so the others were refused for what they said)
        pose_as_engine("honest", OURS.seal(pack({"engine": "honest", **ok_load})))
        assert "honest" in [e["engine"] for e in client.engines()]
    finally:
        client.close()
        real.close()


def test_redis_on_a_fresh_sqlite_data_directory_brings_three_engines_up(redis_url, tmp_path):
    data = tmp_path / "fresh"
    assert not data.exists()
    with ServerProcess(data, "--redis", redis_url, "--engines", "3") as server:
        wait_for(lambda: len(EngineClient_engines(redis_url)) == 3, timeout=120, what="three engines registered")
        assert all(server.engine_pid(i) is not None for i in range(3))
        health = healthz(server.url)
        assert health["status"] == "ok" and health["engines"] == {"expected": 3, "missing": []}, health
        log = server.log()
        assert "database is locked" not in log
        assert (data / "runs.sqlite3").exists()


def EngineClient_engines(redis_url) -> list[dict]:
    client = EngineClient(redis_url, f"probe-{uuid.uuid4().hex[:6]}")
    try:
        return client.engines()
    finally:
        client.close()


def test_a_killed_engine_is_started_again_and_healthz_says_it_is_missing_meanwhile(redis_url, tmp_path):
    with ServerProcess(tmp_path / "data", "--redis", redis_url, "--engines", "2") as server:
        wait_for(lambda: len(EngineClient_engines(redis_url)) == 2, timeout=120, what="two engines registered")
        teacher = teacher_of(server.url)
        try:
            victim = server.engine_pid(1)
            os.kill(victim, signal.SIGKILL)
            seen = []
            wait_for(lambda: seen.append(healthz(server.url)) or seen[-1]["engines"]["missing"], timeout=10,
                     what="/healthz saying an engine is missing")
            missing = seen[-1]["engines"]["missing"]
            assert seen[-1]["status"] == "degraded"
            assert missing[0]["engine"] == 1 and "stopped" in missing[0]["why"], missing
            wait_for(lambda: server.engine_pid(1) not in (None, victim), timeout=60, what="engine 1 started again")
            wait_for(lambda: healthz(server.url)["engines"]["missing"] == [], timeout=60, what="nothing missing")
            wait_for(lambda: len(EngineClient_engines(redis_url)) == 2, timeout=120, what="two engines again")
            # (if the killed engine held the shared run, another takes it over within 15 s)
            wait_for(lambda: healthz(server.url)["status"] == "ok", timeout=60, what="/healthz ok again")
            step_when_served(teacher, 2)
        finally:
            teacher.disconnect()


def test_the_redis_password_is_never_on_a_command_line(tmp_path):
    password = "pw-" + uuid.uuid4().hex
    redis_server = RedisServer().start()
    try:
        client_of(redis_server.url).config_set("requirepass", password)
        url = f"redis://:{password}@127.0.0.1:{redis_server.port}/0"

        # on the command line: refused in words, before anything starts
        refused = subprocess.run([sys.executable, "-m", "server", "--redis", url, "--port", "0",
                                  "--data-dir", str(tmp_path / "no")], cwd=REPO, capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode == 2
        assert "PLAYGROUND_REDIS_URL" in refused.stderr and password not in refused.stderr
        abbreviated = subprocess.run([sys.executable, "-m", "server", f"--redi={url}", "--port", "0",
                                      "--data-dir", str(tmp_path / "no")], cwd=REPO, capture_output=True,
                                     text=True, timeout=60)
        assert abbreviated.returncode == 2 and "PLAYGROUND_REDIS_URL" in abbreviated.stderr

        # from the environment: it serves, and no process of it shows the password
        with ServerProcess(tmp_path / "data", "--engines", "2", env={"PLAYGROUND_REDIS_URL": url}) as server:
            wait_for(lambda: healthz(server.url)["status"] == "ok", timeout=120, what="the server on Redis")
            processes = [server.pid, *descendants(server.pid)]
            assert len(processes) >= 3
            for pid in processes:
                assert password not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert password not in server.log()
    finally:
        redis_server.stop()


def tls_redis(folder: Path):
    """A real redis-server serving only TLS (a CA and a certificate made with openssl here)."""
    from tests.support.helpers import free_port

    folder.mkdir(parents=True, exist_ok=True)
    run = lambda *args: subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "redis.key", "-out", "redis.csr")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "redis.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "san.cnf", "-out", "redis.pem")
    port = free_port()
    process = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", "--", "redis-server", "--port", "0", "--tls-port", str(port),
         "--bind", "127.0.0.1", "--tls-cert-file", "redis.pem", "--tls-key-file", "redis.key",
         "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(folder)], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={folder / 'ca.pem'}"
    deadline = time.monotonic() + 10
    while True:
        try:
            client_of(url).ping()
            return process, url
        except redis.RedisError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)


def test_a_rediss_url_serves_the_whole_playground_over_tls(tmp_path):
    process, url = tls_redis(tmp_path / "tls")
    try:
        plain = f"redis://127.0.0.1:{url.split(':')[2].split('/')[0]}/0"
        try:
            client_of(plain, socket_timeout=2).ping()
            spoke_plain = True
        except redis.RedisError:
            spoke_plain = False
        assert not spoke_plain  # it really is TLS only
        with ServerProcess(tmp_path / "data", "--engines", "1", env={"PLAYGROUND_REDIS_URL": url}) as server:
            wait_for(lambda: healthz(server.url)["status"] == "ok", timeout=120, what="the server on Redis over TLS")
            teacher = teacher_of(server.url)
            try:
                step_when_served(teacher, 2, timeout=60)
                wait_for(lambda: shared_state(teacher)["step"] == 2, timeout=60, what="2 steps over TLS")
            finally:
                teacher.disconnect()
    finally:
        process.kill()
        process.wait(10)


def test_a_binary_broadcast_from_the_queue_is_sent_whole_under_the_clients_send_lock(redis_url, small_dataset,
                                                                                     tmp_path):
    """Another web process's broadcast (Flask-SocketIO's Redis queue) of a binary event is a
    header and attachments: it waits for the client's send lock like every other send, so no
    other packet can come between its parts."""
    import base64

    from socketio.packet import Packet

    from server import create_app
    from server.link.redis_auth import SignedJson
    from server.web.app import REDIS_CHANNEL
    from server.web.transport import client_lock
    from tests.support.helpers import LiveServer

    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "redis": redis_url,
                      "engines": 1}, dataset=small_dataset)
    r = client_of(redis_url)
    with LiveServer(app) as server:
        client = socketio_client(server.url, record=("queued",))
        try:
            sio = server.playground.socketio.server
            eio_sid = sio.manager.eio_sid_from_sid(client.get_sid("/"), "/")
            blob = os.urandom(4096)
            data, attachments = Packet.deconstruct_binary([{"blob": blob}])
            message = {"method": "emit", "event": "queued", "binary": True, "namespace": "/", "room": None,
                       "data": [data, *[base64.b64encode(a).decode() for a in attachments]],
                       "skip_sid": None, "callback": None, "host_id": "another-web-process"}
            wait_for(lambda: r.pubsub_numsub(REDIS_CHANNEL)[0][1] >= 1, timeout=20, what="the queue's listener")
            with client_lock(sio, eio_sid):
                r.publish(REDIS_CHANNEL, SignedJson(OURS).dumps(message))
                time.sleep(1.5)
                assert client.received["queued"] == []  # its parts wait for the lock
            wait_for(lambda: client.received["queued"], timeout=10, what="the queued broadcast")
            assert client.received["queued"][0]["blob"] == blob
        finally:
            client.disconnect()


def acl_rules_in_deploy_doc() -> dict[str, str]:
    """The per-role ACL lines as docs/deploy.md gives them (user -> rules after the password)."""
    rules = {}
    for line in (REPO / "docs" / "deploy.md").read_text().splitlines():
        words = line.strip().split()
        if len(words) > 3 and words[0] == "user" and words[1] in ("nnlp-web", "nnlp-engine"):
            assert words[2] == "on" and words[3].startswith(">"), line
            # a selector, "(~keys +commands)", is one rule however many words it holds
            rules[words[1]] = re.findall(r"\([^)]*\)|\S+", " ".join(words[4:]))
    assert set(rules) == {"nnlp-web", "nnlp-engine"}
    return rules


def test_the_documented_per_role_acls_let_each_role_do_its_work_and_no_more(redis_server, tmp_path):
    """docs/deploy.md's ACL users, as written there, on a real redis-server: an engine and a web
    process each on its own user serve a class (shared run, a private run); Redis denied them
    nothing (ACL LOG); the web user cannot write an engine's liveness or flush Redis."""
    admin = client_of(redis_server.url)
    passwords = {user: "pw-" + uuid.uuid4().hex for user in ("nnlp-web", "nnlp-engine")}
    for user, rules in acl_rules_in_deploy_doc().items():
        admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{passwords[user]}", *rules)
    url_of = {user: f"redis://{user}:{pw}@127.0.0.1:{redis_server.port}/0" for user, pw in passwords.items()}

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PLAYGROUND_REDIS_URL": url_of["nnlp-engine"]}
    engine_log = open(tmp_path / "engine.log", "w")
    engine = subprocess.Popen([sys.executable, "-m", "server", "--role", "engine", "--data-dir",
                               str(tmp_path / "engine-data"), "--engine-id", "acl-engine"],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=engine_log, env=env)
    try:
        wait_for(lambda: admin.exists("nnlp:run:shared"), timeout=120, what="the engine holding the shared run")
        with ServerProcess(tmp_path / "web-data", "--role", "web",
                           env={"PLAYGROUND_REDIS_URL": url_of["nnlp-web"]}) as web:
            teacher = teacher_of(web.url)
            student = socketio_client(web.url, record=("state",), auth={"viewer": "student-0123456789abcdef"})
            try:
                step_when_served(teacher, 3)
                made = student.call("run:create", {}, timeout=60)
                assert made["ok"], made
                assert student.call("train:step", {"batches": 2}, timeout=60)["ok"]
                wait_for(lambda: any(s.get("step") == 2 for s in student.received["state"]), timeout=60,
                         what="the private run's 2 steps")
                assert healthz(web.url)["status"] == "ok"
            finally:
                teacher.disconnect()
                student.disconnect()
            denied = admin.execute_command("ACL", "LOG")
            assert denied == [], denied

        as_web = client_of(url_of["nnlp-web"])
        for attempt in (lambda: as_web.set("nnlp:engine:fake", "1"), lambda: as_web.flushall(),
                        lambda: as_web.delete("nnlp:run:shared"), lambda: as_web.get("elsewhere")):
            try:
                attempt()
                allowed = True
            except redis.exceptions.NoPermissionError:
                allowed = False
            assert not allowed
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait(10)
        engine_log.close()
