"""Nothing freezes the server, engines that always answer (issue 23, items 2 and 3), side by side
in one run on one `python -m server --engines 1`:
- /healthz's worst latency over a few seconds: quiet, then with 30 peers that asked with
  `Connection: close` and never hang up, then with 200 websockets from one address (the
  default cap keeps 64 of them); the web worker's threads per idle websocket;
- the teacher's pause latency: quiet, then while ten students' learning-rate reveals (two real
  trial runs each, each student its own setup) compute.

    .venv/bin/python bench/nothing_freezes.py [--json out.json]
"""
from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Viewer, emit_json, machine_note, server_process, thread_count  # noqa: E402

HANDSHAKE = "/socket.io/?EIO=4&transport=websocket"
TRIAL_SETUP = {"hidden_sizes": [512], "batch_size": 128}


def healthz_worst(url: str, seconds: float) -> float:
    worst, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        requests.get(f"{url}/healthz", timeout=120)
        worst = max(worst, time.perf_counter() - started)
        time.sleep(0.05)
    return round(worst * 1000, 1)


def lingering_peers(port: int, count: int) -> list:
    peers = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        peers.append(sock)
    return peers


def websocket_handshake(port: int) -> tuple[socket.socket, bool]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {HANDSHAKE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return sock, sock.recv(12).startswith(b"HTTP/1.1 101")


def pause_latencies(teacher: Viewer, until) -> list[float]:
    took = []
    while not until():
        started = time.perf_counter()
        assert teacher.call("train:pause")["ok"]
        took.append((time.perf_counter() - started) * 1000)
        time.sleep(0.1)
    return took


def summary(values: list[float]) -> dict:
    return {"n": len(values), "median_ms": round(statistics.median(values), 1), "worst_ms": round(max(values), 1)}


def measure() -> dict:
    result: dict = {"machine": machine_note()}
    with server_process(extra_args=("--engines", "1")) as served:
        url, port, worker = served.url, int(served.url.rsplit(":", 1)[1]), served.web_pid()
        time.sleep(2)
        result["healthz_worst_ms"] = {"quiet": healthz_worst(url, 3.0)}
        peers = lingering_peers(port, 30)
        result["healthz_worst_ms"]["30 lingering peers"] = healthz_worst(url, 3.0)
        for sock in peers:
            sock.close()

        threads_before = thread_count(worker)
        sockets = [websocket_handshake(port) for _ in range(200)]
        accepted = sum(ok for _, ok in sockets)
        time.sleep(1)
        result["one_address_200_sockets"] = {
            "accepted": accepted, "refused": 200 - accepted,
            "threads_per_idle_socket": round((thread_count(worker) - threads_before) / max(1, accepted), 2),
            "healthz_worst_ms": healthz_worst(url, 3.0)}
        for sock, _ in sockets:
            sock.close()

        teacher = Viewer(url)
        quiet = pause_latencies(teacher, lambda started=time.monotonic(): time.monotonic() - started > 3)
        steps = teacher.call("lesson:steps")["steps"]
        lr_step = next(number for number, step in enumerate(steps, 1) if step.get("key") == "learning-rate")
        students = [Viewer(url, auth={"viewer": f"bench-student-{n:02d}-0123456789ab"}) for n in range(10)]
        for n, student in enumerate(students):
            lr = round(0.0111 + 0.0013 * n + time.time() % 1 * 1e-4, 6)  # its own setup: never from the cache
            assert student.call("run:create", {"config": {**TRIAL_SETUP, "lr": lr}}, timeout=60)["ok"]
        answered = []
        threads = [threading.Thread(target=lambda s=s: answered.append(
            s.call("lesson:reveal", {"step": lr_step}, timeout=120)["ok"])) for s in students]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        busy = pause_latencies(teacher, lambda: len(answered) == len(students))
        reveals_s = time.monotonic() - started
        for thread in threads:
            thread.join()
        result["teacher_pause"] = {"quiet": summary(quiet), "during ten reveals": summary(busy),
                                   "reveals_took_s": round(reveals_s, 1), "reveals_ok": sum(answered)}
        for viewer in students + [teacher]:
            viewer.close()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    r = measure()
    h = r["healthz_worst_ms"]
    print(f"/healthz worst: quiet {h['quiet']} ms, with 30 lingering peers {h['30 lingering peers']} ms")
    s = r["one_address_200_sockets"]
    print(f"200 websockets from one address: {s['accepted']} accepted, {s['refused']} refused; "
          f"{s['threads_per_idle_socket']} threads per idle socket; /healthz worst {s['healthz_worst_ms']} ms")
    p = r["teacher_pause"]
    print(f"teacher's pause: quiet median {p['quiet']['median_ms']} ms (worst {p['quiet']['worst_ms']}); during ten "
          f"reveals median {p['during ten reveals']['median_ms']} ms (worst {p['during ten reveals']['worst_ms']}, "
          f"{p['during ten reveals']['n']} pauses; the reveals took {p['reveals_took_s']} s)")
    print(r["machine"])
    emit_json(r, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
