"""The web tier's engines over Redis (`--role web`): the `Engines` interface (server/link/line.py)
on the bus's EngineClient (server/link/redis_bus.py), so the web features do not care where engines run.

Status, as the pages hear it in the `engine` event: "up" while an alive engine holds the
shared run; "down" while none does (its engine died: another takes it over within 15 s) or
while Redis is away, with the reason in words; each new holder counts as a restart (the pages
then resync from it).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..errors import EngineUnavailable, NotFound
from .names import SHARED
from .line import REQUEST_TIMEOUT_S, runs_held
from .redis_client import EngineClient

log = logging.getLogger(__name__)

WATCH_S = 0.5  # how often the shared run's holder is looked up
READY_TIMEOUT_S = 60.0  # a web process waits this long at start for an engine to hold the shared run
REDIS_JUST_STARTED_S = 20  # a Redis up for less than this has just restarted (its keys are gone)


class RedisEngines:
    def __init__(self, redis_url: str, *, on_message: Callable[[dict], None],
                 on_status: Callable[[dict], None] = lambda status: None,
                 on_runs_lost: Callable[[list, str], None] = lambda runs, why: None,
                 secret: Optional[str] = None):
        self.redis_url = redis_url
        self.on_message = on_message
        self.on_status = on_status
        self.on_runs_lost = on_runs_lost
        self.status = "starting"
        self.reason: Optional[str] = None
        self.restarts = 0
        self.holder: Optional[str] = None
        self.redis_down: Optional[str] = None
        self._stop = threading.Event()
        self.client = EngineClient(redis_url, on_message=self._message, on_status=self._redis_status, secret=secret)
        self._watcher: Optional[threading.Thread] = None

    def _message(self, item: dict) -> None:
        self.on_message({"topic": item.get("topic"), "run": item.get("run"), "payload": item.get("payload")})

    def _set(self, status: str, reason: Optional[str]) -> None:
        if (status, reason) == (self.status, self.reason):
            return
        self.status, self.reason = status, reason
        try:
            self.on_status({"status": status, "reason": reason, "restarts": self.restarts})
        except Exception:
            log.exception("telling the pages about the engines failed")

    def _redis_status(self, status: dict) -> None:
        self.redis_down = None if status["status"] == "up" else (status.get("reason") or "Redis is unreachable")
        if self.redis_down:
            self._set("down", f"{self.redis_down}: the pages are told again when it is back")

    def _look(self) -> None:
        try:
            holder = self.client.engine_for(SHARED)
            why = None if holder else self._why_no_holder()
        except EngineUnavailable as err:
            holder, why = None, str(err)
        if holder is None:
            self._set("down", why)
        elif holder != self.holder or self.status != "up":
            if self.holder is not None:
                self.restarts += 1
            self.holder = holder
            self._set("up", None)

    def _why_no_holder(self) -> str:
        try:
            restarted = self.client.redis.info("server").get("uptime_in_seconds", 10**9) < REDIS_JUST_STARTED_S
        except Exception:
            restarted = False
        if restarted:
            return ("Redis restarted (it is back, empty): the engines are registering again and the shared run's "
                    "engine takes it back in a moment")
        return "no training engine holds the shared run right now; one takes it over within 15 s"

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_S):
            try:
                self._look()
            except Exception:
                log.exception("looking up the shared run's engine failed")

    # ---- Engines -----------------------------------------------------------------------------------
    def start(self, *, wait: bool = True) -> None:
        deadline = time.monotonic() + (READY_TIMEOUT_S if wait else 0)
        while True:
            self._look()
            if self.status == "up" or time.monotonic() >= deadline:
                break
            time.sleep(WATCH_S)
        if self.status != "up":
            log.warning("no engine holds the shared run yet (%s); serving anyway", self.reason)
        self._watcher = threading.Thread(target=self._watch, name="shared-run-holder", daemon=True)
        self._watcher.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.client.close(timeout)

    # ---- requests ---------------------------------------------------------------------------------
    def request(self, name: str, args: Optional[dict] = None, *, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        args = dict(args or {})
        run = args.get("run", SHARED)
        engine = self.client.engine_for(run)
        if engine is None and run != SHARED:
            raise NotFound(f"there is no run {run!r} (a private run is put away once its owner has been gone "
                           "a while; the runs list keeps its record)")
        return self.client.request(name, args, run=run, timeout=timeout, engine=engine)

    def everywhere(self, name: str, args: Optional[dict] = None) -> list[dict]:
        answers = []
        try:
            engines = self.client.engines()
        except EngineUnavailable:
            return answers
        for info in engines:
            try:
                answers.append(self.client.request(name, args, engine=info["engine"]))
            except EngineUnavailable:
                continue
        return answers

    def create_run(self, args: dict, *, timeout: float = REQUEST_TIMEOUT_S, command: str = "run:create") -> dict:
        """One at a time per owner over every web process (a Redis lock), with its runs in every
        engine counted ("held": the cap is per owner, whichever engines its runs are in);
        `command`: run:create, or watch:open for a script's own network."""
        owner = args.get("owner")
        if not isinstance(owner, str):
            return self.client.request(command, args, timeout=timeout, engine=self.client.pick_engine())
        with self.client.owner_lock(owner, timeout):
            args = {**args, "held": runs_held(self, owner)}
            return self.client.request(command, args, timeout=timeout, engine=self.client.pick_engine())
