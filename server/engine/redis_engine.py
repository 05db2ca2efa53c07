"""An engine on the Redis line (`python -m server --redis URL --role engine`): the same Engine
as on one machine, its commands taken from Redis (server/link/redis_bus.py) instead of a pipe.

- Every message (frames, broadcasts such as state, metrics and runs, whose replica is where,
  run:closed) goes on the bus's per-run channels; every web process hears them and hands the
  broadcasts to its own viewers (server/web/spine.py). This process loads no web library.
- The shared run has one holder at a time: a lease in Redis. The engine that gets it carries the
  shared run on from its last record (the page says so in the state's notice); one that loses
  it (cut off from Redis) stops its copy.
- Private runs made here are registered as held by this engine, and let go when put away.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Optional

from ..link.line import HOUSEKEEPING_S
from ..link.names import SHARED
from ..link.redis_bus import connect, describe_url, engine_key
from .redis_endpoint import EngineEndpoint, default_engine_id
from .process import die_with_parent, name_this_process

# The lease on the shared run shows on Redis a moment before its run is built (restored from its
# record): a command about it that arrives meanwhile waits for it rather than hear "no run".
SHARED_BUILD_WAIT_S = 30.0
HELD_GRACE_S = 1.0  # the lease taken in Redis, not yet told to this engine's lease thread

log = logging.getLogger(__name__)


def process_main(options: dict, index: int) -> None:
    """A local engine process on the Redis line (`--redis` with `--role all`, server/engine/entry.py)."""
    from ..settings import Settings

    die_with_parent()
    name_this_process(f"nnlp-engine-{index}")
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the web tier stops us (SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run_engine(Settings.model_validate(options), stop=stop)


def run_engine(settings, *, stop: threading.Event, dataset=None, ready: Optional[threading.Event] = None) -> None:
    """Serve as an engine on settings.redis until `stop` is set; then record every run and go."""
    from .runtime import make_engine_factory

    engine_id = settings.engine_id or default_engine_id()
    endpoint = EngineEndpoint(settings.redis, engine_id, secret=settings.redis_secret,
                              on_status=lambda status: log.warning("Redis: %s", status.get("reason") or status["status"]))
    alive = connect(settings.redis)

    def is_stale(holder) -> bool:
        """An unfinished run is over when the engine recording it is not alive on this Redis."""
        if holder is None or holder == engine_id:
            return True
        try:
            return not alive.exists(engine_key(holder))
        except Exception:
            return False  # cannot tell: leave it

    def publish(message: dict) -> None:
        endpoint.publish(message)
        if message.get("topic") == "run:closed":
            endpoint.release(message["run"])

    engine = make_engine_factory(settings, dataset=dataset, engine_id=engine_id, holds_shared=False,
                                 stale=is_stale)(publish)

    shared_built = threading.Event()
    # The commands that make this engine take a new run on: later requests for it find it here.
    RUNS_TAKEN_ON = ("run:create", "watch:open")  # a viewer's own copy, a script's own network

    def handle(name: str, args: dict):
        about_shared = (args or {}).get("run", SHARED) == SHARED
        if about_shared and not shared_built.is_set() and lease.wait_held(HELD_GRACE_S):
            shared_built.wait(SHARED_BUILD_WAIT_S)
        result = engine.command(name, args)
        if name in RUNS_TAKEN_ON:
            endpoint.hold(result["run"])
        return result

    def took_shared():
        log.info("%s has the shared run's lease", engine_id)
        try:
            engine.hold_shared(restore=True, words=(
                f"The engine that trained the shared run stopped; engine {engine_id} took it over. "))
        finally:
            shared_built.set()
        log.info("%s holds the shared run now", engine_id)
        endpoint.publish({"topic": "holder", "run": SHARED, "payload": {"engine": engine_id}})

    def lost_shared(reason):
        log.warning("%s no longer holds the shared run: %s", engine_id, reason)
        shared_built.clear()
        engine.drop_shared()

    lease = endpoint.lease(SHARED, on_acquired=took_shared, on_lost=lost_shared)  # before handle() reads it
    endpoint.serve(handle)
    if ready is not None:
        ready.set()
    log.info("engine %s serves on %s", engine_id, describe_url(settings.redis))
    try:
        while not stop.wait(HOUSEKEEPING_S):
            try:
                engine.housekeeping()
            except Exception:
                log.exception("engine housekeeping failed")
    finally:
        log.info("engine %s is stopping: recording every run up to its last step", engine_id)
        lease.close(release=False)  # the next holder waits out the ttl, then carries on from the record
        engine.close()
        endpoint.close()
        alive.close()
