"""Where the engine runs on this machine: a process of its own (what `python -m server` does)
or, for tests, a thread of this process. Both talk over a real pipe with the same codec, so
the web tier cannot tell them apart."""
from __future__ import annotations

import multiprocessing
import threading
from typing import Callable


def _engine_process_main(connection, options: dict, engine_options: dict) -> None:
    # Imported in the child only: the web process never loads torch.
    from server.engine.process import main
    main(connection, options, engine_options)


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


def engine_process_starter(options: dict, index: int = 0) -> Callable[[], tuple]:
    """`start()` for EngineHost: a new engine process with these Settings (a plain dict), the
    server's engine number `index`."""
    context = multiprocessing.get_context("spawn")
    starts = [0]

    def start():
        mine, theirs = context.Pipe(duplex=True)
        process = context.Process(target=_engine_process_main,
                                  args=(theirs, options, engine_options(index, starts[0] > 0)),
                                  name=f"playground-engine-{index}", daemon=False)
        starts[0] += 1
        process.start()
        theirs.close()
        return mine, ProcessHandle(process)

    return start


class ThreadHandle:
    """An engine in a thread of this process (tests): it 'exits' when its serve loop returns."""

    def __init__(self, thread, stop: threading.Event, built: dict):
        self.thread, self.stop = thread, stop
        self.pid = None
        self._built = built

    @property
    def engine(self):
        """The Engine object itself (tests compare what the web tier says with it)."""
        return self._built.get("engine")

    @property
    def exitcode(self):
        return None if self.thread.is_alive() else 0

    def join(self, timeout=None):
        self.thread.join(timeout)

    def kill(self):
        self.stop.set()


def engine_threads_starter(make_for: Callable, index: int = 0) -> Callable[[], tuple]:
    """`start()` for EngineHost: engine `index` served in a thread of this process, over a real
    pipe; `make_for(engine_options) -> make_engine(publish)` builds it (server/engine/runtime.py)."""
    starts = [0]

    def start():
        make_engine = make_for(engine_options(index, starts[0] > 0))
        starts[0] += 1
        from server.engine.process import serve

        mine, theirs = multiprocessing.Pipe(duplex=True)
        stop = threading.Event()
        built: dict = {}

        def build(publish):
            built["engine"] = make_engine(publish)
            return built["engine"]

        thread = threading.Thread(target=serve, args=(theirs, build), kwargs={"stop": stop},
                                  name="engine-in-thread", daemon=True)
        thread.start()
        return mine, ThreadHandle(thread, stop, built)

    return start


# ---- engines on the Redis line (--redis with --role all) -------------------------------------------

def _redis_engine_main(options: dict, index: int) -> None:
    import signal
    import threading

    from server.engine.process import _die_with_parent, _name_this_process
    from server.link.redis_engine import run_engine
    from server.settings import Settings

    _die_with_parent()
    _name_this_process(f"nnlp-engine-{index}")
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the web tier stops us (SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = Settings.model_validate(options)
    run_engine(settings, stop=stop)


class RedisEngineHandle:
    """A local engine serving on Redis: `close()` stops it (it records every run first)."""

    def __init__(self, process=None, thread=None, stop=None):
        self.process, self.thread, self.stop = process, thread, stop

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

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


def redis_engine_process(options: dict, index: int) -> RedisEngineHandle:
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_redis_engine_main, args=(options, index),
                              name=f"playground-engine-{index}", daemon=False)
    process.start()
    return RedisEngineHandle(process=process)


def redis_engine_thread(settings, dataset, index: int) -> RedisEngineHandle:
    from server.link.redis_engine import run_engine

    stop, ready = threading.Event(), threading.Event()
    settings = settings.model_copy(update={"engine_id": f"{settings.engine_id or 'test'}-{index}"})
    thread = threading.Thread(target=run_engine, args=(settings,), kwargs={"stop": stop, "dataset": dataset,
                                                                          "ready": ready},
                              name=f"redis-engine-{index}", daemon=True)
    thread.start()
    ready.wait(60)
    return RedisEngineHandle(thread=thread, stop=stop)
