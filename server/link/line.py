"""The engine line's core, written once for both channels (the pipe, server/link/client.py and
server/engine/process.py; Redis, server/link/redis_bus.py):

- the engine side: `answer_to(handler, command)` turns one command into its answer (a refusal
  keeps its words, status and type; anything else is an internal error, logged), and `Outbox`
  sends answers and messages from one thread in the order they were put, whole live-view frames
  newest-only per (run, stream);
- the web side: `Requests` gives each request an id and a future, resolves it from the answer,
  turns a refusal back into the same `UserError`, and tells every pending request in words
  when the line drops.

A channel only moves bytes: it hands `Outbox` a `send(item, route)` and feeds `Requests` the
answers it reads.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future
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
