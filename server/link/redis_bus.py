"""The engine line over Redis, the channel both sides share: any number of web processes and
engine processes, on any machines, share one Redis. The shapes are the pipe's, and the request/answer core is the same
(server/link/line.py): commands `{"kind": "command", "id", "name", "args"}`, answers `{"kind": "answer",
"id", "ok", "result" | "error", "type", "status"}`, messages `{"kind": "message", "topic", "run",
"payload"}`, all MessagePack (server/link/codec.py: plain data and bytes).

- `EngineEndpoint` (an engine process, server/engine/redis_endpoint.py): takes the commands addressed to it, hands each to a
  handler `(name, args) -> result` (a `UserError` comes back with its words and status),
  publishes messages, keeps itself registered as alive and renews the runs it holds.
- `EngineClient` (a web process, server/link/redis_client.py): `request(name, args, run=...)` reaches the engine that holds
  the run (or, for a run nobody holds, the least-loaded alive engine: `pick_engine()`); every
  engine message goes to `on_message` from one subscriber thread; `on_status` hears when Redis
  goes away and comes back.
- `Lease` (server/engine/redis_endpoint.py): one holder at a time for a name (the shared run), on redis-py's `Lock`, expiring
  when its holder stops renewing; a waiter takes it over.

Its keys (all under `PREFIX`), why commands go in lists and messages on pub/sub, the lease's
numbers and the clocks: docs/deploy.md, "Redis's keys, and why".
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock
from redis.retry import Retry

from ..errors import EngineUnavailable

log = logging.getLogger(__name__)

PREFIX = "nnlp:"

ENGINE_TTL_S = 5.0          # an engine not heard from for this long is gone
HEARTBEAT_S = 1.0           # how often an engine says it is alive and renews its runs
RUN_TTL_S = 10.0            # a run's holder record, renewed every RUN_TTL_S / 3
QUEUE_TTL_S = 60.0          # a command or answer list nobody reads goes away
LEASE_TTL_S = 10.0
LEASE_POLL_S = 1.5
ALIVE_CHECK_S = 1.0         # a waiting request checks this often that its engine is alive
BLOCK_S = 1.0               # BLPOP / pub/sub waits: how soon a reader notices it should stop
AWAY_S = 0.5                # after a call failed even with the client's retries (connect()): pause, then again
CLOCK_SLACK_S = 5.0
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


def why(err: Exception) -> str:
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
            self.reason = f"Redis is unreachable at {self.where} ({why(err)}); retrying"
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


def client_of(redis_or_url) -> tuple[redis.Redis, bool]:
    if isinstance(redis_or_url, str):
        return connect(redis_or_url), True
    return redis_or_url, False


# --- keys held by one holder: redis-py's Lock, its token the holder's id ----------------------------


def held_key(client: redis.Redis, key: str, holder: str, ttl_s: float) -> Lock:
    """`key` as held by `holder` (its value): the Lock's compare-and-set scripts renew and
    release only what is the holder's own, never someone else's."""
    lock = client.lock(key, timeout=ttl_s, thread_local=False)
    lock.local.token = holder.encode()
    return lock


def take(lock: Lock) -> bool:
    """SET NX: True if `lock`'s holder has it now (or had it already: a restart within the ttl)."""
    token = lock.local.token
    return lock.acquire(blocking=False, token=token) or lock.redis.get(lock.name) == token


def keep(lock: Lock) -> bool:
    """Renew the holder's key; a key that is gone (Redis restarted empty, or it lapsed and
    nobody took it) is taken back. False: someone else holds it."""
    try:
        return lock.reacquire()
    except LockNotOwnedError:
        return take(lock)


def let_go(lock: Lock) -> bool:
    """Delete the key if it is the holder's; never someone else's."""
    try:
        lock.do_release(lock.local.token)
        return True
    except (LockNotOwnedError, *REDIS_ERRORS):
        return False


