"""How commands and messages cross a process boundary: MessagePack (plain data and bytes only:
nothing in a message can run code, whoever wrote it, unlike pickle)."""
from __future__ import annotations

import msgpack
import numpy as np


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot cross the engine line (plain data and bytes only)")


def pack(message) -> bytes:
    return msgpack.packb(message, use_bin_type=True, default=_plain)


def unpack(data: bytes):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
