"""What a viewer does with the live-weights chain (server/engine/deltas.py): apply a key frame,
then each delta, and read the picture. The oracle the tests hold the engine's frames and the
page's twin (static/js/features/inside/chains.js) to; the server itself never reads its frames."""
from __future__ import annotations

import zlib

import numpy as np

from server.engine.deltas import LEVELS


def unpack(data: bytes, shape) -> np.ndarray:
    return np.frombuffer(zlib.decompress(data), dtype=np.int8).reshape(shape)


def decoded(codes: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """What a viewer holds, as float32: codes[j] * 2**exponent[j] / LEVELS."""
    return (codes.astype(np.float32) * np.exp2(exponents.astype(np.float32))[:, None] / LEVELS).astype(np.float32)


class RowDeltasReader:
    """What a viewer does with the frames (the page's static/js twin is pinned to this by a
    browser test): apply a key frame, then each delta, and read the picture."""

    def __init__(self, rows: int, cols: int):
        self.shape = (rows, cols)
        self.codes: np.ndarray | None = None
        self.exponents: np.ndarray | None = None

    def apply(self, part: dict) -> None:
        if "codes" in part:  # a key frame
            self.exponents = np.frombuffer(part["exponents"], dtype=np.int8).copy()
            self.codes = unpack(part["codes"], self.shape).copy()
            return
        if self.codes is None:
            raise ValueError("a delta needs a key frame first")
        shifts = np.frombuffer(part["shifts"], dtype=np.uint8)
        rows = shifts > 0
        self.codes[rows] = self.codes[rows] >> shifts[rows, None].astype(np.int8)
        self.exponents = (self.exponents + shifts).astype(np.int8)
        self.codes = (self.codes + unpack(part["changes"], self.shape)).astype(np.int8)

    def values(self) -> np.ndarray:
        return decoded(self.codes, self.exponents)
