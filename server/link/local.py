"""Engines on this machine, as the web tier starts and stops them: a process of its own per
engine (what `python -m server` does) or, for tests, a thread of this process. What runs in
them is the engine's (server/engine/entry.py); the entry point hands it over as an
`EngineEntry` (server/__init__.py create_app, server/__main__.py), so nothing here imports
the engine."""
from __future__ import annotations

import multiprocessing
from typing import Callable, Protocol


class EngineEntry(Protocol):
    """How this server's engines run (server/engine/entry.py LocalEngines)."""

    def pipe_starters(self, settings) -> list[Callable[[], tuple]]:
        """One `start() -> (connection, handle)` per engine, for EngineHost (one machine)."""

    def redis_engines(self, settings) -> list:
        """This machine's engines on the Redis line, started (`--redis` with `--role all`):
        handles whose `close()` stops them."""


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
    """An engine process on the Redis line running `entry(options, index)` (module-level)."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=entry, args=(options, index), name=f"playground-engine-{index}", daemon=False)
    process.start()
    return RedisEngineHandle(process=process)
