"""Live weights, sent small: rows of a weight matrix as 5-bit codes, and after a first full
picture (a key frame) only the codes that moved (deltas).

What a viewer holds of row j is `codes[j] * 2**exponent[j] / LEVELS` (codes -31..31). Each row's
exponent is the power of two at or above its largest magnitude; when a row outgrows it, the
exponent goes up by one and the viewer halves that row's codes (an arithmetic shift right, the
same integer operation on both sides), so nothing is resent for it. A code is sent again only
when the weight has moved by at least THRESHOLD steps from what the viewer holds (one step is
1/31 of the row's scale): the picture a viewer holds is never more than 1.5 steps from the live
weights, and an exact frame (threshold 1) is sent whenever the run stands still.

Measured on the default run at 50 steps/s (docs/performance.md): about 10 kB per frame on
average instead of 200 kB, the first seconds (when weights move fastest) the largest.
"""
from __future__ import annotations

import zlib

import numpy as np

LEVELS = 31  # codes -31..31: 63 shades per sign, more than the eye tells apart in a 28x28 tile
THRESHOLD = 2  # a code is resent once the weight moved this many steps from what viewers hold
MIN_EXPONENT = -60
COMPRESSION = 6


def _exponents(matrix: np.ndarray) -> np.ndarray:
    largest = np.abs(matrix).max(axis=1)
    safe = np.where(largest > 0, largest, 2.0 ** MIN_EXPONENT)
    return np.clip(np.ceil(np.log2(safe)), MIN_EXPONENT, 60).astype(np.int8)


def _codes(matrix: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    scaled = matrix / np.exp2(exponents.astype(np.float64))[:, None] * LEVELS
    return np.clip(np.rint(scaled), -LEVELS, LEVELS).astype(np.int8)


def pack(codes: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(codes, dtype=np.int8).tobytes(), COMPRESSION)


class RowDeltas:
    """One matrix's rows as viewers hold them, and the frames that keep them in step."""

    def __init__(self, threshold: int = THRESHOLD):
        self.threshold = threshold
        self.shown: np.ndarray | None = None  # int8 codes, what every viewer of this chain holds
        self.exponents: np.ndarray | None = None
        self.last_changed = False  # whether the last delta changed anything

    def key(self, matrix: np.ndarray) -> dict:
        """The whole picture: {"exponents": int8 per row, "codes": zlib of int8 rows}."""
        matrix = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
        self.exponents = _exponents(matrix)
        self.shown = _codes(matrix, self.exponents)
        return {"exponents": self.exponents.tobytes(), "codes": pack(self.shown)}

    def delta(self, matrix: np.ndarray, *, exact: bool = False) -> dict:
        """What moved since the last frame: {"shifts": uint8 per row (how many times the row's
        exponent went up: halve its codes that many times first), "changes": zlib of int8
        codes to add}. `exact`: every code that differs at all (threshold 1)."""
        if self.shown is None:
            raise ValueError("a delta needs a key frame first")
        matrix = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
        needed = _exponents(matrix)
        # (a shift of 31 or more leaves only the sign: the same in numpy and JavaScript)
        shifts = np.clip(needed.astype(np.int16) - self.exponents, 0, 31).astype(np.uint8)
        if shifts.any():
            rows = shifts > 0
            self.shown[rows] = self.shown[rows] >> shifts[rows, None].astype(np.int8)
            self.exponents = (self.exponents + shifts).astype(np.int8)
        target = _codes(matrix, self.exponents)
        change = target.astype(np.int16) - self.shown
        if not exact:
            change[np.abs(change) < self.threshold] = 0
        self.shown = (self.shown + change).astype(np.int8)
        self.last_changed = bool(shifts.any() or change.any())
        return {"shifts": shifts.tobytes(), "changes": pack(change.astype(np.int8))}
