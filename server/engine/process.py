"""The engine process: an `Engine` served over one connection to the web tier.

Threads: the main thread reads commands; a few command threads run them (a slow one, such as
a checkpoint of a big network, never holds up a pause), and the costly ones (a lesson reveal's
trial runs, a replay frame) one at a time on a thread of their own (link/line.py `Commands`:
those whose asker gave up are dropped); one sender thread writes answers and
messages in order, and live-view frames latest-first (a slow reader gets the newest frame of
each stream, never a backlog); a housekeeping thread does what was put off. The training
threads belong to the runs (server/engine/run.py).

It stops, recording every run up to its last step, when the web tier says `shutdown`, when the
connection closes (the web process is gone), on SIGTERM, or when its parent dies.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Optional

from ..errors import UserError
from ..link.codec import pack, unpack
from ..link.line import HOUSEKEEPING_S, Commands, Outbox

log = logging.getLogger(__name__)


def pipe_outbox(connection) -> Outbox:
    """The engine's Outbox on the pipe: a write that fails means the web tier is gone."""
    return Outbox(lambda item, route: connection.send_bytes(pack(item)))


def serve(connection, make_engine, *, stop: Optional[threading.Event] = None) -> None:
    """Build the engine (`make_engine(publish)`) and answer `connection` until told to stop or
    the connection closes; then close the engine (every run recorded) and say goodbye."""
    stop = stop or threading.Event()
    outbox = pipe_outbox(connection)
    try:
        engine = make_engine(outbox.message)
    except UserError as err:
        outbox.put({"kind": "fatal", "error": str(err)})
        outbox.close()
        return
    except Exception as err:
        log.exception("the engine could not start")
        outbox.put({"kind": "fatal", "error": f"the training engine could not start: {type(err).__name__}: {err}"})
        outbox.close()
        return
    outbox.put({"kind": "ready", "pid": os.getpid()})
    commands = Commands(engine.command, lambda reply, command: outbox.put(reply))

    def housekeeping():
        while not stop.wait(HOUSEKEEPING_S):
            try:
                engine.housekeeping()
            except Exception:
                log.exception("engine housekeeping failed")
            if outbox.broken.is_set():
                stop.set()

    threading.Thread(target=housekeeping, name="engine-housekeeping", daemon=True).start()

    def read():
        while not stop.is_set():
            try:
                if not connection.poll(0.2):
                    continue
                request = unpack(connection.recv_bytes())
            except (EOFError, OSError):
                break  # the web tier is gone
            except Exception:
                log.exception("unreadable request from the web tier")
                continue
            if request.get("kind") == "shutdown":
                break
            if request.get("kind") == "command":
                commands.submit(request)
        stop.set()

    reader = threading.Thread(target=read, name="engine-reader", daemon=True)
    reader.start()
    stop.wait()
    log.info("the engine is stopping: recording every run up to its last step")
    commands.shutdown()
    try:
        engine.close()
    finally:
        outbox.put({"kind": "bye"})
        outbox.close()
        try:
            connection.close()
        except OSError:
            pass


def name_this_process(name: str) -> None:
    """Linux: the process's name in ps/top (and /proc/PID/comm), e.g. "nnlp-engine-0"."""
    try:
        import ctypes
        PR_SET_NAME = 15
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies, whatever kills the parent."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main(connection, options: dict, engine_options: Optional[dict] = None) -> None:
    """The engine process's entry point (spawned by server/link/local.py, handed there by server/engine/entry.py). `options`: the server
    Settings as a plain dict; `engine_options`: this engine's place among several (runtime.py)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s engine %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its migration steps are not news
    die_with_parent()
    name_this_process("nnlp-engine-" + (engine_options or {}).get("engine_id", "local-0").rsplit("-", 1)[-1])
    stop = threading.Event()
    # Ctrl+C reaches the whole process group: the web tier decides when to stop (and tells us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    from ..cores import every_core, pin_this_thread
    from ..settings import Settings
    from .runtime import make_engine_factory

    settings = Settings.model_validate(options)
    all_cores = every_core() if settings.serving_cores else None
    # Every thread but the training threads serves on the serving cores (server/cores.py).
    pin_this_thread(settings.serving_cores)
    # Built inside serve(): a refusal (no CUDA, no data) goes back to the web tier in words.
    engine_options = engine_options or {}
    # The shared run trains on the training cores; private runs on every core (ten paced runs
    # need more than the serving cores alone: docs/performance.md).
    cores = settings.training_cores if engine_options.get("holds_shared", True) else None
    serve(connection, lambda publish: make_engine_factory(
        settings, training_cores=cores, private_run_cores=all_cores, **engine_options)(publish), stop=stop)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)  # nothing left to wait for (daemon threads, torch's pools)
