"""Arrays on the engine line are spelled once (server/link/arrays.py): float32 bytes both ways,
and the predict answer as the engine encodes it and the web tier decodes it."""
from __future__ import annotations

import numpy as np

from server.link.arrays import decode_prediction, float32_array, float32_bytes
from server.link.codec import pack, unpack
from server.link.replica import forward
from tests.support.helpers import wait_for


def test_float32_bytes_are_little_endian_and_read_back_exactly():
    values = np.array([0.5, -1.25, 3.0e38, 1e-7], dtype=np.float64)
    data = float32_bytes(values)
    assert data == np.array(values, dtype="<f4").tobytes() and len(data) == 16
    assert np.array_equal(float32_array(data), values.astype(np.float32))


def test_the_engines_predict_answer_decodes_to_the_forward_pass_of_the_weights_that_answered(app):
    playground = app.extensions["playground"]
    wait_for(lambda: playground.replica.latest() is not None, what="the shared run's weights")
    pixels = np.linspace(0.0, 1.0, 784, dtype=np.float32)
    # Over the real engine line (msgpack both ways), as a web process on another machine asks.
    answer = playground.request("predict", {"run": "shared", "pixels": float32_bytes(pixels)})
    trace, run_id, step = decode_prediction(unpack(pack(answer)))
    weights = playground.replica.latest()
    expected = forward(weights, pixels)
    assert (run_id, step) == (weights.run_id, weights.step)
    assert np.array_equal(trace.probabilities, expected.probabilities)
    assert np.array_equal(trace.logits, expected.logits)
    assert len(trace.activations) == len(expected.activations) == 1
    assert np.array_equal(trace.activations[0], expected.activations[0])
    assert trace.probabilities.argmax() == expected.probabilities.argmax()
