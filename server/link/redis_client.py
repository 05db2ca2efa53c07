"""A web process's side of the Redis line (server/link/redis_bus.py): `EngineClient` finds the
engine holding a run, sends it commands and waits for their answers through the line's core
(server/link/line.py `Requests`), and hears every engine message."""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Optional

from ..errors import EngineUnavailable, UserError
from .codec import pack, unpack
from .line import REQUEST_TIMEOUT_S, TOO_BIG_WORDS, Requests, envelope, result_of
from .names import SHARED
from .redis_auth import Signer
from .redis_bus import (ALIVE_CHECK_S, AWAY_S, BLOCK_S, LOOKUP_SCRIPT, MESSAGES_PATTERN, PREFIX, QUEUE_TTL_S,
                        REDIS_ERRORS, RUN_TTL_S, Reachability, answers_key, commands_key, connect, engine_key,
                        engines_key, load_key, run_key)

log = logging.getLogger(__name__)


class _Releasing:
    """A held Redis lock as a context: released on the way out (an expired one is let go)."""

    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        try:
            self.lock.release()
        except Exception:  # expired meanwhile, or Redis away: the expiry frees it
            log.warning("an owner's run:create lock was not released (it expires by itself)")


MAX_ANNOUNCED_RUNS = 100_000  # more than any engine could hold: an announcement past it is not believed


def plausible_load(engine_id: str, info) -> bool:
    """Whether `info` is a load an engine could announce: its own id, a count of runs that is
    the number of runs it names, a pid, a start that is not in the future."""
    if not isinstance(info, dict) or info.get("engine") != engine_id:
        return False
    runs, held = info.get("runs"), info.get("held")
    if type(runs) is not int or not 0 <= runs <= MAX_ANNOUNCED_RUNS:
        return False
    if not isinstance(held, list) or len(held) != runs or not all(isinstance(r, str) for r in held):
        return False
    pid, since = info.get("pid"), info.get("since")
    if type(pid) is not int or pid <= 0 or not isinstance(since, (int, float)) or since > time.time() + 60:
        return False
    return True


class EngineClient:
    """A web process's side of the bus.

    `request(name, args, run=...)` sends a command to the engine holding `run` and waits for its
    answer (a refusal raises the same UserError words and status; no engine, no answer in time
    or no Redis raise EngineUnavailable, in words). `on_message(item)` gets every engine message
    (`{"kind": "message", "topic", "run", "payload"}`) from one subscriber thread: keep it quick.
    `on_status({"status": "down"|"up", "reason"})` hears about Redis. Threads reconnect by
    themselves; `close()` stops them.
    """

    def __init__(self, redis_url: str, web_id: Optional[str] = None, *,
                 on_message: Callable[[dict], None] = lambda item: None,
                 on_status: Callable[[dict], None] = lambda status: None, secret: Optional[str] = None):
        self.redis_url = redis_url
        # Commands go out signed; answers, messages and engine loads are taken only signed.
        self.signer = Signer.of(secret)
        self._disbelieved: set[str] = set()
        self.web_id = web_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.redis = connect(redis_url)
        self.on_message = on_message
        self.reachability = Reachability(redis_url, on_status)
        self._lookup = self.redis.register_script(LOOKUP_SCRIPT)
        self.requests = Requests()
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
            info = self._load_of(engine_id, load)
            if info is not None:
                alive.append(info)
        return alive

    def _load_of(self, engine_id: str, load: Optional[bytes]) -> Optional[dict]:
        """An engine's signed load, if it is one an engine could announce; else None (that
        engine is ignored: no new run goes to it)."""
        data = self.signer.open(load, "engine load") if load else None
        if data is None:
            return None
        try:
            info = unpack(data)
        except Exception:
            return None
        if not plausible_load(engine_id, info):
            if engine_id not in self._disbelieved:  # once per engine, not at every look
                self._disbelieved.add(engine_id)
                log.warning("engine %s announced an impossible load; it is ignored", engine_id)
            return None
        return info

    def _prune(self, engine_id: str) -> None:
        # Only if it is still gone (it may have just come back with the same id).
        try:
            if not self.redis.exists(engine_key(engine_id)):
                self.redis.srem(engines_key(), engine_id)
        except REDIS_ERRORS:
            pass

    def owner_lock(self, owner: str, timeout: float):
        """A lock per owner that every web process shares (Redis's SET NX with an expiry: a web
        process that dies holding it frees it within `timeout` + 5 s)."""
        lock = self.redis.lock(f"{PREFIX}creating:{owner}", timeout=timeout + 5, blocking_timeout=timeout)
        try:
            if not lock.acquire():
                raise EngineUnavailable("another run of yours is being made: try again in a moment")
        except REDIS_ERRORS as err:
            self.reachability.failed(err)
            raise self.reachability.unavailable() from None
        return _Releasing(lock)

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
        request_id, future = self.requests.open()
        command = envelope({"kind": "command", "id": request_id, "name": name, "args": args,
                            "reply_to": answers_key(self.web_id), "sent": time.time(), "timeout": timeout})
        try:
            try:
                data = self.signer.seal(pack(command))
            except (TypeError, OverflowError, ValueError):
                raise UserError(TOO_BIG_WORDS) from None
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
            self.requests.forget(request_id)
        return result_of(answer)

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
        key = answers_key(self.web_id)
        while not self._stop.is_set():
            try:
                item = self.redis.blpop([key], timeout=BLOCK_S)
                self.reachability.ok()
            except REDIS_ERRORS as err:
                self.reachability.failed(err)
                # Redis is away: an answer may never come (a restarted Redis is empty). Tell
                # everyone waiting now rather than at their timeout.
                self.requests.fail_all(self.reachability.reason or "Redis is unreachable; retrying")
                self._stop.wait(AWAY_S)
                continue
            if item is None:
                continue
            data = self.signer.open(item[1], "answer")
            if data is None:
                continue  # not from an engine of this deployment: dropped unread
            try:
                answer = unpack(data)
                self.requests.resolve(answer)
            except Exception:
                log.warning("an unreadable answer was dropped")

    # ---- messages ---------------------------------------------------------------------------
    def _read_messages(self) -> None:
        while not self._stop.is_set():
            pubsub = self.redis.pubsub()
            try:
                pubsub.psubscribe(MESSAGES_PATTERN)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=BLOCK_S)
                    if message is None:
                        continue
                    kind = message.get("type")
                    if kind == "pmessage":
                        self._deliver(message["data"])
                    elif kind == "psubscribe":  # Redis confirms: we hear from now on
                        self.subscribed.set()
                        self.reachability.ok()
            except REDIS_ERRORS as err:
                self.subscribed.clear()
                self.reachability.failed(err)
                self._stop.wait(AWAY_S)
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

    def _deliver(self, sealed: bytes) -> None:
        data = self.signer.open(sealed, "engine message")
        if data is None:
            return  # not from an engine of this deployment: no page hears it
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
        self.requests.fail_all("this web process is stopping")
        for thread in self.threads:
            thread.join(timeout)
        self.redis.close()
