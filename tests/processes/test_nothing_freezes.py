"""Nothing freezes the server (issue 23, item 2), the real server (`python -m server`:
gunicorn's threaded worker) over real sockets:
- 30 clients that ask with `Connection: close` and never hang up: every other request is
  answered meanwhile (gunicorn waited up to 2 s for each to hang up, on its accepting thread);
- websockets that go silent are dropped after Engine.IO's ping interval and timeout, and their
  threads end;
- one address holds at most --sockets-per-address websockets; another address still connects;
- a forwarded address counts only from a --trusted-proxy."""
from __future__ import annotations

import base64
import http.client
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.helpers import ServerProcess, command_line, descendants, disconnect_all, socketio_client, wait_for

pytestmark = pytest.mark.slow

HANDSHAKE = "/socket.io/?EIO=4&transport=websocket"
ONE_ENGINE = ("--engines", "1")  # the web worker is what these tests are about


def web_worker(server) -> int:
    return next(pid for pid in descendants(server.pid)
                if "spawn_main" not in command_line(pid) and "resource_tracker" not in command_line(pid))


def threads_of(pid: int) -> int:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Threads"])


def read_head(sock: socket.socket) -> bytes:
    """The response's status line and headers (and whatever came with them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def open_websocket(port: int, *, source: str = "127.0.0.1", forwarded_for: str | None = None):
    """A websocket handshake from `source`: (the socket, the status code, what came back)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    sock.sendall((f"GET {HANDSHAKE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"{extra}\r\n").encode())
    head = read_head(sock)
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    if status != 101:  # a refusal: its words too
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(head.split(b"\r\n\r\n", 1)[-1]) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return sock, status, head


def close_all(sockets) -> None:
    for sock in sockets:
        try:
            sock.close()
        except OSError:
            pass


def worst_healthz(url: str, seconds: float) -> float:
    worst, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert requests.get(f"{url}/healthz", timeout=30).status_code == 200
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.05)
    return worst


def test_thirty_clients_that_never_hang_up_do_not_stop_anyone_else(tmp_path):
    with ServerProcess(tmp_path / "data", *ONE_ENGINE) as server:
        lingering = []
        try:
            for _ in range(30):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
                sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                             "Connection: close\r\n\r\n".encode())
                lingering.append(sock)  # ... and never closed by this side
            # Everyone else is answered meanwhile, at once (before: about 60 s, 2 s per peer) ...
            assert worst_healthz(server.url, 3.0) < 2.0
            sock, status, head = open_websocket(server.port)  # ... new websockets too
            assert status == 101, head
            sock.close()
            # ... and each of the thirty got its whole answer, then the server's end of the stream.
            for sock in lingering:
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
        finally:
            close_all(lingering)


def test_silent_websockets_are_dropped_after_the_ping_timeout_and_their_threads_end(tmp_path):
    # pings every 1 s, answered within 2 s, idle threads end after 2 s: the defaults (10, 20,
    # 20 s) shortened, so the test waits less
    with ServerProcess(tmp_path / "data", *ONE_ENGINE, "--ping-interval", "1", "--ping-timeout", "2",
                       "--idle-thread-timeout", "2") as server:
        worker = web_worker(server)
        requests.get(f"{server.url}/healthz", timeout=10)
        threads_before = threads_of(worker)
        silent = []
        try:
            for _ in range(20):
                sock, status, head = open_websocket(server.port)
                assert status == 101, head
                silent.append(sock)  # never reads again, never answers a ping
            assert threads_of(worker) >= threads_before + 20
            # Engine.IO pings every 1 s and waits 2 s for the answer: by 3 s of silence (8 s at
            # most: the socket's own limit, ping interval + timeout + 5 s) the server hangs up on
            # each (the end of its stream reaches the peer) ...
            started = time.monotonic()
            for sock in silent:
                sock.settimeout(60)
                while sock.recv(65536):
                    pass
            assert time.monotonic() - started < 15
            # ... and the threads that served them end (idle pool threads after 2 s more).
            wait_for(lambda: threads_of(worker) <= threads_before + 10, timeout=60,
                     what="the silent websockets' threads to end")
            assert worst_healthz(server.url, 0.5) < 2.0
        finally:
            close_all(silent)


def test_one_address_holds_at_most_its_share_of_websockets_while_another_still_connects(tmp_path):
    with ServerProcess(tmp_path / "data", *ONE_ENGINE, "--sockets-per-address", "64") as server:
        worker = web_worker(server)
        opened, refused = [], []
        try:
            for _ in range(200):
                sock, status, head = open_websocket(server.port)
                (opened if status == 101 else refused).append((sock, status, head))
            assert len(opened) == 64 and len(refused) == 136
            _, status, head = refused[0]
            assert status == 429 and b"64 connections from your address are open already" in head
            # Threads stay bounded by the share, not by what one client opens.
            assert threads_of(worker) < 64 * 4 + 60  # (200 sockets held 827)
            # Another address connects, and pages are served.
            other, status, head = open_websocket(server.port, source="127.0.0.2")
            assert status == 101, head
            other.close()
            assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
            # One closed: a place for this address again.
            opened.pop()[0].close()
            wait_for(lambda: _retry_open(server.port, opened), timeout=10, what="a place for the address again")
        finally:
            close_all(sock for sock, _, _ in opened + refused)


def _retry_open(port, opened) -> bool:
    sock, status, head = open_websocket(port)
    if status == 101:
        opened.append((sock, status, head))
        return True
    sock.close()
    return False


def test_a_forwarded_address_counts_only_from_the_trusted_proxy(tmp_path):
    with ServerProcess(tmp_path / "data", *ONE_ENGINE, "--sockets-per-address", "2",
                       "--trusted-proxy", "127.0.0.2") as server:
        held = []
        try:
            def status(source, forwarded_for):
                sock, code, head = open_websocket(server.port, source=source, forwarded_for=forwarded_for)
                held.append(sock)
                return code

            # Through the trusted proxy: each client its own share.
            assert [status("127.0.0.2", "203.0.113.5") for _ in range(3)] == [101, 101, 429]
            assert [status("127.0.0.2", "203.0.113.6") for _ in range(2)] == [101, 101]
            # Anyone else's X-Forwarded-For is ignored: one address, whatever it claims.
            assert [status("127.0.0.1", f"203.0.113.{n}") for n in (7, 8, 9)] == [101, 101, 429]
        finally:
            close_all(held)

        # The HTTP rate buckets too (the sandbox: 30 a second, bursts of 60, per client).
        def statuses(source, forwarded_for, count):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10,
                                                    source_address=(source, 0))
            codes = []
            for _ in range(count):  # not a JSON object: refused at once, after the rate is counted
                connection.request("POST", "/api/linear/random", body=b"[]", headers={
                    "Content-Type": "application/json", "X-Forwarded-For": forwarded_for})
                response = connection.getresponse()
                response.read()
                codes.append(response.status)
            connection.close()
            return codes

        assert 429 in statuses("127.0.0.2", "203.0.113.10", 150)  # one client past its rate ...
        assert statuses("127.0.0.2", "203.0.113.11", 1) == [400]  # ... another client is not
        assert 429 in statuses("127.0.0.1", "203.0.113.12", 150)
        assert statuses("127.0.0.1", "203.0.113.13", 1) == [429]  # a claimed address changes nothing


def rss_mb(pid: int) -> float:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024


def test_the_memory_big_canvases_took_is_handed_back(tmp_path):
    with ServerProcess(tmp_path / "data", *ONE_ENGINE) as server:
        worker = web_worker(server)
        clients = [socketio_client(server.url, record=()) for _ in range(4)]
        try:
            side = 1024  # a 1 MiB canvas, the biggest a message may carry
            stroke = bytearray(side * side)
            for y in range(side // 5, side * 4 // 5):
                stroke[y * side + side // 2 - 40: y * side + side // 2 + 40] = b"\xff" * 80
            canvas = {"image": {"width": side, "height": side, "data": bytes(stroke)}}
            assert clients[0].call("predict", canvas, timeout=30)["ok"]
            time.sleep(1.5)
            before = rss_mb(worker)

            def draw(client):
                for _ in range(12):
                    answer = client.call("predict", canvas, timeout=60)
                    assert answer["ok"], answer

            threads = [threading.Thread(target=draw, args=(client,)) for client in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            # Handled, and its memory handed back to the system (before: +315 MB for good).
            wait_for(lambda: rss_mb(worker) <= before + 40, timeout=15,
                     what=f"the web worker's memory to come back to {before:.0f} MB (+40)")
        finally:
            disconnect_all(clients)


def test_all_events_of_one_address_count_together(small_dataset, tmp_path):
    """Many connections of one client are one client: past the address's rate (here 60 a second,
    bursts of 120, as for one page), its events are refused in words, whichever connection
    sends them. In-process server, real sockets."""
    from server import create_app
    from tests.support.helpers import LiveServer

    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "engines": 1,
                      "sockets_per_address": 8}, dataset=small_dataset)
    with LiveServer(app) as server:
        clients = [socketio_client(server.url, record=()) for _ in range(3)]
        answers, lock = [], threading.Lock()
        try:
            def record(answer):
                with lock:
                    answers.append(answer)

            for _ in range(100):  # 100 each: within one connection's own rate (bursts of 120)
                for client in clients:
                    client.emit("poll:get", None, callback=record)
            wait_for(lambda: len(answers) == 300, timeout=30, what="every event answered")
            refused = [answer for answer in answers if not answer["ok"]]
            assert refused and len(refused) < 300 - 120
            assert all(answer["error"] == "too many requests: at most 60 per second from one address; "
                                          "this one was not handled" for answer in refused)
        finally:
            disconnect_all(clients)
