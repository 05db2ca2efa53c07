"""The live weights of a run, copied into shared memory by the engine and read by the web
process on the same machine, so a drawing is answered without waiting for training and without
CPU time of the training process (docs/architecture.md, "Predictions").

numpy only: no torch here, so the web process can import it.

Layout of one block (little-endian):
    0   version     u64  even = consistent, odd = being written (a seqlock)
    8   run_id      u64
    16  step        i64  the training step these weights are from
    24  written_at  f64  time.time() of the copy
    32  status      u32  index into STATUSES
    36  activation  u32  index into ACTIVATION_NAMES
    40  n_sizes     u32  len(sizes): 784, the hidden sizes, 10
    44  sizes       u32 x MAX_SIZES
    76  epochs      u32  completed epochs at that step
    80  image       u32 x 3  the image its first layer reads (channels, height, width), the
                    drawing resampled to it (server/preprocess.py model_input); 0s: 28×28 grey
    HEADER_BYTES..  float32: for each layer its weight (out, in) then its bias (out,)

The writer bumps `version` to odd, copies, then bumps it to even. A reader copies the header
and the floats and keeps the copy only if `version` was even and unchanged across it; else it
tries again. (x86 keeps stores in order and loads in order, which is what a seqlock needs.)
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Optional, Sequence

import numpy as np

from .names import ACTIVATION_NAMES, STATUSES

MAX_SIZES = 8
HEADER_BYTES = 128
_U64, _I64, _F64, _U32 = np.dtype("<u8"), np.dtype("<i8"), np.dtype("<f8"), np.dtype("<u4")
LEAKY_SLOPE = np.float32(0.01)  # PyTorch's default negative slope, as the engine trains with


def block_floats(sizes: Sequence[int]) -> int:
    return sum(n_out * n_in + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def block_bytes(sizes: Sequence[int]) -> int:
    return HEADER_BYTES + 4 * block_floats(sizes)


class ReplicaWriter:
    """The engine's side: one shared-memory block for one architecture."""

    def __init__(self, sizes: Sequence[int]):
        self.sizes = tuple(int(n) for n in sizes)
        self.shm = shared_memory.SharedMemory(create=True, size=block_bytes(self.sizes))
        self.name = self.shm.name
        buf = self.shm.buf
        self._version = np.ndarray((1,), _U64, buf, 0)
        self._run_id = np.ndarray((1,), _U64, buf, 8)
        self._step = np.ndarray((1,), _I64, buf, 16)
        self._written_at = np.ndarray((1,), _F64, buf, 24)
        self._small = np.ndarray((3 + MAX_SIZES,), _U32, buf, 32)
        self._epochs = np.ndarray((1,), _U32, buf, 76)
        self._image = np.ndarray((3,), _U32, buf, 80)
        self._floats = np.ndarray((block_floats(self.sizes),), np.float32, buf, HEADER_BYTES)
        self._version[0] = 0

    def write(self, *, run_id: int, step: int, status: str, activation: str, arrays: Sequence[np.ndarray],
              epochs: int = 0, image: Optional[Sequence[int]] = None) -> None:
        """`arrays`: each layer's weight then bias, float32 (views of the live tensors are fine:
        they are copied here, between training steps). `image`: (channels, height, width) its
        first layer reads, when it is not 28×28 grey."""
        self._version[0] += 1  # odd: being written
        offset = 0
        for array in arrays:
            n = array.size
            np.copyto(self._floats[offset:offset + n], array.reshape(-1), casting="same_kind")
            offset += n
        self._run_id[0] = run_id
        self._step[0] = step
        self._written_at[0] = time.time()
        small = [STATUSES.index(status), ACTIVATION_NAMES.index(activation), len(self.sizes),
                 *self.sizes, *([0] * (MAX_SIZES - len(self.sizes)))]
        self._small[:] = small
        self._epochs[0] = epochs
        self._image[:] = tuple(image) if image is not None else (0, 0, 0)
        self._version[0] += 1  # even: consistent

    def close(self) -> None:
        for name in ("_version", "_run_id", "_step", "_written_at", "_small", "_epochs", "_image", "_floats"):
            setattr(self, name, None)  # numpy views hold the buffer; let it go before closing
        try:
            self.shm.close()
            self.shm.unlink()
        except (FileNotFoundError, BufferError):
            pass


@dataclass(frozen=True)
class Weights:
    """One consistent copy of a run's weights."""

    run_id: int
    step: int
    written_at: float
    status: str
    activation: str
    sizes: tuple[int, ...]
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (out, in), bias (out,)) per layer
    version: int
    epochs: int = 0  # completed epochs at that step
    image: Optional[tuple[int, int, int]] = None  # (channels, height, width) its first layer reads; None: 28×28


@dataclass(frozen=True)
class Trace:
    """One forward pass: each hidden layer's activation, the logits, the probabilities."""

    activations: list[np.ndarray]
    logits: np.ndarray
    probabilities: np.ndarray


def _activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    return np.where(z >= 0, z, z * LEAKY_SLOPE)


def forward(weights: Weights, x: np.ndarray) -> Trace:
    """The network's forward pass in float32, as PyTorch computes it (answers agree with the
    engine's model to float32 rounding: tests/processes/test_engine_process.py)."""
    a = np.asarray(x, dtype=np.float32).reshape(-1)
    activations = []
    for weight, bias in weights.layers[:-1]:
        a = _activate(weights.activation, weight @ a + bias).astype(np.float32, copy=False)
        activations.append(a)
    weight, bias = weights.layers[-1]
    logits = weight @ a + bias
    shifted = np.exp(logits - logits.max())
    return Trace(activations, logits, shifted / shifted.sum())


class ReplicaReader:
    """The web side: attaches to a run's block by name and keeps the latest consistent copy
    (copied again only when the engine wrote since). Safe to call from many threads."""

    RETRIES = 1000

    def __init__(self, *, tracked: bool = True):
        # tracked=False: the block's engine is not this process's child (--redis), so this
        # process's resource tracker must not unlink it when this process exits.
        self.tracked = tracked
        self._lock = threading.Lock()
        self._shm: Optional[shared_memory.SharedMemory] = None
        self._name: Optional[str] = None
        self._cached: Optional[Weights] = None

    @property
    def name(self) -> Optional[str]:
        return self._name

    def attach(self, name: Optional[str]) -> None:
        with self._lock:
            if name == self._name:
                return
            self._detach()
            if name is None:
                return
            # Python < 3.13 also registers an attached block with the resource tracker. The
            # engine process is spawned by the web process and shares its tracker, so this adds
            # nothing new, and the engine's unlink removes it: the block is the engine's alone.
            self._shm, self._name = shared_memory.SharedMemory(name=name), name
            if not self.tracked:
                from multiprocessing import resource_tracker
                resource_tracker.unregister(self._shm._name, "shared_memory")

    def _detach(self) -> None:
        self._cached = None
        if self._shm is not None:
            try:
                self._shm.close()
            except BufferError:
                pass  # a copy in use elsewhere still holds a view; the mapping goes with it
        self._shm, self._name = None, None

    def close(self) -> None:
        with self._lock:
            self._detach()

    def latest(self) -> Optional[Weights]:
        """The newest consistent weights, or None when no block is attached yet."""
        with self._lock:
            if self._shm is None:
                return None
            buf = self._shm.buf
            version_view = np.ndarray((1,), _U64, buf, 0)
            for _ in range(self.RETRIES):
                before = int(version_view[0])
                if self._cached is not None and before == self._cached.version:
                    return self._cached
                if before % 2:
                    time.sleep(0)  # being written: a copy takes well under a millisecond
                    continue
                small = np.ndarray((3 + MAX_SIZES,), _U32, buf, 32).copy()
                run_id = int(np.ndarray((1,), _U64, buf, 8)[0])
                step = int(np.ndarray((1,), _I64, buf, 16)[0])
                written_at = float(np.ndarray((1,), _F64, buf, 24)[0])
                epochs = int(np.ndarray((1,), _U32, buf, 76)[0])
                image = tuple(int(n) for n in np.ndarray((3,), _U32, buf, 80))
                n_sizes = int(small[2])
                sizes = tuple(int(n) for n in small[3:3 + n_sizes])
                if n_sizes < 2 or HEADER_BYTES + 4 * block_floats(sizes) > len(buf):
                    continue  # torn header (caught by the version check below in any case)
                floats = np.ndarray((block_floats(sizes),), np.float32, buf, HEADER_BYTES).copy()
                if int(version_view[0]) != before:
                    continue
                layers, offset = [], 0
                for n_in, n_out in zip(sizes[:-1], sizes[1:]):
                    weight = floats[offset:offset + n_out * n_in].reshape(n_out, n_in)
                    offset += n_out * n_in
                    bias = floats[offset:offset + n_out]
                    offset += n_out
                    layers.append((weight, bias))
                self._cached = Weights(run_id, step, written_at, STATUSES[small[0]], ACTIVATION_NAMES[small[1]],
                                       sizes, tuple(layers), before, epochs, image if image[0] else None)
                return self._cached
            return self._cached
