"""Several engines behind one front: which engine holds which run, and requests sent there.

On one machine the web process starts `engines` engine processes (server/link/local.py): the
first holds the shared run, the others hold private runs (with one engine, it holds them all).
A request carries the run it is about (`args["run"]`, default "shared") and goes to the engine
holding that run; a new private run goes to the engine with the fewest runs. The router is
one of the two `Engines` (server/link/line.py), so the web tier does not care how many
engines there are, nor where.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from ..errors import EngineUnavailable, NotFound
from .client import EngineHost
from .line import OWNER_LOCKS, REQUEST_TIMEOUT_S, owner_lock_index, runs_held
from .names import SHARED

log = logging.getLogger(__name__)



class EngineRouter:
    def __init__(self, starters: list[Callable[[], tuple]], *, on_message: Callable[[dict], None],
                 on_status: Callable[[dict], None] = lambda status: None,
                 on_runs_lost: Callable[[list[str], str], None] = lambda runs, why: None):
        self.on_message = on_message
        self.on_runs_lost = on_runs_lost  # (run keys, words): an engine died with these runs
        self._where: dict[str, int] = {SHARED: 0}  # run key -> index of the engine holding it
        self._lock = threading.Lock()
        self._creating = [threading.Lock() for _ in range(OWNER_LOCKS)]  # one run:create per owner at a time
        self.hosts = [
            EngineHost(start, on_message=self._from(index), on_status=self._status_of(index, on_status))
            for index, start in enumerate(starters)]

    # ---- messages and status -------------------------------------------------------------------
    def _from(self, index: int):
        def handle(message: dict) -> None:
            run = message.get("run")
            if message.get("topic") == "run:closed":
                with self._lock:
                    self._where.pop(run, None)
            elif run is not None and run != SHARED:
                with self._lock:
                    self._where.setdefault(run, index)
            self.on_message({**message, "engine": index})
        return handle

    def _status_of(self, index: int, on_status):
        def handle(status: dict) -> None:
            if status["status"] == "down":
                with self._lock:
                    lost = [run for run, where in self._where.items() if where == index and run != SHARED]
                    for run in lost:
                        del self._where[run]
                if lost:
                    self.on_runs_lost(lost, status.get("reason") or "its training engine stopped")
            if index == 0:  # the shared run's engine: what /healthz and the `engine` event tell
                on_status(status)
        return handle

    # ---- Engines -----------------------------------------------------------------------------------
    @property
    def shared_host(self) -> EngineHost:
        return self.hosts[0]

    @property
    def status(self) -> str:
        return self.shared_host.status

    @property
    def reason(self) -> Optional[str]:
        return self.shared_host.reason

    @property
    def restarts(self) -> int:
        return self.shared_host.restarts

    @property
    def handle(self):
        """What runs the shared run's engine (tests reach the Engine of an engine in a thread)."""
        return self.shared_host.handle

    def start(self, *, wait: bool = True) -> None:
        for host in self.hosts:
            host.start(wait=wait)

    def close(self, timeout: float = 15.0) -> None:
        threads = [threading.Thread(target=host.close, args=(timeout,), daemon=True) for host in self.hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 5)

    # ---- requests --------------------------------------------------------------------------------
    def host_of(self, run: str) -> EngineHost:
        with self._lock:
            index = self._where.get(run)
        if index is None:
            raise NotFound(f"there is no run {run!r} (a private run is put away once its owner has "
                           "been gone a while; the runs list keeps its record)")
        return self.hosts[index]

    def request(self, name: str, args: Optional[dict] = None, *, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        args = args or {}
        return self.host_of(args.get("run", SHARED)).request(name, args, timeout=timeout)

    def everywhere(self, name: str, args: Optional[dict] = None) -> list[dict]:
        """The same request to every engine that is up (answers of those that answered)."""
        answers = []
        for host in self.hosts:
            try:
                answers.append(host.request(name, args))
            except EngineUnavailable:
                continue
        return answers

    def create_run(self, args: dict, *, timeout: float = REQUEST_TIMEOUT_S, command: str = "run:create") -> dict:
        """A new private run (`command`: run:create, or watch:open for a script's own network) on
        the engine for private runs with the fewest runs; one at a time per owner, with its runs in
        every engine counted ("held": the cap is per owner)."""
        owner = args.get("owner")
        if not isinstance(owner, str):
            return self._create_run(args, timeout, command)
        with self._creating[owner_lock_index(owner)]:
            return self._create_run({**args, "held": runs_held(self, owner)}, timeout, command)

    def _create_run(self, args: dict, timeout: float, command: str) -> dict:
        candidates = list(range(1, len(self.hosts))) or [0]
        with self._lock:
            load = {index: 0 for index in candidates}
            for run, index in self._where.items():
                if index in load:
                    load[index] += 1
        order = sorted(candidates, key=lambda index: (self.hosts[index].status != "up", load[index]))
        answer = self.hosts[order[0]].request(command, args, timeout=timeout)
        with self._lock:
            self._where[answer["run"]] = order[0]
        return answer
