"""The engine line's core, written once for both channels (the pipe, server/link/client.py and
server/engine/process.py; Redis, server/link/redis_bus.py):

- the engine side: `answer_to(handler, command)` turns one command into its answer (a refusal
  keeps its words, status and type; anything else is an internal error, logged); `Commands`
  runs them, the costly ones (COSTLY_COMMANDS) apart, one at a time, so that state, pause and
  the runs list answer while they compute, and drops those whose asker gave up; and `Outbox`
  sends answers and messages from one thread in the order they were put, whole live-view frames
  newest-only per (run, stream);
- the web side: `Requests` gives each request an id and a future, resolves it from the answer,
  turns a refusal back into the same `UserError`, and tells every pending request in words
  when the line drops; `asking(asker)` names who a costly command is for (a command's
  "asker"), so that the engine can drop it when that viewer leaves (ASKER_GONE).

A channel only moves bytes: it hands `Outbox` a `send(item, route)` and feeds `Requests` the
answers it reads.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Optional, Protocol

from ..errors import AccessError, EngineUnavailable, LimitError, NotFound, UserError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0
COMMAND_THREADS = 4  # a slow command (a checkpoint of a big network) never holds up a pause
HOUSEKEEPING_S = 0.25  # how often an engine does what it put off
ERROR_TYPES = {cls.__name__: cls for cls in (UserError, AccessError, LimitError, NotFound, EngineUnavailable)}
DOWN_WORDS = "the training engine is restarting; try again in a moment"
TOO_BIG_WORDS = "the request holds a value that cannot be used (a number far too big?); nothing was done"
INTERNAL_WORDS = "internal error in the training engine while handling the request (see the server log)"
# Commands that may compute for seconds (the lesson's trial runs, a big run's replay frame): run
# by COSTLY_THREADS of their own, at most COSTLY_WAITING waiting, each dropped unanswered if its
# asker gave up first (its time ran out, or the viewer left: ASKER_GONE).
COSTLY_COMMANDS = frozenset({"lesson:reveal", "poll:reveal", "replay:frame"})
COSTLY_THREADS = 1
COSTLY_WAITING = 32
ASKER_GONE = "asker:gone"  # {"asker"}: the viewer left; what it asked and is still waiting is dropped
GONE_REMEMBERED_S = 120.0
BUSY_WORDS = ("the training engine is busy computing {n} answers (lesson reveals, replay frames); "
              "this one was not started: try again in a moment")


# ---- the engine side ------------------------------------------------------------------------------

def answer_to(handler: Callable[[str, dict], object], command: dict, **extra) -> dict:
    """The answer to `command` ({"id", "name", "args"}), run as `handler(name, args)`."""
    name, args = command.get("name"), command.get("args")
    if args is None:
        args = {}
    reply = {"kind": "answer", "id": command.get("id"), **extra}
    try:
        if not isinstance(name, str) or not isinstance(args, dict):
            raise UserError("a command needs a name and a dictionary of arguments")
        reply.update(ok=True, result=handler(name, args))
    except UserError as err:
        reply.update(ok=False, error=str(err), status=err.status, type=type(err).__name__)
    except Exception:
        log.exception("engine command %s failed", name)
        reply.update(ok=False, status=500, type="InternalError", error=INTERNAL_WORDS)
    return reply


def gave_up(command: dict, now: float, slack_s: float = 0.0) -> Optional[str]:
    """Why nobody waits for `command`'s answer any more (its time ran out), or None. `slack_s`:
    how far the asker's clock may be from this one (another machine's)."""
    sent, timeout = command.get("sent"), command.get("timeout")
    if isinstance(sent, (int, float)) and isinstance(timeout, (int, float)) and now > sent + timeout + slack_s:
        return f"its asker stopped waiting after {timeout:g} s"
    return None


class Commands:
    """The engine's command threads: `submit(command)` runs it and hands `send(reply, command)`
    the answer. Quick commands go to COMMAND_THREADS threads; costly ones (COSTLY_COMMANDS) to
    COSTLY_THREADS threads of their own (ten lesson reveals held every command thread, and a
    pause waited seconds behind them), at most `costly_waiting` of them waiting (more are
    refused in words at once). A costly command whose asker gave up before its turn (its time
    ran out, or `asker:gone` named its asker) is answered with words, not computed."""

    def __init__(self, handler: Callable[[str, dict], object], send: Callable[[dict, dict], None], *,
                 threads: int = COMMAND_THREADS, costly_threads: int = COSTLY_THREADS,
                 costly_waiting: int = COSTLY_WAITING, extra: Optional[dict] = None, clock=time.time,
                 clock_slack_s: float = 0.0):
        self.handler, self.send, self.extra, self.clock = handler, send, extra or {}, clock
        self.clock_slack_s = clock_slack_s
        self.costly_waiting = costly_waiting
        self._quick = ThreadPoolExecutor(threads, thread_name_prefix="engine-command")
        self._costly = ThreadPoolExecutor(costly_threads, thread_name_prefix="engine-costly")
        self._lock = threading.Lock()
        self._waiting = 0
        self._gone: "OrderedDict[str, float]" = OrderedDict()  # asker -> when it left

    def submit(self, command: dict) -> None:
        name = command.get("name")
        if name == ASKER_GONE:
            self._asker_gone(command)
        elif name in COSTLY_COMMANDS:
            with self._lock:
                waiting = self._waiting
                if waiting < self.costly_waiting:
                    self._waiting += 1
            if waiting >= self.costly_waiting:
                self._refuse(command, LimitError(BUSY_WORDS.format(n=waiting)))
                return
            self._costly.submit(self._run_costly, command)
        else:
            self._quick.submit(self._run, command)

    def _run(self, command: dict) -> None:
        self.send(answer_to(self.handler, command, **self.extra), command)

    def _refuse(self, command: dict, err: UserError) -> None:
        def refuse(name, args):
            raise err
        self.send(answer_to(refuse, command, **self.extra), command)

    def _run_costly(self, command: dict) -> None:
        with self._lock:
            self._waiting -= 1
            asker = command.get("asker")
            left = asker is not None and asker in self._gone
        why = "its asker left" if left else gave_up(command, self.clock(), self.clock_slack_s)
        if why is not None:
            log.info("dropped %s: %s", command.get("name"), why)
            self._refuse(command, UserError(f"{command.get('name')} was not computed: {why}", status=410))
            return
        self._run(command)

    def _asker_gone(self, command: dict) -> None:
        asker = (command.get("args") or {}).get("asker")
        now = self.clock()
        with self._lock:
            if isinstance(asker, str) and asker:
                self._gone.pop(asker, None)
                self._gone[asker] = now
            while self._gone and next(iter(self._gone.values())) < now - GONE_REMEMBERED_S:
                self._gone.popitem(last=False)
        self.send(answer_to(lambda name, args: {"gone": asker}, command, **self.extra), command)

    def shutdown(self) -> None:
        self._costly.shutdown(wait=True, cancel_futures=True)
        self._quick.shutdown(wait=True, cancel_futures=True)


def is_whole_frame(item: dict) -> bool:
    """A live-view frame that stands alone (a chain's frames each build on the last: all go)."""
    payload = item.get("payload")
    return item.get("topic") == "frame" and isinstance(payload, dict) and not payload.get("kind")


class Outbox:
    """Everything one engine sends, from one thread: answers and messages in the order they were
    put, whole frames newest-only per (run, stream), so a slow reader gets the newest frame of
    each stream, never a backlog.

    `send(item, route)` writes one item to the channel. When it raises one of `lost`,
    `on_lost(err)` says whether to try the same item again (Redis away: True, after a pause) or
    to give up (the pipe's reader is gone: `broken` is set). `backlog` bounds the ordered queue
    (the oldest goes first). An answer that cannot be encoded is answered as an internal error.
    """

    def __init__(self, send: Callable[[dict, object], None], *, lost: tuple = (OSError, EOFError, ValueError),
                 on_lost: Callable[[Exception], bool] = lambda err: False,
                 on_sent: Callable[[], None] = lambda: None,
                 backlog: Optional[int] = None, name: str = "engine-sender"):
        self.send, self.lost, self.on_lost, self.on_sent = send, lost, on_lost, on_sent
        self.backlog = backlog
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._frames: "OrderedDict[tuple, tuple]" = OrderedDict()
        self._closed = False
        self.broken = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, item: dict, route=None) -> None:
        entry = (item, route)
        with self._cond:
            if self._closed:
                return
            if item.get("kind") == "message" and is_whole_frame(item):
                key = (item.get("run"), item["payload"].get("stream"))
                self._frames.pop(key, None)
                self._frames[key] = entry
            else:
                self._queue.append(entry)
                if self.backlog is not None and len(self._queue) > self.backlog:
                    self._queue.popleft()  # the oldest goes: a viewer wants the newest
            self._cond.notify()

    def message(self, message: dict) -> None:
        self.put({"kind": "message", **message})

    def _next(self) -> Optional[tuple]:
        """The next entry to send, left in place until it went out (a channel may retry it)."""
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
                return
            for key, value in self._frames.items():
                if value is entry:
                    del self._frames[key]
                    return

    def _run(self) -> None:
        while True:
            entry = self._next()
            if entry is None:
                return
            item, route = entry
            try:
                self.send(item, route)
            except self.lost as err:
                if not self.on_lost(err):
                    self.broken.set()  # the other side is gone: whoever serves stops
                    return
                with self._cond:
                    if self._closed:
                        return  # closing while the channel is away: nothing more can go out
                continue
            except TypeError:
                log.exception("could not encode %s %s", item.get("kind"), item.get("topic") or item.get("id"))
                if item.get("kind") == "answer" and item.get("ok"):  # its asker hears why, not a timeout
                    self._replace(entry, {**{k: v for k, v in item.items() if k != "result"}, "ok": False,
                                          "status": 500, "type": "InternalError",
                                          "error": "the training engine's answer could not be encoded "
                                                   "(see the server log)"})
                    continue
            self.on_sent()
            self._done(entry)

    def _replace(self, entry: tuple, item: dict) -> None:
        with self._cond:
            if self._queue and self._queue[0] is entry:
                self._queue[0] = (item, entry[1])

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (while the channel takes it), then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.thread.join(timeout)
        with self._cond:
            self._queue.clear()
            self._frames.clear()


# ---- the web side ---------------------------------------------------------------------------------

OWNER_LOCKS = 64  # one run:create at a time per owner: striped, a bounded number of locks whoever asks


def owner_lock_index(owner: str) -> int:
    return int(hashlib.sha256(owner.encode()).hexdigest()[:8], 16) % OWNER_LOCKS


def runs_held(engines: "Engines", owner: str) -> int:
    """The owner's private runs in every engine that answers (runs:owned)."""
    return sum(int(answer.get("runs", 0)) for answer in engines.everywhere("runs:owned", {"owner": owner}))


ASKER: ContextVar[Optional[str]] = ContextVar("asker", default=None)


@contextmanager
def asking(asker: Optional[str]):
    """Commands sent meanwhile from this thread carry `asker` (who waits for them: a viewer), so
    that the engine can drop them unanswered when that viewer leaves (ASKER_GONE)."""
    token = ASKER.set(asker)
    try:
        yield
    finally:
        ASKER.reset(token)


def envelope(command: dict) -> dict:
    """`command` with its asker, when a viewer is named (`asking`)."""
    asker = ASKER.get()
    return {**command, "asker": asker} if asker is not None else command


def refusal(answer: dict) -> UserError:
    """The engine's refusal as the error the web tier raises (its words, its status)."""
    cls = ERROR_TYPES.get(answer.get("type"), UserError)
    return cls(answer.get("error") or "the training engine refused the request", status=answer.get("status"))


def result_of(answer: dict) -> dict:
    """An answer's result, or its refusal raised."""
    if answer.get("ok"):
        return answer.get("result") or {}
    raise refusal(answer)


class Requests:
    """The requests a web process waits on: futures by id, resolved by the channel's reader."""

    def __init__(self):
        self._ids = itertools.count(1)
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()

    def open(self) -> tuple[int, Future]:
        request_id, future = next(self._ids), Future()
        with self._lock:
            self._pending[request_id] = future
        return request_id, future

    def forget(self, request_id: int) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def resolve(self, answer: dict) -> None:
        with self._lock:
            future = self._pending.get(answer.get("id"))
        if future is not None and not future.done():
            future.set_result(answer)

    def fail_all(self, words: str) -> None:
        """Every pending request gets an EngineUnavailable answer in these words (the line dropped)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            if not future.done():
                future.set_result({"ok": False, "type": "EngineUnavailable", "status": 503, "error": words})


class Engines(Protocol):
    """"The engines", as the web tier uses them, whatever their layout: server/link/router.py
    EngineRouter (one machine: processes over pipes) and server/link/redis_router.py
    RedisEngines (any machines, over Redis). `status`/`reason`/`restarts` are the shared run's
    engine's, as the `engine` event tells them."""

    status: str  # "starting" | "up" | "down"
    reason: Optional[str]
    restarts: int

    def start(self, *, wait: bool = True) -> None: ...

    def close(self, timeout: float = ...) -> None: ...

    def request(self, name: str, args: Optional[dict] = None, *, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        """Ask the engine holding `args["run"]` (default the shared run); refusals raise UserError."""

    def everywhere(self, name: str, args: Optional[dict] = None) -> list[dict]:
        """The same request to every engine that is up (the answers of those that answered)."""

    def create_run(self, args: dict, *, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        """A new private run on the least-loaded engine. With args["owner"], one at a time per
        owner over every web process, with "held" (its runs in every engine: runs:owned) added,
        so the engine's per-owner cap holds across engines."""
