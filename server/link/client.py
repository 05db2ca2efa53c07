"""The web tier's side of the engine line: requests answered by the engine, and its messages.

`EngineLink` is one connection: `request(name, args)` sends a command and waits for its answer
(a refusal comes back as the same `UserError` words); messages go to `on_message`.
`EngineHost` keeps an engine running: it starts one (`start()` gives a fresh connection and a
handle on what runs it), notices when it dies, says so (`on_status`), and starts a new one.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Optional

from ..errors import EngineUnavailable, UserError
from .codec import pack, unpack
from .line import DOWN_WORDS, REQUEST_TIMEOUT_S, TOO_BIG_WORDS, Requests, envelope, result_of

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 300.0  # a first start may download MNIST
RESTART_DELAYS_S = (0.0, 1.0, 2.0, 5.0, 10.0)  # after the engine died, before each new start


class EngineLink:
    def __init__(self, connection, on_message: Callable[[dict], None]):
        self.connection = connection
        self.on_message = on_message
        self.requests = Requests()
        self._send_lock = threading.Lock()
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.fatal: Optional[str] = None  # why the engine could not start, in words
        self.pid: Optional[int] = None
        self._reader = threading.Thread(target=self._read, name="engine-link", daemon=True)
        self._reader.start()

    def _send(self, message: dict) -> None:
        data = pack(message)
        with self._send_lock:
            self.connection.send_bytes(data)

    def request(self, name: str, args: Optional[dict] = None, *, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        if self.closed.is_set():
            raise EngineUnavailable(DOWN_WORDS)
        if threading.current_thread() is self._reader:  # the answer would wait for this very thread
            raise RuntimeError(f"{name} was asked of the engine from its link's reader thread, which reads the "
                               "answer: ask from another thread (Playground.subscribe(..., asks_engine=True))")
        request_id, future = self.requests.open()
        try:
            self._send(envelope({"kind": "command", "id": request_id, "name": name, "args": args or {},
                                 "sent": time.time(), "timeout": timeout}))
            answer = future.result(timeout)
        except FutureTimeout:
            raise EngineUnavailable(f"the training engine did not answer {name} within {timeout:g} s") from None
        except (OSError, EOFError, ValueError):
            raise EngineUnavailable(DOWN_WORDS) from None
        except (TypeError, OverflowError):  # e.g. an integer too big for the line
            raise UserError(TOO_BIG_WORDS) from None
        finally:
            self.requests.forget(request_id)
        return result_of(answer)

    def shutdown(self) -> None:
        """Ask the engine to stop (it records every run and says bye)."""
        try:
            self._send({"kind": "shutdown"})
        except (OSError, EOFError, ValueError):
            pass

    def _read(self) -> None:
        try:
            while True:
                try:
                    item = unpack(self.connection.recv_bytes())
                except (EOFError, OSError):
                    return
                kind = item.get("kind")
                if kind == "answer":
                    self.requests.resolve(item)
                elif kind == "message":
                    try:
                        self.on_message(item)
                    except Exception:
                        log.exception("handling the engine's %s message failed", item.get("topic"))
                elif kind == "ready":
                    self.pid = item.get("pid")
                    self.ready.set()
                elif kind == "fatal":
                    self.fatal = item.get("error")
                elif kind == "bye":
                    return
        finally:
            self.closed.set()
            self.ready.set()  # wake anyone waiting for a start that will not come
            self.requests.fail_all(DOWN_WORDS)
            try:
                self.connection.close()
            except OSError:
                pass


class EngineHost:
    """Keeps one engine running for the web tier. `start()` returns (connection, handle): the
    handle has `exitcode` (None while it runs), `join(timeout)`, `kill()` and `describe()`."""

    def __init__(self, start: Callable[[], tuple], *, on_message: Callable[[dict], None],
                 on_status: Callable[[dict], None] = lambda status: None, restart: bool = True):
        self._start = start
        self.on_message = on_message
        self.on_status = on_status
        self.restart = restart
        self.link: Optional[EngineLink] = None
        self.handle = None
        self.status = "starting"
        self.reason: Optional[str] = None
        self.restarts = 0
        self._closing = False
        self._watcher: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # ---- running ----------------------------------------------------------------------------
    def start(self, *, wait: bool = True) -> None:
        """Start the engine; with `wait`, return once it is ready (UserError if it cannot start)."""
        self._launch()
        if wait:
            self._await_ready()
        self._watcher = threading.Thread(target=self._watch, name="engine-watcher", daemon=True)
        self._watcher.start()

    def _launch(self) -> None:
        connection, handle = self._start()
        with self._lock:
            self.link = EngineLink(connection, self.on_message)
            self.handle = handle

    def _await_ready(self) -> None:
        link = self.link
        if not link.ready.wait(READY_TIMEOUT_S) or link.closed.is_set() and not link.ready.is_set():
            raise UserError("the training engine did not start in time")
        if link.fatal or (link.closed.is_set() and link.pid is None):
            self._reap()
            raise UserError(link.fatal or f"the training engine stopped while starting ({self._ended()})")
        self._set_status("up", None)

    def _set_status(self, status: str, reason: Optional[str]) -> None:
        self.status, self.reason = status, reason
        try:
            self.on_status({"status": status, "reason": reason, "restarts": self.restarts})
        except Exception:
            log.exception("telling the pages about the engine failed")

    def _reap(self, timeout: float = 10.0) -> None:
        handle = self.handle
        if handle is None:
            return
        handle.join(timeout)
        if handle.exitcode is None:
            handle.kill()
            handle.join(5)

    def _ended(self) -> str:
        code = self.handle.exitcode if self.handle is not None else None
        if code is None:
            return "it stopped answering"
        if code < 0:
            return f"killed by signal {-code}"
        return f"exit status {code}"

    def _watch(self) -> None:
        while True:
            link = self.link
            link.closed.wait()
            if self._closing:
                return
            self._reap(timeout=5)
            why = f"The training engine stopped ({self._ended()}); starting a new one. The runs recorded so far are kept."
            log.warning(why)
            self._set_status("down", why)
            if not self.restart:
                return
            for delay in RESTART_DELAYS_S + (RESTART_DELAYS_S[-1],) * 1000:
                if self._closing:
                    return
                time.sleep(delay)
                self.restarts += 1
                try:
                    self._launch()
                    self._await_ready()
                    break
                except Exception as err:
                    log.warning("the training engine did not start again: %s", err)
                    self._set_status("down", f"The training engine could not start again ({err}); trying again.")

    # ---- use ----------------------------------------------------------------------------------
    def request(self, name: str, args: Optional[dict] = None, *, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        link = self.link
        if link is None or self.status != "up":
            raise EngineUnavailable(DOWN_WORDS)
        return link.request(name, args, timeout=timeout)

    @property
    def pid(self) -> Optional[int]:
        return self.link.pid if self.link else None

    def close(self, timeout: float = 15.0) -> None:
        """Stop the engine: it records every run up to its last step, then exits."""
        self._closing = True
        link = self.link
        if link is None:
            return
        link.shutdown()
        link.closed.wait(timeout)
        self._reap(timeout=timeout)
