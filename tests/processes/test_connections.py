"""What a connection may hold, and that it gives it back (issue 14): 300 viewers who came and
went leave the server's threads and memory as they were; a request sent by halves is dropped
after a while instead of holding a thread for good; a client that does not read is
disconnected instead of piling up what is sent to it. Real sockets, the real server."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests
import websocket

from server.web import transport
from tests.support.helpers import ServerProcess, command_line, descendants, socketio_client, wait_for

pytestmark = pytest.mark.slow

HANDSHAKE = "/socket.io/?EIO=4&transport=websocket"
SHORT_IDLE = ("--idle-thread-timeout", "2")  # the default 20 s, shortened: these tests wait it out
ONE_ENGINE = ("--engines", "1")  # the web worker is what these tests are about (and two engines less to start)


def web_worker(server) -> int:
    return next(pid for pid in descendants(server.pid)
                if "spawn_main" not in command_line(pid) and "resource_tracker" not in command_line(pid))


def threads_and_memory(pid: int) -> tuple[int, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def test_300_viewers_that_came_and_went_leave_threads_and_memory_as_they_were(tmp_path):
    # 300 viewers from one address: room for all of them (at most 64 by default); idle pool
    # threads end after 2 s instead of the default 20, so the test waits less
    with ServerProcess(tmp_path / "data", "--sockets-per-address", "320", *SHORT_IDLE, *ONE_ENGINE) as server:
        worker = web_worker(server)
        requests.get(f"{server.url}/healthz", timeout=10)
        threads_before, memory_before = threads_and_memory(worker)
        sockets = []
        for _ in range(300):
            ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{HANDSHAKE}", timeout=10)
            ws.recv()  # Engine.IO's open packet
            ws.send("40")  # connect to the Socket.IO namespace
            sockets.append(ws)
        threads_open, _ = threads_and_memory(worker)
        assert threads_open <= threads_before + 300 * 4 + 20  # bounded: a few threads per viewer
        for ws in sockets:
            ws.close()
        # Idle pool threads end after --idle-thread-timeout (server/web/serve.py); then everything is back.
        wait_for(lambda: threads_and_memory(worker)[0] <= threads_before + 20, timeout=60,
                 what="the threads to end")
        threads_after, memory_after = threads_and_memory(worker)
        assert memory_after <= memory_before + 50, (memory_before, memory_after)
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_a_request_sent_by_halves_is_dropped_instead_of_holding_a_thread(tmp_path):
    # dropped after 2 s of silence instead of the default 15, so the test waits less
    with ServerProcess(tmp_path / "data", "--request-timeout", "2", *SHORT_IDLE, *ONE_ENGINE) as server:
        worker = web_worker(server)
        threads_before, _ = threads_and_memory(worker)
        halves = []
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the end
            halves.append(sock)
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200  # others served
        try:
            for sock in halves:
                assert sock.recv(1) == b""  # the server hung up on it (after 2 s of silence)
        finally:
            for sock in halves:
                sock.close()
        wait_for(lambda: threads_and_memory(worker)[0] <= threads_before + 20, timeout=60,
                 what="the threads to end")
        assert "Traceback" not in server.log()  # dropped quietly


def test_a_client_that_does_not_read_is_disconnected_not_fed_without_end(live_server):
    # lower than the server's 200 packets for 10 s, so the test is quick
    transport.cap_queued_packets(live_server.playground.socketio, backlog=30, patience_s=2)
    eio = live_server.playground.socketio.server.eio
    reader = websocket.WebSocket()
    reader.sock_opt.sockopt = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    reader.connect(f"ws://127.0.0.1:{live_server.port}{HANDSHAKE}", timeout=10)
    reader.recv()
    reader.send("40")
    wait_for(lambda: eio.sockets, what="its session")
    (sid, session), = list(eio.sockets.items())
    server_socket = live_server.playground.socketio.server.environ[sid]["werkzeug.socket"]
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    controller = socketio_client(live_server.url)
    try:
        # 200 epochs: broadcasts go on for a while (the default 20 end within 2 s on these 1,000
        # digits, and then only Engine.IO's ping timeout dropped the client, after 30 s)
        assert controller.call("train:start", {"config": {"steps_per_second": None, "epochs": 200}},
                               timeout=10)["ok"]
        # It reads nothing: full frames and broadcasts pile up until it is cut off.
        # ... within 20 s: before Engine.IO's ping timeout (10 s + 20 s) could be what drops it
        wait_for(lambda: session.closed, timeout=20, what="the non-reading client to be disconnected")
        assert controller.call("predict", {"pixels": [0.0] * 784}, timeout=10)["ok"]  # the rest goes on
    finally:
        controller.call("train:pause", timeout=10)
        controller.disconnect()
        reader.close()


BAD_PACKETS = ["42[", "4x", '451-["predict",{"_placeholder":true,"num":5}]', "99", "42" + "[" * 3000, "42\"x\"",
               "43[]", "42[1,2]", "42{}", "41", "4" + "\x00" * 10]


def test_a_flood_of_malformed_packets_costs_the_log_one_line_and_no_traceback(tmp_path):
    with ServerProcess(tmp_path / "data", *ONE_ENGINE) as server:
        requests.get(f"{server.url}/healthz", timeout=10)
        time.sleep(0.5)
        before = len(server.log())
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{HANDSHAKE}", timeout=10)
        ws.recv()
        ws.send("40")
        sent = 0
        for payload in BAD_PACKETS * 40:
            try:
                ws.send(payload)
                sent += 1
            except (OSError, websocket.WebSocketException):  # the server may close on some
                ws.close()
                ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{HANDSHAKE}", timeout=10)
                ws.recv()
                ws.send("40")
        ws.send_binary(b"\x00\x01 not an attachment anyone announced")
        time.sleep(2)
        grown = server.log()[before:]
        assert sent > 300
        assert "Traceback" not in grown
        assert len(grown) < 2000, grown  # a line or two per connection, not 400 tracebacks
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        ws.close()
