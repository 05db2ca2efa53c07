"""An engine's place on the Redis line (server/link/redis_bus.py): `EngineEndpoint` takes the
commands addressed to this engine, answers them through the line's core (server/link/line.py
`answer_to`, `Outbox`), publishes its messages on the per-run channels, keeps itself registered
as alive and renews the runs it holds; `Lease` holds the shared run, one holder at a time.
Plain Python and redis-py: no torch here (tests/support/redis_echo_engine.py serves with it)."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable, Optional

from redis.lock import Lock

from ..errors import EngineUnavailable, UserError
from ..link.codec import pack, unpack
from ..link.line import COMMAND_THREADS, REQUEST_TIMEOUT_S, Commands, Outbox
from ..link.redis_auth import SeenCommands, Signer
from ..link.names import SHARED
from ..link.redis_bus import (AWAY_S, BLOCK_S, CLOCK_SLACK_S, ENGINE_TTL_S, HEARTBEAT_S, LEASE_POLL_S, LEASE_TTL_S,
                              MAX_BACKLOG, QUEUE_TTL_S, REDIS_ERRORS, RUN_TTL_S, Reachability, client_of,
                              commands_key, connect, describe_url, engine_key, engines_key, held_key, keep, let_go,
                              load_key, messages_channel, run_key, take, why)

log = logging.getLogger(__name__)


# --- the lease --------------------------------------------------------------------------------


class Lease:
    """One holder at a time for `name` (key `nnlp:run:<name>`, whose value is the holder).

    `start()` runs a thread: wait (try SET NX every `poll_s`), hold (renew every ttl/3), and
    when lost, wait again; `on_acquired()` / `on_lost(reason)` are called from that thread.
    `close()` stops it and deletes the key if it is still ours.
    """

    def __init__(self, redis_or_url, name: str = SHARED, holder: str = "", *, ttl_s: float = LEASE_TTL_S,
                 poll_s: float = LEASE_POLL_S, on_acquired: Callable[[], None] = lambda: None,
                 on_lost: Callable[[str], None] = lambda reason: None,
                 reachability: Optional[Reachability] = None):
        if not holder:
            raise ValueError("a lease needs a holder id")
        self.redis, self._owns_client = client_of(redis_or_url)
        self.name, self.holder = name, holder
        self.key = run_key(name)
        self.ttl_s, self.poll_s = ttl_s, poll_s
        self.on_acquired, self.on_lost = on_acquired, on_lost
        self.reachability = reachability
        self.lock = held_key(self.redis, self.key, holder, ttl_s)
        self._held = threading.Event()
        self._stop = threading.Event()
        self._renewed_at = 0.0  # monotonic time a renewal was sent that then succeeded
        self._redis_run_id: Optional[str] = None
        self._hold_off_until = 0.0
        self.thread: Optional[threading.Thread] = None

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def wait_held(self, timeout: float) -> bool:
        return self._held.wait(timeout)

    # single steps (the thread's, and usable on their own)
    def try_acquire(self) -> bool:
        return take(self.lock)

    def renew(self) -> bool:
        """True while the lease is ours (renewed, or taken back after Redis lost it)."""
        return keep(self.lock)

    def release(self) -> bool:
        """Delete the key if it is ours; never someone else's."""
        return let_go(self.lock)

    # the thread
    def start(self) -> "Lease":
        self.thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self.thread.start()
        return self

    def _saw_redis(self) -> None:
        """A waiter that sees Redis restarted (a new run_id) or come back holds off one ttl, so
        the holder takes its lease back before anyone else may."""
        run_id = self.redis.info("server").get("run_id")
        if self._redis_run_id is not None and run_id != self._redis_run_id:
            self._hold_off_until = time.monotonic() + self.ttl_s
        self._redis_run_id = run_id

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.held:
                    self._hold_once()
                else:
                    self._wait_once()
                if self.reachability:
                    self.reachability.ok()
            except REDIS_ERRORS as err:
                if self.reachability:
                    self.reachability.failed(err)
                if not self.held:
                    self._hold_off_until = time.monotonic() + self.ttl_s
                elif time.monotonic() - self._renewed_at >= self.ttl_s:
                    self._lose(f"could not renew the lease on {self.name} for {self.ttl_s:g} s ({why(err)})")
                self._stop.wait(AWAY_S)
            except Exception:
                log.exception("the lease on %s failed", self.name)
                self._stop.wait(self.poll_s)

    def _wait_once(self) -> None:
        self._saw_redis()
        if time.monotonic() >= self._hold_off_until:
            sent = time.monotonic()
            if self.try_acquire():
                self._renewed_at = sent
                self._held.set()
                log.info("%s holds the lease on %s", self.holder, self.name)
                self._call(self.on_acquired)
                return
        self._stop.wait(self.poll_s)

    def _hold_once(self) -> None:
        sent = time.monotonic()
        if time.monotonic() - self._renewed_at >= self.ttl_s:
            self._lose(f"the lease on {self.name} lapsed before it could be renewed")
            return
        if self.renew():
            self._renewed_at = sent
            self._stop.wait(self.ttl_s / 3)
        else:
            self._lose(f"another holder ({self._current_holder()}) has the lease on {self.name}")

    def _current_holder(self) -> str:
        try:
            value = self.redis.get(self.key)
        except REDIS_ERRORS:
            return "unknown"
        return value.decode() if value else "nobody"

    def _lose(self, reason: str) -> None:
        if not self._held.is_set():
            return
        self._held.clear()
        log.warning("%s lost the lease on %s: %s", self.holder, self.name, reason)
        self._call(self.on_lost, reason)

    def _call(self, callback, *args) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("a lease callback on %s failed", self.name)

    def close(self, *, release: bool = True) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(self.ttl_s)
        if release and self.held:
            self.release()
        self._held.clear()
        if self._owns_client:
            self.redis.close()


# --- the engine side --------------------------------------------------------------------------


def default_engine_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class EngineEndpoint:
    """An engine process's place on the bus.

        endpoint = EngineEndpoint(redis_url, engine_id, on_status=...)
        engine = make_engine(endpoint.publish)       # publish({"topic", "run", "payload"})
        endpoint.serve(engine.command)               # handler(name, args) -> result
        endpoint.hold("p-3f9a1c2b")                  # this engine now holds that run
        lease = endpoint.lease(SHARED, on_acquired=..., on_lost=...)
        ...
        endpoint.close()

    Commands are run by COMMAND_THREADS threads (a slow one never holds up a pause; costly ones
    apart, link/line.py `Commands`); a
    `UserError` is answered with its words, status and type, anything else as an internal
    error (logged). `on_run_lost(run)` hears that another engine holds a run this one held.
    """

    def __init__(self, redis_url: str, engine_id: Optional[str] = None, *,
                 on_status: Callable[[dict], None] = lambda status: None,
                 on_run_lost: Callable[[str], None] = lambda run: None,
                 command_threads: int = COMMAND_THREADS, claim_timeout_s: float = ENGINE_TTL_S + 1.0,
                 secret: Optional[str] = None):
        self.redis_url = redis_url
        # Everything it sends is signed, every command it takes must be (redis_auth.py).
        self.signer = Signer.of(secret)
        self._seen = SeenCommands()
        self.engine_id = engine_id or default_engine_id()
        if not self.engine_id or any(ch in self.engine_id for ch in " \t\r\n"):
            raise UserError("an engine id must be a word without spaces")
        self.token = uuid.uuid4().hex
        self.redis = connect(redis_url)
        self.reachability = Reachability(redis_url, on_status)
        self.on_run_lost = on_run_lost
        # Everything this engine sends, in order; while Redis is away it keeps the newest
        # MAX_BACKLOG and sends them when it is back (answers nobody waits for are dropped).
        self.sender = Outbox(self._send, lost=REDIS_ERRORS, on_lost=self._away, on_sent=self.reachability.ok,
                             backlog=MAX_BACKLOG, name="redis-sender")
        self._alive = held_key(self.redis, engine_key(self.engine_id), self.token, ENGINE_TTL_S)
        self._runs: set[str] = set()
        self._runs_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._leases: list[Lease] = []
        self._stop = threading.Event()
        self._handler: Optional[Callable[[str, dict], object]] = None
        self._commands = Commands(lambda name, args: self._handler(name, args), self._send_answer,
                                  threads=command_threads, extra={"engine": self.engine_id},
                                  clock_slack_s=CLOCK_SLACK_S)
        self._since = time.time()
        self._register(claim_timeout_s)
        self._heartbeat = threading.Thread(target=self._beat, name="engine-heartbeat", daemon=True)
        self._heartbeat.start()
        self._reader: Optional[threading.Thread] = None

    # ---- registry ---------------------------------------------------------------------------
    def _register(self, claim_timeout_s: float) -> None:
        """Claim this engine id (SET NX): an id alive elsewhere is refused, in words. A previous
        process with this id that died leaves its key for at most ENGINE_TTL_S: we wait it out."""
        try:
            if not self._alive.acquire(blocking=True, blocking_timeout=claim_timeout_s, sleep=0.25,
                                       token=self.token):
                self.redis.close()
                raise UserError(f"an engine with the id {self.engine_id!r} is already running on this Redis; "
                                "give each engine its own id")
            self.redis.sadd(engines_key(), self.engine_id)
            self._write_load()
        except REDIS_ERRORS as err:
            self.redis.close()
            raise EngineUnavailable(f"Redis is unreachable at {describe_url(self.redis_url)} ({why(err)})") from None

    def _write_load(self) -> None:
        with self._load_lock:  # so an older count never overwrites a newer one
            held = self.held_runs()
            info = {"engine": self.engine_id, "runs": len(held), "held": sorted(held), "pid": os.getpid(),
                    "host": socket.gethostname(), "since": self._since}
            self.redis.set(load_key(self.engine_id), self.signer.seal(pack(info)), px=int(ENGINE_TTL_S * 1000))

    def _tell_load(self) -> None:
        try:
            self._write_load()
        except REDIS_ERRORS as err:
            self.reachability.failed(err)

    def _beat(self) -> None:
        next_runs = 0.0
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if not keep(self._alive):
                    log.error("another process took the engine id %s", self.engine_id)
                self.redis.sadd(engines_key(), self.engine_id)
                if time.monotonic() >= next_runs:
                    self._renew_runs()
                    next_runs = time.monotonic() + RUN_TTL_S / 3
                self._write_load()
                self.reachability.ok()
            except REDIS_ERRORS as err:
                self.reachability.failed(err)
                next_runs = 0.0  # renew the runs as soon as Redis is back
            except Exception:
                log.exception("the engine heartbeat failed")

    def _renew_runs(self) -> None:
        with self._runs_lock:
            runs = sorted(self._runs)  # not the leases: they renew themselves, on their own ttl
        for run in runs:
            if not keep(self._run_lock(run)):
                with self._runs_lock:
                    self._runs.discard(run)
                log.warning("run %s is held by another engine now; %s lets it go", run, self.engine_id)
                try:
                    self.on_run_lost(run)
                except Exception:
                    log.exception("on_run_lost(%s) failed", run)

    # ---- runs ----------------------------------------------------------------------------
    def _run_lock(self, run: str) -> Lock:
        return held_key(self.redis, run_key(run), self.engine_id, RUN_TTL_S)

    def hold(self, run: str) -> bool:
        """Record that this engine holds `run` (True), unless another alive engine does (False).
        Call it when a command makes this engine take a run on (a new run, or one restored)."""
        try:
            if not take(self._run_lock(run)):
                return False
            with self._runs_lock:
                self._runs.add(run)
            self._write_load()
        except REDIS_ERRORS as err:
            self.reachability.failed(err)
            raise self.reachability.unavailable() from None
        return True

    def release(self, run: str) -> None:
        with self._runs_lock:
            self._runs.discard(run)
        try:
            let_go(self._run_lock(run))
            self._write_load()
        except REDIS_ERRORS as err:
            self.reachability.failed(err)  # its key expires by itself

    def held_runs(self) -> set[str]:
        with self._runs_lock:
            runs = set(self._runs)
        runs.update(lease.name for lease in self._leases if lease.held)
        return runs

    def lease(self, name: str = SHARED, **options) -> Lease:
        """A started Lease on `name` held by this engine (counted in its load while held)."""
        acquired, lost = options.pop("on_acquired", lambda: None), options.pop("on_lost", lambda reason: None)

        def on_acquired():
            self._tell_load()  # new runs go elsewhere from now on, not from the next heartbeat
            acquired()

        def on_lost(reason):
            self._tell_load()
            lost(reason)

        lease = Lease(self.redis, name, self.engine_id, reachability=self.reachability,
                      on_acquired=on_acquired, on_lost=on_lost, **options)
        self._leases.append(lease)
        return lease.start()

    # ---- commands and messages -------------------------------------------------------------
    def publish(self, message: dict) -> None:
        """Send an engine message `{"topic", "run", "payload"}` to every web process (never
        blocks: the sender thread does it)."""
        self.sender.put({"kind": "message", "topic": message.get("topic"), "run": message.get("run") or SHARED,
                         "payload": message.get("payload")})

    def _send(self, item: dict, route) -> None:
        """The Outbox's channel: a message onto its run's channel, an answer into its asker's list."""
        if route is None:
            self.redis.publish(messages_channel(item["run"]), self.signer.seal(pack(item)))
            return
        reply_to, expires = route
        if time.time() > expires:
            return  # its asker gave up
        data = self.signer.seal(pack(item))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(reply_to, data)
            pipe.pexpire(reply_to, int(QUEUE_TTL_S * 1000))
            pipe.execute()

    def _away(self, err: Exception) -> bool:
        self.reachability.failed(err)
        time.sleep(AWAY_S)
        return True  # send it again when Redis is back

    def serve(self, handler: Callable[[str, dict], object]) -> None:
        """Start taking commands: each runs as `handler(name, args)` in a command thread."""
        self._handler = handler
        self._reader = threading.Thread(target=self._read, name="engine-commands", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.redis.blpop([commands_key(self.engine_id)], timeout=BLOCK_S)
                self.reachability.ok()
            except REDIS_ERRORS as err:
                self.reachability.failed(err)
                self._stop.wait(AWAY_S)
                continue
            if item is None:
                continue
            data = self.signer.open(item[1], "command")
            if data is None:
                continue  # not from a process with this deployment's secret: dropped unread
            try:
                command = unpack(data)
            except Exception:
                log.warning("an unreadable command on %s was dropped", commands_key(self.engine_id))
                continue
            if not isinstance(command, dict) or command.get("kind") != "command":
                continue
            if not isinstance(command.get("reply_to"), str):
                continue
            expires = command.get("sent", 0) + command.get("timeout", REQUEST_TIMEOUT_S) + CLOCK_SLACK_S
            if time.time() > expires:
                log.info("dropped %s: its asker gave up", command.get("name"))
                continue
            if not self._seen.first_time((command["reply_to"], command.get("id")), expires):
                log.warning("dropped %s: a copy of a command already taken", command.get("name"))
                continue
            self._commands.submit(command)

    def _send_answer(self, reply: dict, command: dict) -> None:
        expires = command.get("sent", 0) + command.get("timeout", REQUEST_TIMEOUT_S) + CLOCK_SLACK_S
        self.sender.put(reply, (command["reply_to"], expires))

    @property
    def threads(self) -> list[threading.Thread]:
        threads = [self._heartbeat, self.sender.thread] + [lease.thread for lease in self._leases]
        return [t for t in threads + [self._reader] if t is not None]

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking commands, finish those running, send what is queued, let go of every run
        and lease, and leave the registry."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout)
        self._commands.shutdown()
        self.sender.close(timeout)
        self._heartbeat.join(timeout)
        for lease in self._leases:
            lease.close()
        try:
            for run in self.held_runs():
                let_go(self._run_lock(run))
            let_go(self._alive)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(load_key(self.engine_id))
                pipe.srem(engines_key(), self.engine_id)
                pipe.execute()
        except REDIS_ERRORS:
            pass  # everything it held expires by itself
        self.redis.close()
