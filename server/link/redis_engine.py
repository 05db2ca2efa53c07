"""An engine on the Redis line (`python -m server --redis URL --role engine`): the same Engine
as on one machine, its commands taken from Redis (server/link/redis_bus.py) instead of a pipe.

- Broadcasts (state, metrics, epoch, evaluation, storage, runs) go out through Flask-SocketIO's
  message queue (python-socketio's write-only RedisManager, "emitting from an external
  process"): every web process hands them to its own viewers of that run's room.
- Everything the web processes keep track of (frames, whose replica is where, run:closed, and
  the broadcasts too) goes on the bus's per-run channels.
- The shared run has one holder at a time: a lease in Redis. The engine that gets it carries the
  shared run on from its last record (the page says so in the state's notice); one that loses
  it (cut off from Redis) stops its copy.
- Private runs made here are registered as held by this engine, and let go when put away.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

import socketio

from .names import SHARED, room_of
from .redis_bus import PREFIX, EngineEndpoint, connect, default_engine_id, engine_key

log = logging.getLogger(__name__)

SOCKETIO_CHANNEL = PREFIX + "socketio"  # Flask-SocketIO's message queue channel (web/app.py)
FANNED_OUT = ("state", "metrics", "epoch", "evaluation", "storage", "runs")
HOUSEKEEPING_S = 0.25


class SocketIOFanout:
    """Emits into Flask-SocketIO's message queue; every web process delivers to its viewers."""

    def __init__(self, redis_url: str):
        self.manager = socketio.RedisManager(redis_url, channel=SOCKETIO_CHANNEL, write_only=True)

    def __call__(self, message: dict) -> None:
        topic, run, payload = message.get("topic"), message.get("run"), message.get("payload")
        if topic not in FANNED_OUT or payload is None:
            return
        try:
            self.manager.emit(topic, payload, namespace="/", room=room_of(topic, run))
        except Exception as err:  # Redis away: the web processes resync when it is back
            log.warning("could not fan %s out through Redis: %s", topic, err)


def run_engine(settings, *, stop: threading.Event, dataset=None, ready: Optional[threading.Event] = None) -> None:
    """Serve as an engine on settings.redis until `stop` is set; then record every run and go."""
    from ..engine.runtime import make_engine_factory

    engine_id = settings.engine_id or default_engine_id()
    endpoint = EngineEndpoint(settings.redis, engine_id,
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

    fanout = SocketIOFanout(settings.redis)
    engine_box: dict = {}

    def publish(message: dict) -> None:
        endpoint.publish(message)
        fanout(message)
        if message.get("topic") == "run:closed":
            endpoint.release(message["run"])

    engine = make_engine_factory(settings, dataset=dataset, engine_id=engine_id, holds_shared=False,
                                 stale=is_stale)(publish)
    engine_box["engine"] = engine

    def handle(name: str, args: dict):
        result = engine.command(name, args)
        if name == "run:create":
            endpoint.hold(result["run"])
        return result

    def took_shared():
        log.info("%s has the shared run's lease", engine_id)
        engine.hold_shared(restore=True, words=(
            f"The engine that trained the shared run stopped; engine {engine_id} took it over. "))
        log.info("%s holds the shared run now", engine_id)
        endpoint.publish({"topic": "holder", "run": SHARED, "payload": {"engine": engine_id}})

    def lost_shared(reason):
        log.warning("%s no longer holds the shared run: %s", engine_id, reason)
        engine.drop_shared()

    endpoint.serve(handle)
    lease = endpoint.lease(SHARED, on_acquired=took_shared, on_lost=lost_shared)
    if ready is not None:
        ready.set()
    log.info("engine %s serves on %s", engine_id, settings.redis)
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
