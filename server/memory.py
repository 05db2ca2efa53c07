"""Process memory: glibc's malloc arenas capped, and freed memory handed back to the system.
No torch, no web: both tiers' processes use it."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

MALLOC_ARENAS = 2  # glibc malloc arenas per process (see limit_malloc_arenas)


def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas. By default each thread that allocates can get its own arena
    (up to 8 per core); a new run's weights and optimizer state are made in one thread, used by
    the training thread and freed in yet another, and the freed memory, scattered over many
    arenas, is not reused: the process grew with every run (bench/endurance.py). With 2 it
    stays flat. False where the C library is not glibc (nothing to do there)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    M_ARENA_MAX = -8
    return bool(mallopt(M_ARENA_MAX, arenas))


def give_back_memory() -> bool:
    """Hand freed heap memory back to the system (glibc's malloc_trim): after many viewers
    left, their buffers are free inside the process but still counted in its size."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def machine_memory() -> int:
    """The memory of this machine (or of its cgroup, when that is smaller), in bytes."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as limit:
            text = limit.read().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return total


def parse_memory(text) -> int:
    """`--engine-memory`: a size such as 1500M, 2G, 2.5GB or 800MiB (bytes if no unit)."""
    units = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
             "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text)
    raw = str(text).strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = None
    if value is None or unit not in units or not value > 0 or value != value:
        raise ValueError(f"{text!r} is not an amount of memory: give e.g. 2G, 1500M or 800MiB")
    return int(value * units[unit])
