"""The official MNIST test digits (t10k, in ../shared/data/mnist: read by tests only, never by the
app) and what the playground's `predict` says of them: the tests of the exports compare each
framework's numbers with these."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from server.engine.data import TEST_IMAGES, TEST_LABELS, read_idx
from server.web.spine import predict_answer
from tests.support.helpers import SHARED_MNIST, wait_for

# The setups every export is checked on: the question's network, and a deeper ReLU one.
SETUPS = {
    "default": {},
    "three-relu-layers": {"hidden_sizes": [128, 64, 32], "activation": "relu"},
}
TOLERANCE = 1e-5


def trained(engine, setup: dict, steps: int, run: str = "shared"):
    """The run reset to `setup` and trained `steps` mini-batches, standing still at them, its
    replica (what predict and the downloads read) too, however busy the machine is."""
    parts = engine.part(run)
    parts.run.reset(setup)
    parts.run.step(steps, wait_s=300)
    wait_for(lambda: parts.run.step_count == steps and parts.replica.reader.latest().step == steps,
             timeout=60, what=f"{steps} steps done and in the replica")
    return parts.run


@functools.cache
def official_test_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (10000, 784) in 0..1, labels (10000,)), as the playground reads MNIST."""
    paths = [SHARED_MNIST / name for name in (TEST_IMAGES, TEST_LABELS)]
    if not all(path.is_file() for path in paths):
        pytest.fail(f"the official MNIST test files are missing: {', '.join(str(p) for p in paths)}")
    images, labels = (read_idx(path) for path in paths)
    return (images.reshape(len(images), 784).astype(np.float32) / 255.0), labels.astype(np.int64)


def predicted(app, images: np.ndarray, run: str = "shared") -> tuple[np.ndarray, np.ndarray]:
    """(logits, probabilities) of each image as `predict` answers it: the function the socket event
    runs (web/spine.py), without the event's rate limit, so all 10,000 digits can be asked."""
    answers = [predict_answer(app.extensions["playground"], image, run) for image in images]
    return (np.array([answer["logits"] for answer in answers], dtype=np.float64),
            np.array([answer["probabilities"] for answer in answers], dtype=np.float64))


def predicted_by_socket(sio_client, images: np.ndarray) -> np.ndarray:
    """The logits the `predict` event itself answers (a few images: it is rate limited)."""
    logits = []
    for image in images:
        answer = sio_client.emit("predict", {"pixels": image.tolist()}, callback=True)
        assert answer["ok"], answer
        logits.append(answer["logits"])
    return np.array(logits, dtype=np.float64)
