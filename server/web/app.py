"""The Flask app factory: settings, the Socket.IO server, the engine and the web features."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask_socketio import SocketIO

from ..errors import UserError
from ..link.local import EngineEntry
from ..link.replica import ReplicaReader
from ..link.router import EngineRouter
from ..settings import REPO_ROOT, Settings
from .context import Playground

log = logging.getLogger(__name__)


REDIS_CHANNEL = "nnlp:socketio"  # Flask-SocketIO's message queue between web processes (--redis)


def signed_message_queue(settings: Settings):
    """Flask-SocketIO's Redis queue between web processes, its messages signed with the
    deployment's secret (server/link/redis_auth.py): one without it is dropped unread."""
    import socketio as socketio_library

    from ..link.redis_auth import Signer, SignedJson

    signed = SignedJson(Signer.of(settings.redis_secret))

    class SignedRedisManager(socketio_library.RedisManager):
        def set_server(self, server):
            super().set_server(server)
            self.json = signed  # set_server puts the packets' JSON module in its place

    return SignedRedisManager(settings.redis, channel=REDIS_CHANNEL, json=signed)


def create_app(config: dict | Settings | None = None, *, engines: EngineEntry | None = None, start=None) -> Flask:
    """Build the playground. `config` holds Settings fields; `engines`: how the engines run,
    handed in by the entry point (server.create_app, server/__main__.py: server/engine/entry.py);
    `start` (tests) is an EngineHost starter of their own."""
    if engines is None and start is None:
        raise ValueError("create_app needs the engines' entry (use server.create_app, which hands it in)")
    settings = config if isinstance(config, Settings) else Settings.model_validate(config or {})
    if settings.redis and not settings.redis_secret:
        # --role all on Redis without PLAYGROUND_REDIS_SECRET: this machine's web process and
        # engines share one made now (handed to the engines with their settings, never argv).
        import os
        import secrets
        from ..link.redis_auth import SECRET_ENV
        settings = settings.model_copy(update={"redis_secret": os.environ.get(SECRET_ENV) or secrets.token_hex(32)})
    app = Flask(__name__, static_folder=str(REPO_ROOT / "static"), template_folder=str(REPO_ROOT / "templates"))
    app.config["SETTINGS"] = settings
    app.config["TESTING"] = settings.testing
    # Requests bigger than this are refused before they reach a view (uploads set their own).
    app.config["MAX_CONTENT_LENGTH"] = 8 * 1024 * 1024

    from . import transport
    socketio_logger, engineio_logger = transport.library_loggers()
    socketio = SocketIO(
        app,
        logger=socketio_logger,  # bad input: a line a minute per connection, no tracebacks
        engineio_logger=engineio_logger,
        async_mode="threading",  # real threads (the web tier runs no torch, but blocking I/O)
        cors_allowed_origins=None,  # same origin only
        max_http_buffer_size=2 * 1024 * 1024,  # one message; a 1024x1024 canvas is 1 MiB
        ping_interval=settings.ping_interval_s,  # --ping-interval
        ping_timeout=settings.ping_timeout_s,  # --ping-timeout
        # Websocket only: Engine.IO's long-polling leaves a request thread blocked for good
        # when it drops a session over a bad or oversized POST (tests/app/test_limits.py).
        transports=["websocket"],
        # Several web processes (--redis): Flask-SocketIO's message queue between them. The engines'
        # broadcasts come over the bus instead, and each web process emits them to its own viewers.
        **({"client_manager": signed_message_queue(settings)} if settings.redis else {}),
    )
    playground = Playground(app=app, settings=settings, socketio=socketio, engine=None)  # type: ignore[arg-type]
    if settings.redis:
        from ..link.redis_router import RedisEngines
        playground.engine = RedisEngines(settings.redis, on_message=playground.dispatch,
                                         on_status=playground.engine_status, on_runs_lost=playground.runs_lost,
                                         secret=settings.redis_secret)
        playground.engines_elsewhere = True
        playground.web_id = playground.engine.client.web_id
        playground.replica = ReplicaReader(tracked=False)  # its engine is not this process's child
        if settings.role == "all":  # this machine's engines too, on the same Redis
            playground.local_engines = engines.redis_engines(settings)
    else:
        starters = [start] if start is not None else engines.pipe_starters(settings)
        playground.engine = EngineRouter(starters, on_message=playground.dispatch,
                                         on_status=playground.engine_status, on_runs_lost=playground.runs_lost)
    app.extensions["playground"] = playground

    @app.errorhandler(UserError)
    def refused_in_words(err):  # every HTTP view: a refusal in words, with its status
        return jsonify({"error": str(err)}), err.status

    from . import (access, addresses, assets, evaluate, explain, exports, hosts, inside, limits, polls, relays, spine,
                   viewers, watched)
    transport.install(socketio, playground.inline_events, limits.address_events_rate(settings.sockets_per_address))
    # hosts: only known Hosts (DNS rebinding), only the page's own Origin on writes; addresses:
    # whose a request is (behind a trusted proxy) and websockets per address, outside the Host
    # check; relays: the events that only relay to an engine command, from one table
    for feature in (hosts, addresses, access, limits, viewers, spine, assets, inside, explain, evaluate, exports, polls,
                    relays, watched):
        feature.init_app(app, playground)
    playground.engine.start()
    return app
