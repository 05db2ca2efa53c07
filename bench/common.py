"""What the benchmarks share: the real server in its own processes, real Socket.IO viewers,
percentiles, and each process's memory and CPU from /proc.

The server runs as users run it, `python -m server` in a subprocess: gunicorn's arbiter, its
web worker (Flask-SocketIO, no torch) and the training engine, a `spawn` child of the web
worker (docs/architecture.md). `Served` finds the web worker and the engine among the
arbiter's descendants, so every benchmark can say which process spent what. The benchmark's
own clients share the machine's cores with them, which every report says (load average)."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import requests
import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.shared import OrderedClient, command_line, descendants  # noqa: E402

PYTHON = sys.executable
# The embedded digits' parsed cache (gitignored, shared with `make run`): each benchmark server
# gets a data directory of its own (its own runs database and lock) seeded from here.
DIGITS_CACHE = REPO / "data"
FULL_SPEED = None  # steps_per_second: as fast as the machine trains
DEFAULT_PACE = 50  # steps/s: the page's default pace (server/experiment.py DEFAULT_PACE)
BATCH = 64  # the default setup's batch size
BLANK_PIXELS = {"pixels": [0.0] * 784}

# What a viewer takes (the connect auth of docs/protocol.md; None = says nothing).
PAGE_STREAMS = ["weights-delta", "activations", "distributions-delta"]
PAGE_BROADCASTS = ["evaluation", "runs"]
VIEWER_KINDS = {
    # every stream the page takes, and both broadcasts
    "page": {"streams": PAGE_STREAMS, "broadcasts": PAGE_BROADCASTS},
    # a page whose live views are scrolled out of view: state, metrics and epoch only
    "page, live views out of view": {"streams": [], "broadcasts": []},
    # a client of the first protocol says nothing: full weights/activations/distributions, both broadcasts
    "first protocol": None,
}
QUIET = {"streams": [], "broadcasts": []}  # a controlling client that watches only state and metrics
INSIDE_EVENTS = ("inside:weights", "inside:activations", "inside:distributions",
                 "inside:weights-delta", "inside:distributions-delta")


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


# ---- the server's processes ----------------------------------------------------------------------

def is_engine(pid: int) -> bool:
    return "spawn_main" in command_line(pid)


def is_multiprocessing_helper(pid: int) -> bool:
    return "multiprocessing" in command_line(pid)  # the engine (spawn_main) or the resource tracker


class Served(tuple):
    """A running server: `url, pid = served` (pid: the process started, gunicorn's arbiter);
    also `.url`, `.pid`, `.data_dir`."""

    def __new__(cls, url: str, pid: int, data_dir: str = ""):
        served = super().__new__(cls, (url, pid))
        served.url, served.pid, served.data_dir = url, pid, data_dir
        return served

    def web_pid(self) -> Optional[int]:
        """The web worker: the arbiter's child that is not a multiprocessing helper."""
        for child in descendants(self.pid):
            if not is_multiprocessing_helper(child) and Path(f"/proc/{child}").exists():
                return child
        return None

    def engine_pid(self) -> Optional[int]:
        """The training engine (it changes if the engine is restarted)."""
        for child in descendants(self.pid):
            if is_engine(child):
                return child
        return None

    def processes(self) -> dict[str, int]:
        """{"web worker": pid, "engine": pid} (the floor server has no engine)."""
        found = {"web worker": self.web_pid(), "engine": self.engine_pid()}
        return {name: pid for name, pid in found.items() if pid}


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 120.0, what: str = "the server"):
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {' '.join(process.args)}")
        try:
            answer = requests.get(url + "/healthz", timeout=2)
            if answer.status_code == 200 and answer.json().get("status", "ok") == "ok":
                return
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {timeout:.0f} s")
        time.sleep(0.2)


def stop_process_tree(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (the server stops everything itself); whatever is left after `timeout` is killed."""
    below = descendants(process.pid)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    for pid in below:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, 9)
            except OSError:
                pass


@contextmanager
def server_process(*, torch_threads: int | None = None, device: str = "cpu", floor: bool = False,
                   extra_args=(), extra_env=None, log_path: Path | None = None, repo: Path = REPO,
                   host: str = "127.0.0.1", prefix=()):
    """The playground as `python -m server` (or, `floor=True`, bench/floor_server.py: the
    transport alone) on a free port with a data directory of its own; yields a `Served`.
    `repo`: the tree whose server runs (another revision's, bench/page.py --baseline); `host`
    and `prefix` (a command it runs under, e.g. `ip netns exec NAME`): bench/classroom.py."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("HOST", None)
    env.pop("PORT", None)
    data_dir = tempfile.mkdtemp(prefix="bench-data-")
    for cached in DIGITS_CACHE.glob("*.npz") if DIGITS_CACHE.is_dir() else ():
        shutil.copy2(cached, data_dir)
    if floor:
        command = [PYTHON, str(REPO / "bench" / "floor_server.py"), str(port)]
    else:
        command = [PYTHON, "-m", "server", "--port", str(port), "--device", device, "--data-dir", data_dir,
                   *extra_args]
        if host != "127.0.0.1":
            command += ["--host", host, "--allow-remote"]
        if torch_threads:
            command += ["--torch-threads", str(torch_threads)]
    log = open(log_path or Path(data_dir) / "server.log", "w")
    process = subprocess.Popen([*prefix, *command], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}"
    try:
        wait_until_healthy(url, process)
        yield Served(url, process.pid, data_dir)
    except BaseException:
        log.flush()
        tail = (Path(log.name).read_text(errors="replace")[-3000:] if log_path is None else "")
        if tail:
            print(f"--- the server's log (last lines) ---\n{tail}", file=sys.stderr)
        raise
    finally:
        stop_process_tree(process)
        log.close()
        # Keep the parsed digits for the next server (the first one made them).
        DIGITS_CACHE.mkdir(exist_ok=True)
        for made in Path(data_dir).glob("*.npz"):
            if not (DIGITS_CACHE / made.name).exists():
                shutil.copy2(made, DIGITS_CACHE)
        shutil.rmtree(data_dir, ignore_errors=True)


# npm packages an older revision named that today's node_modules has in another package: the
# same files of the same version (plotly.js's dist bundles, before the page built its own).
NODE_MODULE_STAND_INS = {
    "plotly.js-cartesian-dist-min": {"plotly-cartesian.min.js": "plotly.js/dist/plotly-cartesian.min.js"},
    "plotly.js-dist-min": {"plotly.min.js": "plotly.js/dist/plotly.min.js"},
}


@contextmanager
def revision_tree(ref: str):
    """The repository as it was at git revision `ref` (git archive), to run that revision's own
    server beside today's (`server_process(repo=...)`): its code, templates and static files,
    today's virtualenv and npm packages (its node_modules is a folder of links to today's, with
    NODE_MODULE_STAND_INS for packages since replaced). Yields (path, short revision)."""
    rev = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = Path(tempfile.mkdtemp(prefix=f"bench-{rev}-"))
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        node_modules = tree / "node_modules"
        node_modules.mkdir()
        for entry in (REPO / "node_modules").iterdir():
            (node_modules / entry.name).symlink_to(entry)
        for package, files in NODE_MODULE_STAND_INS.items():
            if not (node_modules / package).exists():
                (node_modules / package).mkdir()
                for name, source in files.items():
                    (node_modules / package / name).symlink_to(REPO / "node_modules" / source)
        yield tree, rev
    finally:
        shutil.rmtree(tree, ignore_errors=True)


# ---- CPU and memory from /proc -------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads together (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class CpuMeter:
    """Cores used by each named process (and by this one: the load generator) between
    `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int], *, include_self: bool = True):
        self.pids = dict(pids)
        self.include_self = include_self

    def _read(self) -> dict[str, float]:
        values = {}
        for name, pid in self.pids.items():
            try:
                values[name] = cpu_seconds(pid)
            except OSError:
                values[name] = float("nan")
        if self.include_self:
            values["benchmark (load generator)"] = own_cpu_seconds()
        return values

    def start(self) -> "CpuMeter":
        self._t0, self._before = time.perf_counter(), self._read()
        return self

    def stop(self) -> dict[str, float]:
        """Cores per process over the window; `self.used` keeps the CPU seconds, `self.elapsed` the wall time."""
        self.elapsed, after = time.perf_counter() - self._t0, self._read()
        self.used = {name: after[name] - self._before[name] for name in after}
        return {name: used / self.elapsed for name, used in self.used.items()}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def load_average() -> float:
    return os.getloadavg()[0]


def machine_note() -> str:
    return f"{os.cpu_count()} cores, load average {load_average():.1f} at the start (shared machine)"


# ---- viewers ------------------------------------------------------------------------------------

class Viewer:
    """One viewer as the page is one, decoding everything: a python-socketio websocket
    connection that receives every broadcast and acknowledges the live-view frames (the server
    sends the next one only then). Costly to run; LightViewer is the cheap one."""

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


class DeflatingWebSocket:
    """The few calls LightViewer makes of websocket-client's socket (recv, send, send_binary,
    close, shutdown), over wsproto with permessage-deflate, which websocket-client lacks and a
    browser always offers: frames cross the network compressed, as they do to a page."""

    def __init__(self, url: str, origin: str):
        from urllib.parse import urlsplit
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import Request
        from wsproto.extensions import PerMessageDeflate

        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.lock = threading.Lock()
        self.messages: list = []
        self.parts: list = []
        self.connected = False
        self.closed = False
        self.sock.sendall(self.conn.send(Request(
            host=parts.netloc, target=f"{parts.path}?{parts.query}", extensions=[PerMessageDeflate()],
            extra_headers=[(b"origin", origin.encode())])))
        while not self.connected:
            if self.closed:
                raise ConnectionError(f"the websocket handshake with {url} failed")
            self._pump()
        self.sock.settimeout(None)

    def _pump(self) -> None:
        from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, RejectConnection

        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            raise ConnectionError("the websocket closed")
        with self.lock:
            self.conn.receive_data(data)
            for event in self.conn.events():
                if isinstance(event, AcceptConnection):
                    self.connected = True
                elif isinstance(event, RejectConnection):
                    self.closed = True
                elif isinstance(event, Message):
                    self.parts.append(event.data)
                    if event.message_finished:
                        whole = "".join(self.parts) if isinstance(event.data, str) else b"".join(self.parts)
                        self.messages.append(whole)
                        self.parts = []
                elif isinstance(event, Ping):
                    self.sock.sendall(self.conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed = True

    def recv(self):
        while not self.messages:
            if self.closed:
                raise ConnectionError("the websocket closed")
            self._pump()
        return self.messages.pop(0)

    def _send(self, event) -> None:
        with self.lock:
            self.sock.sendall(self.conn.send(event))

    def send(self, text: str) -> None:
        from wsproto.events import TextMessage
        self._send(TextMessage(data=text))

    def send_binary(self, data: bytes) -> None:
        from wsproto.events import BytesMessage
        self._send(BytesMessage(data=data))

    def close(self, timeout: float = 1) -> None:
        from wsproto.events import CloseConnection
        try:
            self._send(CloseConnection(code=1000))
        except Exception:  # noqa: BLE001 - closing what may already be gone
            pass

    def shutdown(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


PACKET = re.compile(r"^4([0-6])(\d+-)?(/[^,]*,)?(\d*)(.*)$", re.S)


class LightViewer:
    """A viewer that costs its own process little: a bare websocket speaking Engine.IO/Socket.IO
    by hand. It says at connect what it takes (`auth`, as the page does), reads every frame
    (counting bytes per event), answers pings, acknowledges the live views' frames as the page
    does, and sends requests; it decodes only the answers to its own requests, the metrics
    (arrival time and step, for the training speed) and the state's status. Fifty
    python-socketio clients would spend more CPU decoding frames than the server spends
    sending them, on the same two cores."""

    def __init__(self, url: str, *, auth: Optional[dict] = None, count_deflated: bool = False,
                 keep_metrics: bool = True, deflate: bool = False):
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        # deflate: permessage-deflate, as a browser's websocket negotiates it (what crosses the
        # network then is what a page's socket takes: bench/classroom.py).
        self.ws = (DeflatingWebSocket(ws_url, origin=url) if deflate else
                   websocket.create_connection(ws_url, timeout=30, origin=url, skip_utf8_validation=True))
        self.ws.recv()  # Engine.IO open
        self.send_lock = threading.Lock()
        self.lock = threading.Lock()
        self.count_deflated = count_deflated
        self.keep_metrics = keep_metrics
        self.counting = True
        self.bytes: dict[str, int] = {}
        self.deflated: dict[str, int] = {}
        self.messages: dict[str, int] = {}
        self.metrics: list[tuple[float, dict]] = []  # (arrival time, payload)
        self.status: Optional[str] = None  # the latest state's status
        self.status_changed = threading.Condition(self.lock)
        self.pending: dict[int, tuple[threading.Event, list]] = {}
        self.next_id = 1000
        self.current_event = None
        self.answer_waiting = None  # (attachments still to come, waiter, answer): a binary answer
        self.closed = False
        self.connected_event = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        with self.send_lock:
            self.ws.send("40" + (json.dumps(auth, separators=(",", ":")) if auth is not None else ""))
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
                if self.answer_waiting:  # a binary answer is whole with its last attachment
                    left, waiter, answer = self.answer_waiting
                    self.answer_waiting = (left - 1, waiter, answer) if left > 1 else None
                    if left == 1 and waiter:
                        waiter[1].append(answer)
                        waiter[0].set()
                continue
            if frame == "2":
                with self.send_lock:
                    self.ws.send("3")
                continue
            match = PACKET.match(frame)
            if not match:
                continue
            kind, attachments, _namespace, ack_id, body = match.groups()
            if kind == "0":
                self.connected_event.set()
            elif kind == "6" and ack_id:  # an answer with binary attachments (they follow)
                self.current_event = "(answers)"
                self._add("(answers)", frame, True)
                self.answer_waiting = (int(attachments[:-1]), self.pending.pop(int(ack_id), None), json.loads(body)[0])
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
                if event == "metrics" and self.keep_metrics:
                    payload = json.loads(body)[1]
                    with self.lock:
                        self.metrics.append((time.perf_counter(), payload))
                elif event == "state":
                    status = re.search(r'"status":\s*"(\w+)"', body)
                    with self.lock:
                        self.status = status.group(1) if status else None
                        self.status_changed.notify_all()

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

    def wait_for_status(self, status: str, timeout: float) -> bool:
        with self.lock:
            return self.status_changed.wait_for(lambda: self.status == status, timeout)

    def snapshot(self, reset: bool = False):
        """(bytes, deflated bytes, messages) received so far, per event."""
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


# ---- the run ------------------------------------------------------------------------------------

def checked(answer: dict) -> dict:
    if not answer.get("ok"):
        raise RuntimeError(f"the server refused: {answer}")
    return answer


def start_run(viewer, *, steps_per_second=FULL_SPEED, epochs: int = 200, **config):
    """A fresh run (seed 0, the default network unless `config` says otherwise), started."""
    checked(viewer.call("train:reset", {"config": {"steps_per_second": steps_per_second, "epochs": epochs,
                                                   **config}}))
    return checked(viewer.call("train:start"))["state"]


def resume(viewer, seconds_needed: float, *, steps_per_second=FULL_SPEED, epochs: int = 200) -> dict:
    """Resume the paused run, or start a fresh one when it could end within `seconds_needed`
    at its last measured speed (a finished run would measure nothing)."""
    state = checked(viewer.call("train:pause"))["state"]
    left = state["total_steps"] - state["step"]
    rate = state.get("samples_per_second") or 0
    steps_needed = seconds_needed * (rate / state["config"]["batch_size"] if rate else 2000)
    if state["status"] == "done" or left < 1.5 * steps_needed:
        return start_run(viewer, steps_per_second=steps_per_second, epochs=epochs)
    return checked(viewer.call("train:start"))["state"]


def throughput_from_metrics(viewer, since: float, until: float, batch_size: int = BATCH) -> float:
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


# ---- numbers ------------------------------------------------------------------------------------

def percentile(values, q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def median(values) -> float:
    return percentile(values, 50)


def emit_json(result: dict, path: Path | None):
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
