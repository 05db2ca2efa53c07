"""Process memory: glibc's malloc arenas capped, and freed memory handed back to the system.
No torch, no web: both tiers' processes use it."""
from __future__ import annotations

import ctypes
import ctypes.util

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
