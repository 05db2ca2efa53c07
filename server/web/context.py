"""The one typed context every web feature gets: `init_app(app, playground)`.

It holds the services a feature may use (settings, the Socket.IO server, the engine, the
weights replica for predictions) and the places a feature plugs into (greeting a new viewer,
the engine's messages, the engine's status, events answered inline). Features talk to the
engine only through `playground.request(command, args)` and the messages they subscribe to.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from flask import Flask

from ..link.line import Engines
from ..link.names import SHARED
from ..link.replica import ReplicaReader
from ..settings import Settings

log = logging.getLogger(__name__)


class FollowUps:
    """One thread that runs, in the order given, what engine messages set off and that asks the
    engine: the messages arrive on the engine link's reader thread, which also reads the
    answers, so a handler waiting there for one waited for itself (with one engine, putting
    away a run with two watchers froze the server for a minute)."""

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def put(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="engine-follow-ups", daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("following up an engine message failed")

    def close(self) -> None:
        self._jobs.put(None)


@dataclass
class Playground:
    app: Flask
    settings: Settings
    socketio: Any  # flask_socketio.SocketIO
    engine: Engines  # the engines, one machine or Redis (server/link/router.py, redis_router.py)
    replica: ReplicaReader = field(default_factory=ReplicaReader)
    control_token: str = ""
    # callables(sid) run when a viewer connects (after it got the state)
    on_connect: list[Callable[[str], None]] = field(default_factory=list)
    # engine message topic -> callables(message)
    on_message: dict[str, list[Callable[[dict], None]]] = field(default_factory=lambda: defaultdict(list))
    # callables({"status": "up"|"down", "reason", "restarts"})
    on_engine_status: list[Callable[[dict], None]] = field(default_factory=list)
    # Socket.IO events answered in the connection's own thread: name -> handler(environ, *args)
    inline_events: dict[str, Callable] = field(default_factory=dict)
    # callables(sid, old run key, new run key): a viewer moved to another run (web/viewers.py)
    on_switch: list[Callable[[str, str, str], None]] = field(default_factory=list)
    on_disconnect: list[Callable[[str], None]] = field(default_factory=list)  # callables(sid)
    on_presence: list[Callable[[], None]] = field(default_factory=list)  # every minute: tell the engines
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    web_id: str = "local"  # this web process, as the engines know it (--redis: its id on Redis)
    # callables(run keys, words): an engine stopped, and these private runs with it
    on_runs_lost: list[Callable[[list, str], None]] = field(default_factory=list)
    viewers: Any = None  # which run each viewer watches, and who it is (web/viewers.py Viewers)
    # private runs' weights replicas for their predictions: run key -> ReplicaReader
    replicas: dict = field(default_factory=dict)
    engines_elsewhere: bool = False  # --redis: the engines are not this process's children (maybe other machines)
    local_engines: list = field(default_factory=list)  # --redis --role all: this machine's engines
    latest_state: Optional[dict] = None  # the shared run's last state message (for /healthz)
    host_policy: Any = None  # the Hosts and Origins this server answers (web/hosts.py)
    store_notices: list = field(default_factory=list)  # what was wrong with the runs database at start
    storage_problem: Optional[str] = None  # why saving fails now (None: it works)
    follow_ups: FollowUps = field(default_factory=FollowUps)  # message handlers that ask the engine
    askers: Any = None  # who waits for costly engine commands (web/askers.py)

    def request(self, command: str, args: Optional[dict] = None, **kwargs) -> dict:
        """Ask the engine; refusals raise UserError in words (EngineUnavailable when it is down)."""
        return self.engine.request(command, args, **kwargs)

    def replica_of(self, run: str) -> Optional[ReplicaReader]:
        return self.replica if run == SHARED else self.replicas.get(run)

    def runs_lost(self, runs: list, why: str) -> None:
        for handler in list(self.on_runs_lost):
            try:
                handler(runs, why)
            except Exception:
                log.exception("telling the viewers of lost runs failed")

    def subscribe(self, topic: str, handler: Callable[[dict], None], *, asks_engine: bool = False) -> None:
        """`handler(message)` for each engine message of `topic`. One that asks the engine
        (`asks_engine`) runs on the follow-ups thread, never on the reader of the answers."""
        if asks_engine:
            plain = handler

            def handler(message, plain=plain):
                self.follow_ups.put(lambda: plain(message))
        self.on_message[topic].append(handler)

    def dispatch(self, message: dict) -> None:
        """An engine message (in the engine link's reader thread): to every feature that asked."""
        if message.get("topic") == "state" and message.get("run") == SHARED:
            self.latest_state = message["payload"]
        for handler in list(self.on_message.get(message.get("topic"), ())):
            try:
                handler(message)
            except Exception:
                log.exception("handling the engine's %s message failed", message.get("topic"))

    def engine_status(self, status: dict) -> None:
        for handler in list(self.on_engine_status):
            try:
                handler(status)
            except Exception:
                log.exception("handling the engine's status failed")

    _stopping: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    def shutdown(self) -> None:
        """Stop serving: every viewer is disconnected, the engine records every run up to its
        last step and exits. Safe to call more than once, from any thread."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            for hook in list(self.on_shutdown):
                hook()
            from .transport import disconnect_everyone
            try:
                disconnect_everyone(self.socketio)
            except Exception:
                log.exception("disconnecting the viewers failed")
            self.engine.close()
            self.follow_ups.close()
            stop_local_engines = getattr(self.local_engines, "close", None)
            if stop_local_engines is not None:  # SupervisedEngines: no restart while stopping
                stop_local_engines()
            else:
                for engine in self.local_engines:
                    engine.close()
            self.replica.close()
            for replica in list(self.replicas.values()):
                replica.close()

    close = shutdown

