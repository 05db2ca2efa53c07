"""Engines on this machine, as the web tier starts and stops them: a process of its own per
engine (what `python -m server` does) or, for tests, a thread of this process. What runs in
them is the engine's (server/engine/entry.py); the entry point hands it over as an
`EngineEntry` (server/__init__.py create_app, server/__main__.py), so nothing here imports
the engine."""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Callable, Optional, Protocol

log = logging.getLogger(__name__)

RESTART_FIRST_S = 1.0  # a dead engine is started again after this, doubling while it keeps dying
RESTART_MOST_S = 30.0
HEALTHY_AFTER_S = 60.0  # an engine up this long starts its back-off afresh when it dies
WATCH_ENGINES_S = 0.5


class EngineEntry(Protocol):
    """How this server's engines run (server/engine/entry.py LocalEngines)."""

    def pipe_starters(self, settings) -> list[Callable[[], tuple]]:
        """One `start() -> (connection, handle)` per engine, for EngineHost (one machine)."""

    def redis_engines(self, settings) -> "SupervisedEngines":
        """This machine's engines on the Redis line, started (`--redis` with `--role all`), each
        started again when it dies; `close()` stops them."""


def engine_options(index: int, started_before: bool) -> dict:
    """Engine `index` of this server: the first holds the shared run; the first start of the
    first engine marks every unfinished run interrupted (the data directory is this server's),
    any later start only the engine's own."""
    return {"engine_id": f"local-{index}", "holds_shared": index == 0,
            "stale": "all" if index == 0 and not started_before else "own"}


class ProcessHandle:
    def __init__(self, process):
        self.process = process

    @property
    def pid(self):
        return self.process.pid

    @property
    def exitcode(self):
        return self.process.exitcode

    def join(self, timeout=None):
        self.process.join(timeout)

    def kill(self):
        self.process.kill()


def engine_process_starter(entry: Callable, options: dict, index: int = 0) -> Callable[[], tuple]:
    """`start()` for EngineHost: a new engine process running `entry(connection, options,
    engine_options)` (a module-level function: the child imports it; the web process never
    loads torch), with these Settings (a plain dict), the server's engine number `index`."""
    context = multiprocessing.get_context("spawn")
    starts = [0]

    def start():
        mine, theirs = context.Pipe(duplex=True)
        process = context.Process(target=entry, args=(theirs, options, engine_options(index, starts[0] > 0)),
                                  name=f"playground-engine-{index}", daemon=False)
        starts[0] += 1
        process.start()
        theirs.close()
        return mine, ProcessHandle(process)

    return start


class RedisEngineHandle:
    """A local engine serving on Redis: `close()` stops it (it records every run first)."""

    def __init__(self, process=None, thread=None, stop=None):
        self.process, self.thread, self.stop = process, thread, stop

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    @property
    def exitcode(self) -> Optional[int]:
        """None while it runs; its exit status once it has stopped (a thread: 0)."""
        if self.process is not None:
            return self.process.exitcode
        return None if self.thread.is_alive() else 0

    def close(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(timeout)
            if self.process.exitcode is None:
                self.process.kill()
                self.process.join(5)
        else:
            self.stop.set()
            self.thread.join(timeout)


def redis_engine_process(entry: Callable, options: dict, index: int) -> RedisEngineHandle:
    """An engine process on the Redis line running `entry(options, index)` (module-level); its
    settings (the Redis URL and secret with them) go through the spawn pipe, never argv."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=entry, args=(options, index), name=f"playground-engine-{index}", daemon=False)
    process.start()
    return RedisEngineHandle(process=process)


class SupervisedEngines:
    """This machine's engines on the Redis line (`--redis --role all`), each started by its
    `starter() -> RedisEngineHandle`: one that dies is said to be missing (`missing()`, which
    /healthz reports) and started again after RESTART_FIRST_S, backing off to RESTART_MOST_S
    while it keeps dying."""

    def __init__(self, starters: list[Callable[[], RedisEngineHandle]], *,
                 is_up: Optional[Callable[[RedisEngineHandle], bool]] = None, clock=time.monotonic):
        self.starters = starters
        self.clock = clock
        # Whether a started engine serves (registered on Redis): one started again is missing
        # until then, not only until its process exists.
        self.is_up = is_up
        self.handles = [start() for start in starters]
        now = clock()
        self.started_at = [now] * len(starters)
        self.restarts = [0] * len(starters)
        self._missing: dict[int, dict] = {}  # index -> {"since", "why", "next_try"}
        self._last_wait: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="local-engines", daemon=True)
        self._watcher.start()

    def __iter__(self):
        return iter(list(self.handles))

    def __len__(self):
        return len(self.handles)

    def missing(self) -> list[dict]:
        """The engines of this machine that are not running now, in words."""
        now = self.clock()
        with self._lock:
            return [{"engine": index, "why": gone["why"], "for_s": round(now - gone["since"], 1),
                     "restarts": self.restarts[index]} for index, gone in sorted(self._missing.items())]

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_ENGINES_S):
            for index in range(len(self.handles)):
                try:
                    self._check(index)
                except Exception:
                    log.exception("watching local engine %d failed", index)

    def _check(self, index: int) -> None:
        now = self.clock()
        with self._lock:
            gone = self._missing.get(index)
            if gone is not None and gone.get("coming_up"):
                if self.handles[index].exitcode is None and not self._up(self.handles[index]):
                    return
                if self.handles[index].exitcode is None:  # up: nothing missing any more
                    self._missing.pop(index, None)
                    return
                gone = None  # died again while coming up
                self._missing.pop(index, None)
            if gone is None:
                code = self.handles[index].exitcode
                if code is None:
                    return
                up_for = now - self.started_at[index]
                wait = RESTART_FIRST_S if up_for >= HEALTHY_AFTER_S else \
                    min(RESTART_MOST_S, max(RESTART_FIRST_S, 2 * self._last_wait.get(index, 0.0)))
                self._last_wait[index] = wait
                why = f"engine {index} stopped (exit status {code}); it is started again in {wait:g} s"
                gone = self._missing[index] = {"since": now, "why": why, "next_try": now + wait}
                log.warning(why)
            if now < gone["next_try"] or self._stop.is_set():
                return
        handle = self.starters[index]()  # outside the lock: /healthz never waits on a start
        with self._lock:
            if self._stop.is_set():
                handle.close()
                return
            self.handles[index] = handle
            self.started_at[index] = self.clock()
            self.restarts[index] += 1
            if self.is_up is None:
                self._missing.pop(index, None)
            else:
                self._missing[index] = {**self._missing[index], "coming_up": True, "why": (
                    f"engine {index} stopped and was started again (pid {handle.pid}); it is coming up")}
        log.warning("engine %d was started again (restart %d)", index, self.restarts[index])

    def _up(self, handle: RedisEngineHandle) -> bool:
        try:
            return bool(self.is_up(handle))
        except Exception:
            return False

    def close(self, timeout: float = 20.0) -> None:
        self._stop.set()
        self._watcher.join(timeout)
        for handle in list(self.handles):
            handle.close(timeout)
