"""Setting up the engine's process: PyTorch threads, the device, glibc's memory arenas, the
data set, and the `Engine` itself."""
from __future__ import annotations

import logging
from typing import Callable

import torch

from ..errors import UserError
from ..cores import default_torch_threads
from ..memory import limit_malloc_arenas
from .data import DataError, load_dataset
from .trainer import resolve_device

log = logging.getLogger(__name__)



def engine_memory_of(settings) -> int:
    """What one engine's runs may hold: --engine-memory, or a share of this machine's memory
    split between the engines on it (one with --role engine)."""
    from .memory_budget import default_engine_memory

    if settings.engine_memory:
        return settings.engine_memory
    return default_engine_memory(1 if settings.role == "engine" else settings.engines)


def stale_engines(engine_id: str, stale: str) -> Callable:
    """Whose unfinished runs an engine marks interrupted when it starts: "all" (the first engine
    of a server that has the data directory to itself), "own" (an engine started again: only
    its own), or a callable of its own (several machines: engines not alive in Redis)."""
    if callable(stale):
        return stale
    if stale == "all":
        return lambda engine: True
    return lambda engine: engine == engine_id


def make_engine_factory(settings, *, dataset=None, training_cores=None, private_run_cores=None,
                        engine_id: str = "local-0",
                        holds_shared: bool = True, stale="all") -> Callable:
    """`factory(publish) -> Engine` for these settings (`dataset`: tests hand one in;
    `training_cores`, `private_run_cores`: the cores the shared run and private runs train on,
    None: wherever the creating thread runs; `engine_id`,
    `holds_shared`, `stale`: its place among several engines)."""
    from .engine import Engine

    limit_malloc_arenas()
    torch.set_num_threads(settings.torch_threads or default_torch_threads())
    try:
        device = resolve_device(settings.device)
    except ValueError as err:
        raise UserError(str(err)) from None

    def factory(publish):
        data = dataset
        if data is None:
            try:
                data = load_dataset(
                    settings.dataset, data_dir=settings.data_dir, embedded_dir=settings.embedded_dir,
                    **({"mirrors": settings.mirrors} if settings.mirrors else {}),
                    allow_download=settings.allow_download)
            except DataError as err:
                raise UserError(str(err)) from None
        return Engine(data, data_dir=settings.data_dir, database_url=settings.database, device=device,
                      publish=publish, training_cores=training_cores,
                      private_run_cores=private_run_cores, engine_id=engine_id,
                      holds_shared=holds_shared, max_runs=settings.max_runs, owner_gone_s=settings.owner_grace_s,
                      is_stale=stale_engines(engine_id, stale), memory_limit=engine_memory_of(settings))

    return factory
