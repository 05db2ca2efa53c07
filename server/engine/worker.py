"""Work taken off the training thread: the training thread only copies what a job needs (a
snapshot of the weights: a tenth of a millisecond) and hands it over; one background thread
encodes frames, evaluates, and saves, on the other core. Of each kind of job only the newest
waits: a slow moment skips stale work instead of queueing it."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable

log = logging.getLogger(__name__)


class LatestWorker:
    def __init__(self, name: str):
        self.name = name
        self._jobs: "OrderedDict[Hashable, Callable[[], None]]" = OrderedDict()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False  # a job is being run right now
        self._closed = False
        self.busy_s: dict[Hashable, float] = {}  # kind -> seconds spent on its last job

    def submit(self, kind: Hashable, job: Callable[[], None]) -> None:
        """Run `job` soon; a waiting job of the same kind is replaced (it would be stale)."""
        with self._cond:
            if self._closed:
                return
            self._jobs.pop(kind, None)
            self._jobs[kind] = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                kind, job = self._jobs.popitem(last=False)
                self._running = True
            started = time.perf_counter()
            try:
                job()
            except Exception:  # one failing job must not stop the others
                log.exception("%s: a %s job failed", self.name, kind)
            finally:
                with self._cond:
                    self.busy_s[kind] = time.perf_counter() - started
                    self._running = False
                    self._cond.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every job handed over so far is done (True) or `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        self.drain(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


class Debounced:
    """Call `fn` at most every `interval` seconds; a call in between is remembered and made by
    the next `poll()` after the interval (the engine polls from its housekeeping thread)."""

    def __init__(self, fn, interval: float, clock=time.monotonic):
        self.fn, self.interval, self.clock = fn, interval, clock
        self._last = float("-inf")
        self._pending = False

    def __call__(self) -> None:
        if self.clock() - self._last >= self.interval:
            self._last = self.clock()
            self._pending = False
            self.fn()
        else:
            self._pending = True

    def poll(self) -> None:
        if self._pending and self.clock() - self._last >= self.interval:
            self()
