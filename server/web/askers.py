"""Who waits for a costly engine command (server/link/line.py COSTLY_COMMANDS: a lesson reveal's
trial runs, a replay frame): each is sent naming its asker (this web process and the viewer's
connection). When a viewer leaves while such a command of its is still waiting for its turn,
the engine holding its run is told (`asker:gone`) and drops it instead of computing it for
nobody (the engine drops one whose asker's time ran out by itself)."""
from __future__ import annotations

import logging
import threading
from collections import Counter
from contextlib import contextmanager

from ..errors import UserError
from ..link.line import ASKER_GONE, asking

log = logging.getLogger(__name__)

GONE_TIMEOUT_S = 5.0
LEFT_WORDS = "this viewer disconnected before the engine was asked; nothing was computed"


class Askers:
    def __init__(self, playground, is_connected):
        self.playground = playground
        self.is_connected = is_connected  # sid -> bool (web/transport.py)
        self._waiting: dict[str, Counter] = {}  # sid -> run -> costly commands it waits for
        self._lock = threading.Lock()

    def name(self, sid: str) -> str:
        return f"{self.playground.web_id}:{sid}"

    @contextmanager
    def asking(self, sid: str, run: str):
        """Around one costly request of viewer `sid` about `run`."""
        with self._lock:
            self._waiting.setdefault(sid, Counter())[run] += 1
        try:
            # Counted first, then checked: a viewer that left before is refused here, one that
            # leaves after is found waiting by `left`.
            if not self.is_connected(sid):
                raise UserError(LEFT_WORDS, status=410)
            with asking(self.name(sid)):
                yield
        finally:
            with self._lock:
                runs = self._waiting.get(sid)
                if runs is not None:
                    runs[run] -= 1
                    if runs[run] <= 0:
                        del runs[run]
                    if not runs:
                        del self._waiting[sid]

    def left(self, sid: str) -> None:
        """Viewer `sid` disconnected: the engines holding what it waits for drop it."""
        with self._lock:
            runs = list(self._waiting.pop(sid, ()))
        if runs:  # off the disconnecting thread (it may be the transport's own)
            self.playground.follow_ups.put(lambda: self._tell(sid, runs))

    def _tell(self, sid: str, runs: list) -> None:
        for run in runs:
            try:
                self.playground.request(ASKER_GONE, {"run": run, "asker": self.name(sid)}, timeout=GONE_TIMEOUT_S)
            except UserError as err:  # the run or its engine is gone: nothing to drop there
                log.info("could not tell the engine of run %s that a viewer left: %s", run, err)
