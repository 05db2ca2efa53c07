"""The Flask app factory: settings, the Socket.IO server, the engine and the web features."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask_socketio import SocketIO

from ..errors import UserError
from ..link.local import engine_process_starter, engine_threads_starter
from ..link.replica import ReplicaReader
from ..link.router import EngineRouter
from ..settings import REPO_ROOT, Settings
from .context import Playground

log = logging.getLogger(__name__)


def engine_starters(settings: Settings, dataset=None) -> list:
    """How this app's engines run: processes of their own (what users get), or, when a test
    hands in a dataset, threads of this process (same pipe, same codec, same commands)."""
    if dataset is None:
        options = settings.model_dump(mode="json")
        return [engine_process_starter(options, index) for index in range(settings.engines)]
    from ..engine.runtime import make_engine_factory  # tests only: this process then has torch
    return [engine_threads_starter(lambda opts: make_engine_factory(settings, dataset=dataset, **opts), index)
            for index in range(settings.engines)]


REDIS_CHANNEL = "nnlp:socketio"  # server/link/redis_engine.py SOCKETIO_CHANNEL


def start_redis_engines(settings: Settings, dataset=None) -> list:
    """`--redis` with `--role all`: this machine's engines, as `--role engine` processes would be
    (threads of this process when a test hands in a dataset)."""
    from ..link.local import redis_engine_process, redis_engine_thread
    if dataset is None:
        return [redis_engine_process(settings.model_dump(mode="json"), index) for index in range(settings.engines)]
    return [redis_engine_thread(settings, dataset, index) for index in range(settings.engines)]


def create_app(config: dict | Settings | None = None, *, dataset=None, start=None) -> Flask:
    """Build the playground. `config` holds Settings fields; `dataset` (tests) runs the engine
    in a thread with that data; `start` (tests) is an EngineHost starter of their own."""
    settings = config if isinstance(config, Settings) else Settings.model_validate(config or {})
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
        ping_interval=10,
        ping_timeout=20,
        # Websocket only: Engine.IO's long-polling leaves a request thread blocked for good
        # when it drops a session over a bad or oversized POST (tests/test_limits.py).
        transports=["websocket"],
        # Several web processes (--redis): Flask-SocketIO's message queue; the engines emit their
        # broadcasts into it (server/link/redis_engine.py) and each web process delivers them.
        **({"message_queue": settings.redis, "channel": REDIS_CHANNEL} if settings.redis else {}),
    )
    playground = Playground(app=app, settings=settings, socketio=socketio, engine=None)  # type: ignore[arg-type]
    if settings.redis:
        from ..link.redis_router import RedisEngines
        playground.engine = RedisEngines(settings.redis, on_message=playground.dispatch,
                                         on_status=playground.engine_status, on_runs_lost=playground.runs_lost)
        playground.fanned_out = True  # broadcasts come through the message queue, not from here
        playground.web_id = playground.engine.client.web_id
        playground.replica = ReplicaReader(tracked=False)  # its engine is not this process's child
        if settings.role == "all":  # this machine's engines too, on the same Redis
            playground.local_engines = start_redis_engines(settings, dataset)
    else:
        starters = [start] if start is not None else engine_starters(settings, dataset)
        playground.engine = EngineRouter(starters, on_message=playground.dispatch,
                                         on_status=playground.engine_status, on_runs_lost=playground.runs_lost)
    app.extensions["playground"] = playground

    @app.errorhandler(UserError)
    def refused_in_words(err):  # every HTTP view: a refusal in words, with its status
        return jsonify({"error": str(err)}), err.status

    from . import access, assets, evaluate, explain, exports, hosts, inside, limits, polls, relays, runs, spine
    transport.install(socketio, playground.inline_events)
    # hosts: only known Hosts (DNS rebinding), only the page's own Origin on writes; relays: the
    # events that only relay to an engine command, from one table
    for feature in (hosts, access, limits, runs, spine, assets, inside, explain, evaluate, exports, polls, relays):
        feature.init_app(app, playground)
    playground.engine.start()
    return app
