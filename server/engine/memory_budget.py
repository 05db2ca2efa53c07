"""An engine's memory as a budget (issue 23, item 1): what a run will cost, estimated from its
setup before anything is built, and whether it fits in what this engine may use.

The estimate, per run, from the layer sizes (P parameters, W = 4·P bytes as float32):
- the network, its gradients and the optimizer's state (Adam: two moments; SGD with
  momentum: one buffer);
- the copies every run keeps beside it: the replica's shared-memory block, the engine's own
  reader copy, the private network queries and evaluations work on, the live views' snapshot;
- the replay's kept points (replay.py: float16 matrices, at most REPLAY_BUDGET_BYTES, never
  under 2 points) and one replay frame being made (a float32 network of a point);
- a fixed part for everything that does not grow with the network (its threads, curves,
  histograms, the live views' buffers).
COPIES, FIXED_BYTES and WARM_UP_BYTES were measured (bench/engine_memory.py; docs/performance.md
has the numbers): the estimate is at or above the most RSS a run was seen to add, for the
default and the biggest setup.

`MemoryBudget` keeps what each run holds (its estimate) and admits a new run, or a bigger
setup for a run, only while the engine's own base (measured when it started) plus every
run's estimate stays within the budget. A refusal says, in words, what would still fit.
"""
from __future__ import annotations

import os
import threading
from typing import Optional

from ..errors import LimitError
from ..experiment import MAX_UNITS, TrainConfig
from ..memory import machine_memory
from .replay import REPLAY_BUDGET_BYTES, REPLAY_POINTS, capacity_for, point_bytes

MB = 2**20
# Float32 copies of the weights a run holds at its peak besides the optimizer's state: the
# network and its gradients, the replica block and the reader's copy, the queries' and the
# evaluation's networks, the views' snapshots, a replay frame's network and the training step's
# and evaluation's temporaries. Measured, not counted: the biggest setup (784 -> 4 x 2048 -> 10,
# 54 MiB of weights) took 1,076-1,120 MB at its peak, trained, watched, replayed and evaluated
# (bench/engine_memory.py, docs/performance.md), about 19 times its weights with Adam's two.
COPIES = 18
FIXED_BYTES = 24 * MB  # threads, curves, histograms, the views' buffers
# What the first run leaves in an engine for good (PyTorch's kernels and pools made at first
# use; measured 93 MB): counted in the base, not in any run.
WARM_UP_BYTES = 96 * MB
# Without a flag: this share of the machine's memory, split between the engines on it.
MACHINE_SHARE = 0.75


def process_rss() -> int:
    """This process's resident memory, in bytes (Linux's /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def default_engine_memory(engines_on_this_machine: int) -> int:
    return int(machine_memory() * MACHINE_SHARE / max(1, engines_on_this_machine))


def optimizer_copies(config: TrainConfig) -> int:
    if config.optimizer == "adam":
        return 2
    return 1 if config.momentum else 0


def estimate_run_bytes(config: TrainConfig) -> int:
    """What a run of this setup will hold at most, in bytes (see the module's docstring)."""
    sizes = config.architecture.sizes
    weights = 4 * config.architecture.parameters
    replay = capacity_for(sizes, points=REPLAY_POINTS, budget=REPLAY_BUDGET_BYTES) * point_bytes(sizes)
    return (COPIES + optimizer_copies(config)) * weights + replay + FIXED_BYTES


def describe_bytes(n: int) -> str:
    if n >= 10 * 2**30:
        return f"{n / 2**30:.0f} GB"
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{max(0, n) / MB:.0f} MB"


def describe_setup(config: TrainConfig) -> str:
    return " → ".join(str(n) for n in config.architecture.sizes)


def biggest_that_fits(config: TrainConfig, room: int) -> Optional[TrainConfig]:
    """The widest setup with the same layers and optimizer that fits in `room` bytes (every
    hidden layer as wide as the narrowest that still fits, in steps of 16), or None."""
    layers = len(config.hidden_sizes)
    for width in range(min(MAX_UNITS, max(config.hidden_sizes)), 0, -16):
        candidate = config.updated({"hidden_sizes": [min(width, n) for n in config.hidden_sizes]})
        if estimate_run_bytes(candidate) <= room:
            return candidate
    if layers > 1:
        return biggest_that_fits(config.updated({"hidden_sizes": config.hidden_sizes[:1]}), room)
    return None


class MemoryBudget:
    """What the runs of one engine may hold together: `limit` bytes of this process's memory,
    of which `base` (the process before any run: torch, the digits) is already taken."""

    def __init__(self, limit: Optional[int], base: Optional[int] = None):
        self.limit = limit  # None: no budget (tests that do not care; every run is admitted)
        self.base = process_rss() + WARM_UP_BYTES if base is None else base
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def held(self) -> int:
        with self._lock:
            return sum(self._held.values())

    def admit(self, key: str, config: TrainConfig, *, force: bool = False) -> None:
        """Hold `config`'s estimate for run `key` (replacing what it held), or refuse in words,
        holding nothing new. `force`: hold it even past the budget (the shared run carried on
        by a new holder must not be refused)."""
        need = estimate_run_bytes(config)
        with self._lock:
            taken = sum(size for other, size in self._held.items() if other != key)
            smaller = need <= self._held.get(key, -1)  # a run may always shrink
            if self.limit is not None and not force and not smaller and self.base + taken + need > self.limit:
                room = self.limit - self.base - taken
                raise LimitError(self._refusal(config, need, room))
            self._held[key] = need

    def release(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def _refusal(self, config: TrainConfig, need: int, room: int) -> str:
        words = (f"not enough memory on this engine for a {describe_setup(config)} network: it needs about "
                 f"{describe_bytes(need)}, and {describe_bytes(room)} of this engine's "
                 f"{describe_bytes(self.limit)} are free")
        fits = biggest_that_fits(config, room)
        if fits is not None:
            return f"{words}. What fits now: {describe_setup(fits)} (hidden={','.join(map(str, fits.hidden_sizes))})"
        return f"{words}. Nothing fits now: try again when other runs are put away, or watch the shared run"
