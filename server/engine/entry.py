"""How this server's engines run on this machine, handed by the entry point to the web tier's
line (server/link/local.py EngineEntry): processes of their own (what users get), or, when a
test hands in a dataset, threads of the test's process (the same pipe, codec and commands)."""
from __future__ import annotations

import functools
import multiprocessing
import threading
from typing import Callable

from ..link.local import (RedisEngineHandle, SupervisedEngines, engine_options, engine_process_starter,
                          redis_engine_process)
from . import process, redis_engine


class LocalEngines:
    def __init__(self, dataset=None):
        self.dataset = dataset

    def pipe_starters(self, settings) -> list[Callable[[], tuple]]:
        if self.dataset is None:
            options = settings.model_dump(mode="json")
            return [engine_process_starter(process.main, options, index) for index in range(settings.engines)]
        from .runtime import make_engine_factory  # tests only: that process has torch anyway
        return [engine_threads_starter(lambda opts: make_engine_factory(settings, dataset=self.dataset, **opts), index)
                for index in range(settings.engines)]

    def redis_engines(self, settings) -> SupervisedEngines:
        # The runs database brought up to date once, here, before any engine opens it: engines
        # starting together on one SQLite file each migrating raced ("database is locked").
        migrate_once(settings)
        if self.dataset is None:
            options = settings.model_dump(mode="json")
            starters = [functools.partial(redis_engine_process, redis_engine.process_main, options, index)
                        for index in range(settings.engines)]
        else:
            starters = [functools.partial(redis_engine_thread, settings, self.dataset, index)
                        for index in range(settings.engines)]
        return SupervisedEngines(starters, is_up=registered_on(settings.redis))


def registered_on(redis_url: str):
    """`is_up(handle)`: whether that local engine process is registered alive on Redis (its id
    is host-pid, redis_endpoint.default_engine_id)."""
    import socket

    from ..link.redis_bus import connect, engine_key

    client = connect(redis_url)

    def is_up(handle) -> bool:
        if handle.pid is None:  # an engine in a thread (tests): up once its thread runs
            return handle.exitcode is None
        return bool(client.exists(engine_key(f"{socket.gethostname()}-{handle.pid}")))

    return is_up


def migrate_once(settings) -> None:
    """Open the runs database once (its migrations run) and close it, marking nothing: which
    runs are over is each engine's to say when it starts (who is alive on Redis)."""
    from .records import RunStore

    RunStore(settings.data_dir, database_url=settings.database, is_stale=lambda engine: False).close()


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
        mine, theirs = multiprocessing.Pipe(duplex=True)
        stop = threading.Event()
        built: dict = {}

        def build(publish):
            built["engine"] = make_engine(publish)
            return built["engine"]

        thread = threading.Thread(target=process.serve, args=(theirs, build), kwargs={"stop": stop},
                                  name="engine-in-thread", daemon=True)
        thread.start()
        return mine, ThreadHandle(thread, stop, built)

    return start


def redis_engine_thread(settings, dataset, index: int) -> RedisEngineHandle:
    stop, ready = threading.Event(), threading.Event()
    settings = settings.model_copy(update={"engine_id": f"{settings.engine_id or 'test'}-{index}"})
    thread = threading.Thread(target=redis_engine.run_engine, args=(settings,),
                              kwargs={"stop": stop, "dataset": dataset, "ready": ready},
                              name=f"redis-engine-{index}", daemon=True)
    thread.start()
    ready.wait(60)
    return RedisEngineHandle(thread=thread, stop=stop)
