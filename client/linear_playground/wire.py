"""A snapshot's weights on the wire: int8 rows with a float32 scale per row, and after the first
one a DELTA from the weights the server holds, with error feedback.

The encoder keeps the server's copy of the weights exactly as the server computes it (the same
float32 operations as server/watch_frames.py `dequantized`: int8 to float32, times the row's
scale, added to the copy). Each delta is `current - that copy`, quantized per row, so what one
snapshot rounds off the next one sends again: errors do not pile up, and the server's copy comes
to the true weights as training slows (a row's error is at most half its step, its largest
change / 254). Half float16's bytes: a 784-256-10 network's snapshot is 204.6 kB, not 407 kB.

Whole snapshots: the first after (re)connecting, or after the server said it holds other
weights (int8 too: every snapshot the same size, so one pace); the last one at close() as
float32 (exact), and float16 when the weights are not all finite (the server says why in words).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

LEVELS = 127  # int8 values from -127 to 127 (symmetric: 0 stays 0)
WHOLE_WEIGHTS_PLEASE = "send whole weights"  # the server's words when it has no base for a delta


class Encoded:
    """One snapshot's wire fields, and the server's copy once it has taken them."""

    def __init__(self, fields: dict, held_after: np.ndarray, nbytes: int):
        self.fields, self.held_after, self.nbytes = fields, held_after, nbytes


class WeightsEncoder:
    def __init__(self, row_lengths: list[int]):
        self.lengths = np.asarray(row_lengths, dtype=np.int64)
        self.starts = np.concatenate(([0], np.cumsum(self.lengths)[:-1]))
        self.held: Optional[np.ndarray] = None  # the server's copy (flat float32), None: it has none we know
        self.held_step: Optional[int] = None

    @property
    def int8_bytes(self) -> int:
        """One int8 snapshot's bytes: a byte per value and four per row."""
        return int(self.lengths.sum()) + 4 * len(self.lengths)

    def forget(self) -> None:
        """The server may hold other weights (reconnected, or it said so): the next one is whole."""
        self.held, self.held_step = None, None

    def taken(self, encoded: Encoded, step: int) -> None:
        """The server took the snapshot: its copy is now `held_after`."""
        self.held, self.held_step = encoded.held_after, step

    def encode(self, values: np.ndarray, *, exact: bool) -> Encoded:
        """`values`: every layer's weight then bias, flat float32 (the snapshot's order)."""
        if exact:
            exact_values = values.astype("<f4")
            return Encoded({"dtype": "float32", "data": exact_values.tobytes()}, exact_values, exact_values.nbytes)
        if not np.isfinite(values).all():
            as_sent = values.astype("<f2")
            return Encoded({"dtype": "float16", "data": as_sent.tobytes()}, as_sent.astype(np.float32), as_sent.nbytes)
        delta = self.held is not None
        change = values - self.held if delta else values
        quantized, scales = self.quantize(change)
        step_values = quantized.astype(np.float32) * np.repeat(scales, self.lengths)  # as the server computes it
        held_after = self.held + step_values if delta else step_values
        fields = {"dtype": "int8", "data": quantized.tobytes(), "scales": scales.astype("<f4").tobytes()}
        if delta:
            fields.update(delta=True, base=self.held_step)
        return Encoded(fields, held_after, quantized.nbytes + scales.nbytes)

    def quantize(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row as int8 times a float32 scale (its largest magnitude / 127)."""
        largest = np.maximum.reduceat(np.abs(values), self.starts)
        scales = (largest / LEVELS).astype(np.float32)
        per_value = np.repeat(scales, self.lengths)
        steps = np.divide(values, per_value, out=np.zeros_like(values), where=per_value > 0)
        quantized = np.clip(np.rint(steps), -LEVELS, LEVELS).astype(np.int8)
        return quantized, scales
