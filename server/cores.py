"""Which CPU cores train and which serve. On a machine of a few cores the training thread gets
its own (as many as PyTorch threads), and everything else (the web worker, the engine's other
threads, the browser...) the rest: the training thread then never waits behind a burst of
predictions, nor a prediction behind a training step (docs/performance.md: with 50 people
drawing on 2 cores, training kept 0.35 of its speed unpinned). Linux only; elsewhere nothing
is pinned. No torch, no web."""
from __future__ import annotations

import os
import threading
from typing import Optional


def default_torch_threads() -> int:
    """Half the cores, at least one. PyTorch's default (every core) leaves none for the web tier
    and the browser on the same machine, and its threads then wait on each other: on busy
    cores, 2 threads trained at 0.04-0.11 of 1 (bench/training_loop.py, docs/performance.md)."""
    return max(1, (os.cpu_count() or 2) // 2)


def plan(torch_threads: int) -> Optional[tuple[list[int], list[int]]]:
    """(training cores, the other cores), or None when there are too few to split."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    n = max(1, min(torch_threads, len(cores) - 1))
    return cores[-n:], cores[:-n]


def every_core() -> Optional[list[int]]:
    """The cores this process may run on (read before a thread pins itself), None off Linux."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def pin_this_thread(cores) -> bool:
    """Run the calling thread (and the threads it starts from now on) on these cores."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, cores)  # 0: the calling thread, on Linux
        return True
    except OSError:
        return False


FULL_SPEED_NICENESS = 10  # a run at full speed yields the CPU to paced runs (it takes what is left)


def yield_to_paced_runs(full_speed: bool) -> bool:
    """Linux: a training thread at full speed runs at a lower priority (nice +10), so paced runs
    keep their pace beside it and it gets what is left; back to normal when paced. Lowering a
    thread's priority is always allowed; raising it back needs root (CAP_SYS_NICE): without it
    the thread stays lowered until the run's thread ends, which is only slower when alone."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), FULL_SPEED_NICENESS if full_speed else 0)
        return True
    except OSError:
        return False
