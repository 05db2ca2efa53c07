"""What the benchmarks share: the real server in its own process, real Socket.IO viewers,
percentiles, and the server's memory and CPU from /proc.

The server runs as `python -m server` (or gunicorn's threaded worker, see bench/wsgi.py) in a
subprocess, so the benchmark's own clients never share its interpreter lock; they do share the
machine's cores, which every report says."""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import requests
import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import OrderedClient  # noqa: E402  (the in-order Socket.IO client)

PYTHON = sys.executable
DATA_DIR = REPO / "data"  # the embedded digits' cache (gitignored), shared with `make run`
FULL_SPEED = None  # steps_per_second: as fast as the machine trains
INSIDE_EVENTS = ("inside:weights", "inside:activations", "inside:distributions")
BLANK_PIXELS = {"pixels": [0.0] * 784}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def canvas_payload(width: int = 280, height: int = 280) -> dict:
    """What the page sends while you draw: a "7"-ish stroke on its 280x280 canvas, one byte per
    pixel, cropped to the ink."""
    data = bytearray(width * height)
    for y in range(height // 5, height * 4 // 5):
        x = width * 3 // 5 - (y - height // 5) // 3
        for dx in range(-9, 10):
            data[y * width + max(0, min(width - 1, x + dx))] = 255
    for x in range(width // 4, width * 3 // 4):
        for dy in range(-9, 10):
            data[(height // 5 + dy) * width + x] = 255
    # The page sends the ink's bounding box only (static/js/canvas.js).
    rows = [y for y in range(height) if any(data[y * width:(y + 1) * width])]
    cols = [x for x in range(width) if any(data[y * width + x] for y in rows)]
    top, left, crop_w, crop_h = rows[0], cols[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
    crop = b"".join(bytes(data[(top + y) * width + left:(top + y) * width + left + crop_w]) for y in range(crop_h))
    return {"image": {"width": crop_w, "height": crop_h, "data": crop}}


@contextmanager
def server_process(*, torch_threads: int | None = None, server: str = "werkzeug", device: str = "cpu",
                   extra_env=None, log_path: Path | None = None):
    """The playground in its own process on a free port; yields (url, pid)."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("HOST", None)
    env.pop("PORT", None)
    if server == "werkzeug":
        command = [PYTHON, "-m", "server", "--port", str(port), "--device", device, "--data-dir", str(DATA_DIR)]
        if torch_threads:
            command += ["--torch-threads", str(torch_threads)]
    elif server == "gunicorn":
        env["PLAYGROUND_DATA_DIR"] = str(DATA_DIR)
        env["PLAYGROUND_DEVICE"] = device
        if torch_threads:
            env["PLAYGROUND_TORCH_THREADS"] = str(torch_threads)
        command = [PYTHON, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1", "--threads", "100",
                   "--bind", f"127.0.0.1:{port}", "--chdir", str(REPO), "--log-level", "warning",
                   "bench.wsgi:app"]
    elif server == "floor":  # bench/floor_server.py: the transport alone, no playground
        command = [PYTHON, str(REPO / "bench" / "floor_server.py"), str(port)]
    else:
        raise ValueError(server)
    log = open(log_path or os.devnull, "w")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}: {' '.join(command)}")
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start in 120 s")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Viewer:
    """One viewer as the page is one: a websocket Socket.IO connection that receives every
    broadcast and acknowledges the live-view frames (the server sends the next one only then)."""

    def __init__(self, url: str, *, auth=None):
        # UTF-8 validation of every text frame in pure Python costs websocket-client ~0.2 us a
        # byte (3.5 ms for a predict answer); a browser does it natively. Measure the server.
        self.client = OrderedClient(reconnection=False, websocket_extra_options={"skip_utf8_validation": True})
        self.counts: dict[str, int] = {}
        self.metrics: list[tuple[float, dict]] = []  # (arrival time, payload)
        self.states: list[dict] = []
        self.lock = threading.Lock()
        self.client.on("*", self._any)
        self.client.on("metrics", self._metrics)
        self.client.on("state", self._state)
        for event in INSIDE_EVENTS:
            self.client.on(event, lambda *args, _e=event: self._frame(_e))
        self.client.connect(url, transports=["websocket"], wait_timeout=20, auth=auth)

    def _count(self, event):
        with self.lock:
            self.counts[event] = self.counts.get(event, 0) + 1

    def _any(self, event, *args):
        self._count(event)

    def _frame(self, event):
        self._count(event)
        return True  # the acknowledgement the live views wait for

    def _metrics(self, payload):
        self._count("metrics")
        with self.lock:
            self.metrics.append((time.perf_counter(), payload))

    def _state(self, payload):
        self._count("state")
        with self.lock:
            self.states.append(payload)

    def call(self, event, payload=None, timeout=30):
        return self.client.call(event, payload, timeout=timeout)

    @property
    def connected(self) -> bool:
        return self.client.connected

    def close(self):
        if self.client.connected:
            self.client.disconnect()


PACKET = re.compile(r"^4([0-6])(\d+-)?(/[^,]*,)?(\d*)(.*)$", re.S)


class LightViewer:
    """A viewer that costs its own process little: a bare websocket speaking Engine.IO/Socket.IO
    by hand. It reads every frame (counting bytes per event), answers pings, acknowledges the
    live views' frames as the page does, and sends predictions, but decodes only the answers
    to its own requests. Fifty python-socketio clients would spend more CPU decoding frames
    than the server spends sending them, on the same two cores."""

    def __init__(self, url: str, *, count_deflated: bool = False):
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(ws_url, timeout=30, origin=url, skip_utf8_validation=True)
        self.ws.recv()  # Engine.IO open
        self.send_lock = threading.Lock()
        self.lock = threading.Lock()
        self.count_deflated = count_deflated
        self.counting = True
        self.bytes: dict[str, int] = {}
        self.deflated: dict[str, int] = {}
        self.messages: dict[str, int] = {}
        self.pending: dict[int, tuple[threading.Event, list]] = {}
        self.next_id = 1000
        self.current_event = None
        self.closed = False
        self.connected_event = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        with self.send_lock:
            self.ws.send("40")
        if not self.connected_event.wait(30):
            raise RuntimeError("no Socket.IO connect answer")

    @property
    def connected(self) -> bool:
        return not self.closed and self.ws.connected

    def _add(self, event: str, data, new_message: bool):
        if not self.counting:
            return
        raw = data.encode() if isinstance(data, str) else data
        with self.lock:
            self.bytes[event] = self.bytes.get(event, 0) + len(raw)
            if self.count_deflated:
                self.deflated[event] = self.deflated.get(event, 0) + len(zlib.compress(raw, 6))
            if new_message:
                self.messages[event] = self.messages.get(event, 0) + 1

    def _read(self):
        while not self.closed:
            try:
                frame = self.ws.recv()
            except Exception:
                self.closed = True
                return
            if isinstance(frame, bytes):  # an attachment of the last packet
                self._add(self.current_event or "?", frame, False)
                continue
            if frame == "2":
                with self.send_lock:
                    self.ws.send("3")
                continue
            match = PACKET.match(frame)
            if not match:
                continue
            kind, _attachments, _namespace, ack_id, body = match.groups()
            if kind == "0":
                self.connected_event.set()
            elif kind == "3" and ack_id:  # the answer to one of our requests
                self.current_event = "(answers)"
                self._add("(answers)", frame, True)
                waiter = self.pending.pop(int(ack_id), None)
                if waiter:
                    waiter[1].append(json.loads(body)[0])
                    waiter[0].set()
            elif kind in ("2", "5"):
                event = body.split('"', 2)[1] if body.startswith('["') else "?"
                self.current_event = event
                self._add(event, frame, True)
                if ack_id:
                    with self.send_lock:
                        self.ws.send(f"43{ack_id}[true]")  # drawn: send the next frame

    def call(self, event: str, payload=None, timeout: float = 30):
        """Send `event` with an acknowledgement id; bytes in `payload` (one level deep, under
        an "image" dict as the page sends them) go as a binary attachment."""
        with self.lock:
            self.next_id += 1
            ack_id = self.next_id
        waiter = (threading.Event(), [])
        self.pending[ack_id] = waiter
        attachment = None
        if isinstance(payload, dict) and isinstance(payload.get("image", {}).get("data"), bytes):
            attachment = payload["image"]["data"]
            payload = {**payload, "image": {**payload["image"], "data": {"_placeholder": True, "num": 0}}}
        body = json.dumps([event] if payload is None else [event, payload], separators=(",", ":"))
        with self.send_lock:
            if attachment is None:
                self.ws.send(f"42{ack_id}{body}")
            else:
                self.ws.send(f"451-{ack_id}{body}")
                self.ws.send_binary(attachment)
        if not waiter[0].wait(timeout):
            self.pending.pop(ack_id, None)
            raise TimeoutError(f"no answer to {event} in {timeout} s")
        return waiter[1][0]

    def snapshot(self, reset: bool = False):
        with self.lock:
            result = dict(self.bytes), dict(self.deflated), dict(self.messages)
            if reset:
                self.bytes.clear()
                self.deflated.clear()
                self.messages.clear()
        return result

    def close(self):
        self.closed = True
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass
        self.ws.shutdown()


def close_all(viewers):
    # python-socketio's client can misread a frame still arriving while it disconnects (it
    # drops its half-read packet from another thread); that is the client's, not the server's.
    client_log = logging.getLogger("engineio.client")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    threads = [threading.Thread(target=v.close) for v in viewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    time.sleep(0.5)
    client_log.setLevel(level)


def start_run(viewer: Viewer, *, steps_per_second=FULL_SPEED, epochs: int = 200, **config):
    """A fresh run (seed 0, the default network unless `config` says otherwise), started."""
    answer = viewer.call("train:reset", {"config": {"steps_per_second": steps_per_second, "epochs": epochs,
                                                    **config}})
    assert answer["ok"], answer
    answer = viewer.call("train:start")
    assert answer["ok"], answer
    return answer["state"]


def throughput_from_metrics(viewer: Viewer, since: float, until: float, batch_size: int) -> float:
    """Samples per second the server trained between two moments, from the metrics stream
    (each message carries the step it was sent at)."""
    with viewer.lock:
        points = [(t, m["step"], m["run_id"]) for t, m in viewer.metrics if since <= t <= until]
    if len(points) < 2:
        return float("nan")
    run_id = points[-1][2]
    points = [p for p in points if p[2] == run_id]
    (t0, s0, _), (t1, s1, _) = points[0], points[-1]
    return (s1 - s0) * batch_size / (t1 - t0) if t1 > t0 else float("nan")


def percentile(values, q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def median(values) -> float:
    return percentile(values, 50)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def load_average() -> float:
    return os.getloadavg()[0]


def machine_note() -> str:
    return f"{os.cpu_count()} cores, load average {load_average():.1f} at the start (shared machine)"


def emit_json(result: dict, path: Path | None):
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
