"""The Flask app factory: wires settings, data, the shared training session and the web layer."""
from __future__ import annotations

import logging
import threading

import torch
from flask import Flask
from engineio import packet as eio_packet
from flask_socketio import SocketIO

from .data import DataError, load_dataset
from .session import TrainingSession
from .settings import Settings
from .trainer import resolve_device

log = logging.getLogger(__name__)


def serialize_packet_sends(server) -> None:
    """Send each Socket.IO packet whole. A binary event is a header frame plus attachment
    frames; two threads sending to one client (the training thread's broadcast, a handler's
    acknowledgement) could otherwise interleave them and the client would misread the stream.

    Each client has its own lock, held only while a packet's parts are queued: encoding (JSON,
    splitting out binary) happens outside it, and clients never wait on one another (a global
    lock held while a 200 kB frame was encoded kept every prediction's answer waiting)."""
    from contextlib import nullcontext

    from socketio import packet as socketio_packet

    def client_lock(eio_sid):
        socket = server.eio.sockets.get(eio_sid)
        if socket is None:  # gone (or a test client): nothing to interleave with
            return nullcontext()
        return socket.__dict__.setdefault("_playground_send_lock", threading.Lock())

    def send_packet_whole(eio_sid, pkt):
        encoded = pkt.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        with client_lock(eio_sid):
            for part in parts:
                server.eio.send(eio_sid, part)

    server._send_packet = send_packet_whole
    # An emit without an acknowledgement (every broadcast) skips _send_packet: the manager
    # queues each part itself. Same packet, encoded once, queued whole per client.
    manager = server.manager
    manager_emit = manager.emit

    def emit_whole(event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        room = to or room
        if callback or namespace not in manager.rooms:
            return manager_emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)
        data = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = server.packet_class(socketio_packet.EVENT, namespace=namespace, data=[event] + data).encode()
        parts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in (encoded if isinstance(encoded, list) else [encoded])]
        for sid, eio_sid in manager.get_participants(namespace, room):
            if sid not in skip:
                with client_lock(eio_sid):
                    for part in parts:
                        server._send_eio_packet(eio_sid, part)

    manager.emit = emit_whole


MALLOC_ARENAS = 2  # glibc malloc arenas for this process (see limit_malloc_arenas)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas. By default each thread that allocates can get its own arena
    (up to 8 per core); a new run's weights and optimizer state are made in one request thread,
    used by the training thread and freed in yet another, and the freed memory, scattered over
    many arenas, is not reused: the server grew 3-7 MB with every run (bench/endurance.py). With
    2 arenas it stays flat. False where the C library is not glibc (nothing to do there)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    M_ARENA_MAX = -8
    return bool(mallopt(M_ARENA_MAX, arenas))


def create_app(config: dict | Settings | None = None, *, dataset=None) -> Flask:
    """Build the playground. `config` holds Settings fields; `dataset` (tests) skips loading."""
    settings = config if isinstance(config, Settings) else Settings.model_validate(config or {})
    app = Flask(__name__, static_folder="../static", template_folder="../templates")
    app.config["SETTINGS"] = settings
    app.config["TESTING"] = settings.testing
    # Requests bigger than this are refused before they reach a view (uploads included).
    app.config["MAX_CONTENT_LENGTH"] = 8 * 1024 * 1024

    limit_malloc_arenas()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    device = resolve_device(settings.device)
    if dataset is None:
        dataset = load_dataset(
            settings.dataset, data_dir=settings.data_dir, embedded_dir=settings.embedded_dir,
            **({"mirrors": settings.mirrors} if settings.mirrors else {}),
            allow_download=settings.allow_download)
    session = TrainingSession(dataset, device=device)

    socketio = SocketIO(
        app,
        async_mode="threading",  # CPU-heavy PyTorch: real threads, not green threads
        cors_allowed_origins=None,  # same origin only
        max_http_buffer_size=2 * 1024 * 1024,  # one message; a 1024x1024 canvas is 1 MiB
        ping_interval=10,
        ping_timeout=20,
        # Websocket only: Engine.IO's long-polling leaves a request thread blocked for good
        # when it drops a session over a bad or oversized POST (tests/test_limits.py).
        transports=["websocket"],
    )
    serialize_packet_sends(socketio.server)

    connect_hooks: list = []  # feature modules greet new viewers through these
    app.extensions["playground"] = {"session": session, "socketio": socketio, "settings": settings,
                                    "connect_hooks": connect_hooks}

    from .web import access, evaluate, events, explain, hosts, inside, limits, routes
    routes.init_app(app, session)
    hosts.init_app(app, socketio)  # only known Hosts (DNS rebinding), only own pages' Origin on writes
    access.init_app(app, socketio, connect_hooks)  # control token, local-vs-remote viewers
    limits.init_app(app, socketio)  # message size caps, rate limits
    events.init_app(socketio, session, connect_hooks)
    # Features, each owning its own events and routes: live views ("look inside"), the
    # nn.Linear explainer, evaluation/runs/checkpoints.
    for feature in (inside, explain, evaluate):
        feature.init_app(app, socketio, session)
    return app


__all__ = ["create_app", "DataError"]
