"""Arrays on the engine line, spelled once for both sides: float32 vectors as little-endian
bytes (a drawing's pixels, a picture's scales), and the predict command's answer (one forward
pass) as the engine encodes it and the web tier decodes it. Plain numpy: the engine
(server/engine/) and the web tier (server/web/) both import it, so the two cannot drift apart."""
from __future__ import annotations

import numpy as np

from .replica import Trace

FLOAT32 = "<f4"  # little-endian whatever the machine: the bytes mean the same on every side


def float32_bytes(values) -> bytes:
    """Numbers as float32 bytes: a quarter of a list's msgpack size, read without parsing."""
    return np.ascontiguousarray(np.asarray(values, dtype=FLOAT32)).tobytes()


def float32_array(data: bytes) -> np.ndarray:
    """float32 bytes back as a (read-only) array."""
    return np.frombuffer(data, dtype=FLOAT32)


def encode_prediction(trace: Trace, run_id: int, step: int) -> dict:
    """The predict command's answer: the pass's arrays as float32 bytes, and which weights
    answered (their run and training step)."""
    return {"probabilities": float32_bytes(trace.probabilities), "logits": float32_bytes(trace.logits),
            "activations": [float32_bytes(layer) for layer in trace.activations],
            "run_id": run_id, "step": step}


def decode_prediction(answer: dict) -> tuple[Trace, int, int]:
    """encode_prediction's inverse: (the pass, run id, step)."""
    trace = Trace(probabilities=float32_array(answer["probabilities"]), logits=float32_array(answer["logits"]),
                  activations=[float32_array(layer) for layer in answer["activations"]])
    return trace, answer["run_id"], answer["step"]
