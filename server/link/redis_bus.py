"""The engine line over Redis: any number of web processes and engine processes, on any
machines, share one Redis. The shapes are the pipe's (server/link/client.py, server/engine/
process.py): commands `{"kind": "command", "id", "name", "args"}`, answers `{"kind": "answer",
"id", "ok", "result" | "error", "type", "status"}`, messages `{"kind": "message", "topic", "run",
"payload"}`, all MessagePack (server/link/codec.py: plain data and bytes).

- `EngineEndpoint` (an engine process): takes the commands addressed to it, hands each to a
  handler `(name, args) -> result` (a `UserError` comes back with its words and status),
  publishes messages, keeps itself registered as alive and renews the runs it holds.
- `EngineClient` (a web process): `request(name, args, run=...)` reaches the engine that holds
  the run (or, for a run nobody holds, the least-loaded alive engine: `pick_engine()`); every
  engine message goes to `on_message` from one subscriber thread; `on_status` hears when Redis
  goes away and comes back.
- `Lease`: one holder at a time for a name (the shared run), expiring when its holder stops
  renewing; a waiter takes it over.

Every key lives under `PREFIX` ("nnlp:"):

| key | type | what | written by | lifetime |
|---|---|---|---|---|
| `nnlp:engines` | set | ids of engines that registered (dead ones pruned by readers) | engines | kept |
| `nnlp:engine:<id>` | string | the alive engine's instance token | its engine, every 1 s (compare-and-set) | 5 s TTL |
| `nnlp:engine:<id>:load` | string | msgpack `{engine, runs, held, pid, host, since}` | its engine, every 1 s and on hold/release | 5 s TTL |
| `nnlp:engine:<id>:commands` | list | packed commands for that engine (RPUSH by webs, BLPOP by it) | web processes | 60 s after the last push |
| `nnlp:web:<id>:answers` | list | packed answers for one web process (RPUSH by engines, BLPOP by it) | engines | 60 s after the last push |
| `nnlp:run:<run>` | string | the id of the engine holding the run (`Lease` keys are these too) | the holder (compare-and-set) | 10 s TTL, renewed every ~3.3 s |
| `nnlp:messages:<run>` | pub/sub channel | a run's packed engine messages | engines | - |

Why lists for commands and answers (not pub/sub, not streams): a command is for exactly one
consumer and must not be lost while that consumer reconnects for a moment (pub/sub drops what
nobody hears); it must not be delivered twice either (a stream's consumer group redelivers
unacknowledged entries, and `train:step` twice is not `train:step`). RPUSH/BLPOP is exactly
"one queue, one reader, at most once". Each command carries when it was sent and its timeout:
an engine drops a command whose asker has already given up. Messages use pub/sub: every web
process hears every message once, nothing piles up in Redis, and a frame missed while a web
process reconnects is replaced by the next one (latest wins anyway; the web tier resends state
when `on_status` says Redis is back).

Lease numbers: ttl 10 s, renewed every ttl/3 (3.3 s; every 0.5 s while a renewal fails), a
waiter polls every 1.5 s: a holder that dies is replaced within ttl + poll = 11.5 s (< 15 s).
A holder that has not renewed for a whole ttl (cut off from Redis) gives the lease up itself
(`on_lost`) before anyone else can have it. After Redis restarts empty, the holder takes its
lease back (it retries every 0.5 s) and waiters hold off one ttl first, so a Redis restart
does not move the shared run.

Clocks: commands carry the web machine's wall-clock time; an engine drops one only when it is
older than its timeout plus CLOCK_SLACK_S (run NTP on every machine, as usual).
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Iterable, Optional
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..errors import EngineUnavailable, UserError
from .client import refusal
from .codec import pack, unpack
from .names import SHARED

log = logging.getLogger(__name__)

PREFIX = "nnlp:"

ENGINE_TTL_S = 5.0          # an engine not heard from for this long is gone
HEARTBEAT_S = 1.0           # how often an engine says it is alive and renews its runs
RUN_TTL_S = 10.0            # a run's holder record, renewed every RUN_TTL_S / 3
QUEUE_TTL_S = 60.0          # a command or answer list nobody reads goes away
LEASE_TTL_S = 10.0
LEASE_POLL_S = 1.5
LEASE_RETRY_S = 0.5         # a holder whose renewal failed tries again this often
REQUEST_TIMEOUT_S = 30.0
ALIVE_CHECK_S = 1.0         # a waiting request checks this often that its engine is alive
BLOCK_S = 1.0               # BLPOP / pub/sub waits: how soon a reader notices it should stop
FOLLOW_POLL_S = 0.1         # a client following chosen runs applies follow()/unfollow() this soon
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0)  # then every 2 s while Redis stays away
CLOCK_SLACK_S = 5.0
COMMAND_THREADS = 4
MAX_BACKLOG = 2000          # messages kept while Redis is away (frames: the newest per stream)

# --- keys -----------------------------------------------------------------------------------


def engines_key() -> str:
    return f"{PREFIX}engines"


def engine_key(engine_id: str) -> str:
    return f"{PREFIX}engine:{engine_id}"


def load_key(engine_id: str) -> str:
    return f"{PREFIX}engine:{engine_id}:load"


def commands_key(engine_id: str) -> str:
    return f"{PREFIX}engine:{engine_id}:commands"


def answers_key(web_id: str) -> str:
    return f"{PREFIX}web:{web_id}:answers"


def run_key(run: str) -> str:
    return f"{PREFIX}run:{run}"


def messages_channel(run: str) -> str:
    return f"{PREFIX}messages:{run}"


MESSAGES_PATTERN = f"{PREFIX}messages:*"

# --- compare-and-set scripts ------------------------------------------------------------------
# A holder renews only what is its own, and takes back a key that is gone (Redis restarted
# empty, or it lapsed and nobody took it): 1 = held, 0 = someone else holds it.
RENEW_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Deletes only the caller's own key.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Who holds a run, and whether that engine is alive, in one round trip.
LOOKUP_SCRIPT = """
local engine = redis.call('GET', KEYS[1])
if not engine then return {false, 0} end
return {engine, redis.call('EXISTS', ARGV[1] .. engine)}
"""


def connect(redis_url: str) -> redis.Redis:
    """A client that fails fast (so a request says "Redis is unreachable" within seconds) and
    whose sockets outlast a blocking read of BLOCK_S."""
    return redis.Redis.from_url(
        redis_url, socket_connect_timeout=2.0, socket_timeout=BLOCK_S + 4.0, health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), retry_on_timeout=False)


def describe_url(redis_url: str) -> str:
    """The URL as it may be shown to people: without its password."""
    parts = urlsplit(redis_url)
    if parts.password is None:
        return redis_url
    host = parts.hostname or ""
    netloc = f"{parts.username + '@' if parts.username else ''}{host}{':' + str(parts.port) if parts.port else ''}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _why(err: Exception) -> str:
    return str(err).strip().rstrip(".") or type(err).__name__


REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class Reachability:
    """Whether Redis answers, as everyone using one client sees it: tells `on_status` only when
    it changes ({"status": "down"|"up", "reason": words})."""

    def __init__(self, redis_url: str, on_status: Callable[[dict], None]):
        self.where = describe_url(redis_url)
        self.on_status = on_status
        self.up = True
        self.reason: Optional[str] = None
        self._lock = threading.Lock()

    def failed(self, err: Exception) -> None:
        with self._lock:
            if not self.up:
                return
            self.up = False
            self.reason = f"Redis is unreachable at {self.where} ({_why(err)}); retrying"
            status = {"status": "down", "reason": self.reason}
        log.warning(status["reason"])
        self._tell(status)

    def ok(self) -> None:
        if self.up:  # the common case, without the lock
            return
        with self._lock:
            if self.up:
                return
            self.up = True
            self.reason = None
            status = {"status": "up", "reason": f"Redis is reachable again at {self.where}"}
        log.warning(status["reason"])
        self._tell(status)

    def unavailable(self) -> EngineUnavailable:
        return EngineUnavailable(self.reason or f"Redis is unreachable at {self.where}; retrying")

    def _tell(self, status: dict) -> None:
        try:
            self.on_status(status)
        except Exception:
            log.exception("telling about Redis failed")


def _reconnect_delay(attempt: int) -> float:
    return RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]


def _client_of(redis_or_url) -> tuple[redis.Redis, bool]:
    if isinstance(redis_or_url, str):
        return connect(redis_or_url), True
    return redis_or_url, False


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
        self.redis, self._owns_client = _client_of(redis_or_url)
        self.name, self.holder = name, holder
        self.key = run_key(name)
        self.ttl_s, self.poll_s = ttl_s, poll_s
        self.on_acquired, self.on_lost = on_acquired, on_lost
        self.reachability = reachability
        self._renew = self.redis.register_script(RENEW_SCRIPT)
        self._release = self.redis.register_script(RELEASE_SCRIPT)
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
        if self.redis.set(self.key, self.holder, nx=True, px=int(self.ttl_s * 1000)):
            return True
        # Ours already (a restart of this holder within the ttl): keep it.
        return self.redis.get(self.key) == self.holder.encode()

    def renew(self) -> bool:
        """True while the lease is ours (renewed, or taken back after Redis lost it)."""
        return bool(self._renew(keys=[self.key], args=[self.holder, int(self.ttl_s * 1000)]))

    def release(self) -> bool:
        """Delete the key if it is ours; never someone else's."""
        try:
            return bool(self._release(keys=[self.key], args=[self.holder]))
        except REDIS_ERRORS:
            return False

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
        failures = 0
        while not self._stop.is_set():
            try:
                if self.held:
                    self._hold_once()
                else:
                    self._wait_once()
                failures = 0
                if self.reachability:
                    self.reachability.ok()
            except REDIS_ERRORS as err:
                failures += 1
                if self.reachability:
                    self.reachability.failed(err)
                if not self.held:
                    self._hold_off_until = time.monotonic() + self.ttl_s
                elif time.monotonic() - self._renewed_at >= self.ttl_s:
                    self._lose(f"could not renew the lease on {self.name} for {self.ttl_s:g} s ({_why(err)})")
                self._stop.wait(LEASE_RETRY_S if self.held else _reconnect_delay(failures))
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


class Sender:
    """Everything an engine sends, from one thread, in order; whole live-view frames newest-only
    per (run, stream) (the same rule as the pipe's Outbox). While Redis is away it keeps the
    newest MAX_BACKLOG messages and sends them when it is back; answers nobody waits for any
    more are dropped."""

    def __init__(self, client: redis.Redis, reachability: Reachability):
        self.redis = client
        self.reachability = reachability
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._frames: "OrderedDict[tuple, tuple]" = OrderedDict()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="redis-sender", daemon=True)
        self.thread.start()

    def answer(self, reply_to: str, answer: dict, expires: float) -> None:
        self._put(("answer", reply_to, pack(answer), expires))

    def message(self, message: dict) -> None:
        item = {"kind": "message", "topic": message.get("topic"), "run": message.get("run") or SHARED,
                "payload": message.get("payload")}
        entry = ("message", messages_channel(item["run"]), pack(item), None)
        payload = item["payload"]
        if item["topic"] == "frame" and isinstance(payload, dict) and not payload.get("kind"):
            with self._cond:
                if self._closed:
                    return
                key = (item["run"], payload.get("stream"))
                self._frames.pop(key, None)
                self._frames[key] = entry
                self._cond.notify()
            return
        self._put(entry)

    def _put(self, entry: tuple) -> None:
        with self._cond:
            if self._closed:
                return
            self._queue.append(entry)
            if len(self._queue) > MAX_BACKLOG:
                self._queue.popleft()  # the oldest goes: a viewer wants the newest
            self._cond.notify()

    def _next(self) -> Optional[tuple]:
        with self._cond:
            while not self._queue and not self._frames:
                if self._closed:
                    return None
                self._cond.wait()
            if self._queue:
                return self._queue[0]
            return next(iter(self._frames.values()))

    def _done(self, entry: tuple) -> None:
        with self._cond:
            if self._queue and self._queue[0] is entry:
                self._queue.popleft()
            else:
                for key, value in self._frames.items():
                    if value is entry:
                        del self._frames[key]
                        break

    def _send(self, entry: tuple) -> None:
        kind, where, data, expires = entry
        if kind == "answer":
            if expires is not None and time.time() > expires:
                return  # its asker gave up
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(where, data)
                pipe.pexpire(where, int(QUEUE_TTL_S * 1000))
                pipe.execute()
        else:
            self.redis.publish(where, data)

    def _run(self) -> None:
        failures = 0
        while True:
            entry = self._next()
            if entry is None:
                return
            try:
                self._send(entry)
            except REDIS_ERRORS as err:
                failures += 1
                self.reachability.failed(err)
                time.sleep(_reconnect_delay(failures))
                with self._cond:
                    if self._closed:
                        return  # closing while Redis is away: nothing more can go out
                continue
            except Exception:
                log.exception("could not send %s to %s", entry[0], entry[1])
            failures = 0
            self.reachability.ok()
            self._done(entry)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (while Redis answers), then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.reachability.up:
            with self._cond:
                if not self._queue and not self._frames:
                    break
            time.sleep(0.02)
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._frames.clear()
            self._cond.notify_all()
        self.thread.join(timeout)


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

    Commands are run by COMMAND_THREADS threads (a slow one never holds up a pause); a
    `UserError` is answered with its words, status and type, anything else as an internal
    error (logged). `on_run_lost(run)` hears that another engine holds a run this one held.
    """

    def __init__(self, redis_url: str, engine_id: Optional[str] = None, *,
                 on_status: Callable[[dict], None] = lambda status: None,
                 on_run_lost: Callable[[str], None] = lambda run: None,
                 command_threads: int = COMMAND_THREADS, claim_timeout_s: float = ENGINE_TTL_S + 1.0):
        self.redis_url = redis_url
        self.engine_id = engine_id or default_engine_id()
        if not self.engine_id or any(ch in self.engine_id for ch in " \t\r\n"):
            raise UserError("an engine id must be a word without spaces")
        self.token = uuid.uuid4().hex
        self.redis = connect(redis_url)
        self.reachability = Reachability(redis_url, on_status)
        self.on_run_lost = on_run_lost
        self.sender = Sender(self.redis, self.reachability)
        self._renew = self.redis.register_script(RENEW_SCRIPT)
        self._release = self.redis.register_script(RELEASE_SCRIPT)
        self._runs: set[str] = set()
        self._runs_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._leases: list[Lease] = []
        self._stop = threading.Event()
        self._handler: Optional[Callable[[str, dict], object]] = None
        self._commands = ThreadPoolExecutor(command_threads, thread_name_prefix="engine-command")
        self._since = time.time()
        self._register(claim_timeout_s)
        self._heartbeat = threading.Thread(target=self._beat, name="engine-heartbeat", daemon=True)
        self._heartbeat.start()
        self._reader: Optional[threading.Thread] = None

    # ---- registry ---------------------------------------------------------------------------
    def _register(self, claim_timeout_s: float) -> None:
        """Claim this engine id (SET NX): an id alive elsewhere is refused, in words. A previous
        process with this id that died leaves its key for at most ENGINE_TTL_S: we wait it out."""
        deadline = time.monotonic() + claim_timeout_s
        try:
            while not self.redis.set(engine_key(self.engine_id), self.token, nx=True, px=int(ENGINE_TTL_S * 1000)):
                if time.monotonic() > deadline:
                    self.redis.close()
                    raise UserError(f"an engine with the id {self.engine_id!r} is already running on this Redis; "
                                    "give each engine its own id")
                time.sleep(0.25)
            self.redis.sadd(engines_key(), self.engine_id)
            self._write_load()
        except REDIS_ERRORS as err:
            self.redis.close()
            raise EngineUnavailable(f"Redis is unreachable at {describe_url(self.redis_url)} ({_why(err)})") from None

    def _write_load(self) -> None:
        with self._load_lock:  # so an older count never overwrites a newer one
            held = self.held_runs()
            info = {"engine": self.engine_id, "runs": len(held), "held": sorted(held), "pid": os.getpid(),
                    "host": socket.gethostname(), "since": self._since}
            self.redis.set(load_key(self.engine_id), pack(info), px=int(ENGINE_TTL_S * 1000))

    def _tell_load(self) -> None:
        try:
            self._write_load()
        except REDIS_ERRORS as err:
            self.reachability.failed(err)

    def _beat(self) -> None:
        next_runs = 0.0
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if not self._renew(keys=[engine_key(self.engine_id)], args=[self.token, int(ENGINE_TTL_S * 1000)]):
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
            if not self._renew(keys=[run_key(run)], args=[self.engine_id, int(RUN_TTL_S * 1000)]):
                with self._runs_lock:
                    self._runs.discard(run)
                log.warning("run %s is held by another engine now; %s lets it go", run, self.engine_id)
                try:
                    self.on_run_lost(run)
                except Exception:
                    log.exception("on_run_lost(%s) failed", run)

    # ---- runs ----------------------------------------------------------------------------
    def hold(self, run: str) -> bool:
        """Record that this engine holds `run` (True), unless another alive engine does (False).
        Call it when a command makes this engine take a run on (a new run, or one restored)."""
        try:
            if not self.redis.set(run_key(run), self.engine_id, nx=True, px=int(RUN_TTL_S * 1000)):
                if self.redis.get(run_key(run)) != self.engine_id.encode():
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
            self._release(keys=[run_key(run)], args=[self.engine_id])
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
        self.sender.message(message)

    def serve(self, handler: Callable[[str, dict], object]) -> None:
        """Start taking commands: each runs as `handler(name, args)` in a command thread."""
        self._handler = handler
        self._reader = threading.Thread(target=self._read, name="engine-commands", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                item = self.redis.blpop([commands_key(self.engine_id)], timeout=BLOCK_S)
                failures = 0
                self.reachability.ok()
            except REDIS_ERRORS as err:
                failures += 1
                self.reachability.failed(err)
                self._stop.wait(_reconnect_delay(failures))
                continue
            if item is None:
                continue
            try:
                command = unpack(item[1])
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
            self._commands.submit(self._answer, command, expires)

    def _answer(self, command: dict, expires: float) -> None:
        name, request_id, args = command.get("name"), command.get("id"), command.get("args")
        reply = {"kind": "answer", "id": request_id, "engine": self.engine_id}
        try:
            if not isinstance(name, str) or not isinstance(args, dict):
                raise UserError("a command needs a name and a dictionary of arguments")
            reply.update(ok=True, result=self._handler(name, args))
        except UserError as err:
            reply.update(ok=False, error=str(err), status=err.status, type=type(err).__name__)
        except Exception:
            log.exception("engine command %s failed", name)
            reply.update(ok=False, status=500, type="InternalError",
                         error="internal error in the training engine while handling the request (see the server log)")
        try:
            self.sender.answer(command["reply_to"], reply, expires)
        except TypeError:
            log.exception("could not encode the answer to %s", name)
            self.sender.answer(command["reply_to"], {
                "kind": "answer", "id": request_id, "ok": False, "status": 500, "type": "InternalError",
                "error": f"the training engine's answer to {name} could not be encoded (see the server log)"}, expires)

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
        self._commands.shutdown(wait=True, cancel_futures=True)
        self.sender.close(timeout)
        self._heartbeat.join(timeout)
        for lease in self._leases:
            lease.close()
        try:
            for run in self.held_runs():
                self._release(keys=[run_key(run)], args=[self.engine_id])
            self._release(keys=[engine_key(self.engine_id)], args=[self.token])
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(load_key(self.engine_id))
                pipe.srem(engines_key(), self.engine_id)
                pipe.execute()
        except REDIS_ERRORS:
            pass  # everything it held expires by itself
        self.redis.close()


# --- the web side -----------------------------------------------------------------------------


class EngineClient:
    """A web process's side of the bus.

    `request(name, args, run=...)` sends a command to the engine holding `run` and waits for its
    answer (a refusal raises the same UserError words and status; no engine, no answer in time
    or no Redis raise EngineUnavailable, in words). `on_message(item)` gets every engine message
    (`{"kind": "message", "topic", "run", "payload"}`) from one subscriber thread: keep it quick.
    `on_status({"status": "down"|"up", "reason"})` hears about Redis. Threads reconnect by
    themselves; `close()` stops them. Made with `runs={...}`, it hears only those runs'
    messages, and `follow(run)` / `unfollow(run)` change which (Redis then sends each web
    process only the runs its viewers watch); without, it hears every run.
    """

    def __init__(self, redis_url: str, web_id: Optional[str] = None, *,
                 on_message: Callable[[dict], None] = lambda item: None,
                 on_status: Callable[[dict], None] = lambda status: None,
                 runs: Optional[Iterable[str]] = None):
        self.redis_url = redis_url
        # Every run's messages (one pattern subscription), or only those of the runs followed
        # (one channel each): a web process then hears only the runs its viewers watch.
        self._follow_all = runs is None
        self._followed: set[str] = set(runs or ())
        self._confirmed: set[str] = set()
        self._follows = threading.Condition()
        self.web_id = web_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.redis = connect(redis_url)
        self.on_message = on_message
        self.reachability = Reachability(redis_url, on_status)
        self._lookup = self.redis.register_script(LOOKUP_SCRIPT)
        self._ids = itertools.count(1)
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.subscribed = threading.Event()  # set while the subscriber listens
        self._answers = threading.Thread(target=self._read_answers, name="redis-answers", daemon=True)
        self._messages = threading.Thread(target=self._read_messages, name="redis-messages", daemon=True)
        self._answers.start()
        self._messages.start()

    # ---- finding engines ------------------------------------------------------------------
    def engines(self) -> list[dict]:
        """The alive engines and their load ({engine, runs, held, pid, host, since}), by id."""
        try:
            ids = sorted(member.decode() for member in self.redis.smembers(engines_key()))
            if not ids:
                return []
            with self.redis.pipeline(transaction=False) as pipe:
                for engine_id in ids:
                    pipe.exists(engine_key(engine_id))
                    pipe.get(load_key(engine_id))
                replies = pipe.execute()
            self.reachability.ok()
        except REDIS_ERRORS as err:
            self.reachability.failed(err)
            raise self.reachability.unavailable() from None
        alive = []
        for engine_id, exists, load in zip(ids, replies[0::2], replies[1::2]):
            if not exists:
                self._prune(engine_id)
                continue
            info = unpack(load) if load else {"engine": engine_id, "runs": 0, "held": []}
            alive.append(info)
        return alive

    def _prune(self, engine_id: str) -> None:
        # Only if it is still gone (it may have just come back with the same id).
        try:
            if not self.redis.exists(engine_key(engine_id)):
                self.redis.srem(engines_key(), engine_id)
        except REDIS_ERRORS:
            pass

    def pick_engine(self) -> str:
        """The alive engine holding the fewest runs (ties at random, so new runs spread)."""
        alive = self.engines()
        if not alive:
            raise EngineUnavailable("no training engine is running (start one with --role engine)")
        fewest = min(info.get("runs", 0) for info in alive)
        return random.choice([info["engine"] for info in alive if info.get("runs", 0) == fewest])

    def engine_for(self, run: str) -> Optional[str]:
        """The alive engine holding `run`, or None when nobody does. EngineUnavailable when the
        engine recorded as its holder is gone (its record expires within RUN_TTL_S)."""
        try:
            engine, alive = self._lookup(keys=[run_key(run)], args=[f"{PREFIX}engine:"])
            self.reachability.ok()
        except REDIS_ERRORS as err:
            self.reachability.failed(err)
            raise self.reachability.unavailable() from None
        if engine is None:
            return None
        engine = engine.decode()
        if not alive:
            if run == SHARED:
                raise EngineUnavailable(f"the engine that held the shared run ({engine}) stopped; another "
                                        "engine takes the run over within 15 s")
            raise EngineUnavailable(f"the engine that held run {run} ({engine}) stopped; "
                                    f"try again in {RUN_TTL_S:g} s")
        return engine

    # ---- requests ---------------------------------------------------------------------------
    def request(self, name: str, args: Optional[dict] = None, *, run: Optional[str] = None,
                timeout: float = REQUEST_TIMEOUT_S, engine: Optional[str] = None) -> dict:
        """Send `name` to the engine that holds `run` (args' "run", else "shared"; it is put in
        args as "run"). A run nobody holds goes to pick_engine(): that engine's handler takes
        it on (creates or restores it) and calls `EngineEndpoint.hold(run)`, so later requests
        find it there. The shared run is served only by its lease holder. `engine` sends to
        that engine whoever holds the run."""
        args = dict(args or {})
        run = run or args.get("run") or SHARED
        args["run"] = run
        if self._stop.is_set():
            raise EngineUnavailable("this web process is stopping")
        if engine is None:
            engine = self.engine_for(run)
        if engine is None:
            if run == SHARED:
                raise EngineUnavailable("no training engine holds the shared run right now; "
                                        "one takes it over within 15 s")
            engine = self.pick_engine()
        request_id = next(self._ids)
        command = {"kind": "command", "id": request_id, "name": name, "args": args,
                   "reply_to": answers_key(self.web_id), "sent": time.time(), "timeout": timeout}
        try:
            data = pack(command)
        except (TypeError, OverflowError, ValueError):
            raise UserError("the request holds a value that cannot be used (a number far too big?); "
                            "nothing was done") from None
        future: Future = Future()
        with self._lock:
            self._pending[request_id] = future
        try:
            try:
                with self.redis.pipeline(transaction=False) as pipe:
                    pipe.rpush(commands_key(engine), data)
                    pipe.pexpire(commands_key(engine), int(QUEUE_TTL_S * 1000))
                    pipe.execute()
                self.reachability.ok()
            except REDIS_ERRORS as err:
                self.reachability.failed(err)
                raise self.reachability.unavailable() from None
            answer = self._await(future, engine, name, timeout)
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        if answer.get("ok"):
            return answer.get("result") or {}
        raise refusal(answer)

    def _await(self, future: Future, engine: str, name: str, timeout: float) -> dict:
        """The answer; meanwhile, every ALIVE_CHECK_S, whether the engine is still alive (one
        that died says so within ENGINE_TTL_S, not at the request's timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return future.result(max(0.0, min(left, ALIVE_CHECK_S)))
            except FutureTimeout:
                pass
            if left <= ALIVE_CHECK_S:
                raise EngineUnavailable(f"the training engine ({engine}) did not answer {name} "
                                        f"within {timeout:g} s")
            try:
                alive = self.redis.exists(engine_key(engine))
            except REDIS_ERRORS:
                continue  # the answers reader tells everyone waiting
            if not alive:
                raise EngineUnavailable(f"the training engine ({engine}) stopped while handling {name}; "
                                        "try again in a moment")

    def _read_answers(self) -> None:
        failures = 0
        key = answers_key(self.web_id)
        while not self._stop.is_set():
            try:
                item = self.redis.blpop([key], timeout=BLOCK_S)
                failures = 0
                self.reachability.ok()
            except REDIS_ERRORS as err:
                failures += 1
                self.reachability.failed(err)
                # Redis is away: an answer may never come (a restarted Redis is empty). Tell
                # everyone waiting now rather than at their timeout.
                self._fail_pending(self.reachability.reason)
                self._stop.wait(_reconnect_delay(failures))
                continue
            if item is None:
                continue
            try:
                answer = unpack(item[1])
                future = self._pending.get(answer.get("id"))
            except Exception:
                log.warning("an unreadable answer was dropped")
                continue
            if future is not None and not future.done():
                future.set_result(answer)

    def _fail_pending(self, reason: Optional[str]) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            if not future.done():
                future.set_result({"ok": False, "type": "EngineUnavailable", "status": 503,
                                   "error": reason or "Redis is unreachable; retrying"})

    # ---- messages ---------------------------------------------------------------------------
    def follow(self, run: str, *, timeout: float = 5.0) -> bool:
        """Hear `run`'s messages from now on (only for a client made with `runs=`): True once
        Redis has confirmed the subscription (False if not within `timeout`: it keeps trying)."""
        if self._follow_all:
            raise ValueError("this client hears every run (made without runs=); follow() is for one made with runs=")
        with self._follows:
            self._followed.add(run)
            self._follows.notify_all()
            return self._follows.wait_for(lambda: messages_channel(run) in self._confirmed, timeout)

    def unfollow(self, run: str) -> None:
        """Stop hearing `run`'s messages (within FOLLOW_POLL_S)."""
        if self._follow_all:
            raise ValueError("this client hears every run (made without runs=)")
        with self._follows:
            self._followed.discard(run)

    @property
    def followed(self) -> Optional[set[str]]:
        """The runs this client hears, or None for every run."""
        if self._follow_all:
            return None
        with self._follows:
            return set(self._followed)

    def _apply_follows(self, pubsub, listening: set[str]) -> set[str]:
        with self._follows:
            wanted = {messages_channel(run) for run in self._followed}
        if wanted - listening:
            pubsub.subscribe(*sorted(wanted - listening))
        if listening - wanted:
            pubsub.unsubscribe(*sorted(listening - wanted))
            with self._follows:
                self._confirmed -= listening - wanted
        if not wanted:
            self.subscribed.set()  # nothing to hear is heard
        return wanted

    def _confirm(self, message: dict) -> None:
        channel = message.get("channel")
        channel = channel.decode() if isinstance(channel, bytes) else channel
        with self._follows:
            if message["type"] in ("subscribe", "psubscribe"):
                self._confirmed.add(channel)
            if self._follow_all or {messages_channel(run) for run in self._followed} <= self._confirmed:
                self.subscribed.set()
            self._follows.notify_all()

    def _read_messages(self) -> None:
        failures = 0
        while not self._stop.is_set():
            pubsub = self.redis.pubsub()
            listening: set[str] = set()
            with self._follows:
                self._confirmed.clear()
            try:
                if self._follow_all:
                    pubsub.psubscribe(MESSAGES_PATTERN)
                while not self._stop.is_set():
                    if not self._follow_all:
                        listening = self._apply_follows(pubsub, listening)
                    message = pubsub.get_message(timeout=BLOCK_S if self._follow_all else FOLLOW_POLL_S)
                    if message is None:
                        continue
                    kind = message.get("type")
                    if kind in ("pmessage", "message"):
                        self._deliver(message["data"])
                    elif kind in ("subscribe", "psubscribe"):  # Redis confirms: we hear from now on
                        self._confirm(message)
                        failures = 0
                        self.reachability.ok()
            except REDIS_ERRORS as err:
                self.subscribed.clear()
                failures += 1
                self.reachability.failed(err)
                self._stop.wait(_reconnect_delay(failures))
            except Exception:
                self.subscribed.clear()
                log.exception("the message subscriber failed; subscribing again")
                self._stop.wait(1.0)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass
        self.subscribed.clear()

    def _deliver(self, data: bytes) -> None:
        try:
            item = unpack(data)
        except Exception:
            log.warning("an unreadable engine message was dropped")
            return
        if not isinstance(item, dict) or item.get("kind") != "message":
            return
        try:
            self.on_message(item)
        except Exception:
            log.exception("handling the engine's %s message failed", item.get("topic"))

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._answers, self._messages]

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._fail_pending("this web process is stopping")
        for thread in self.threads:
            thread.join(timeout)
        self.redis.close()
