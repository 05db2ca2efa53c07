"""The live views over Socket.IO: frames at once for a new viewer, binary payloads of bounded
size, fresh frames after each control, the neuron inspector's answers, and latest-wins delivery
to a slow client (a real python-socketio client over websocket that acknowledges late)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import socketio as socketio_package

from server.engine.snapshots import QUANT_LEVELS, QUANT_ZERO
from tests.support.helpers import Inbox, OrderedClient, socketio_client, wait_for

STREAM_EVENTS = ("inside:weights", "inside:activations", "inside:distributions")
MAX_FRAME_BYTES = 256 * 1024


def encoded_size(event, payload) -> int:
    """Bytes on the wire: the Socket.IO header (JSON with placeholders) plus each attachment."""
    packet = socketio_package.packet.Packet(socketio_package.packet.EVENT, data=[event, payload], namespace="/")
    parts = packet.encode()
    parts = parts if isinstance(parts, list) else [parts]
    return sum(len(p.encode() if isinstance(p, str) else p) for p in parts)


def longest_list(value) -> int:
    if isinstance(value, dict):
        return max([0] + [longest_list(v) for v in value.values()])
    if isinstance(value, list):
        return max([len(value)] + [longest_list(v) for v in value])
    return 0


def decoded_tiles(frame) -> np.ndarray:
    hidden = frame["hidden"]
    codes = np.frombuffer(hidden["data"], dtype=np.uint8).reshape(hidden["n_shown"], hidden["inputs"])
    scales = np.frombuffer(hidden["row_scale"], dtype="<f4")
    return (codes.astype(np.float32) - QUANT_ZERO) * (scales[:, None] / QUANT_LEVELS)


@pytest.fixture
def inbox(sio_client, app):
    # Flask-SocketIO's test client never acknowledges server events, so each stream would
    # wait out the acknowledgement timeout between frames; a short one stands in for its acks.
    app.extensions["inside"].ack_timeout_s = 0.1
    return Inbox(sio_client)


def test_a_new_viewer_gets_every_view_of_the_current_network_at_once(inbox, session):
    weights = inbox.wait_for("inside:weights")
    activations = inbox.wait_for("inside:activations")
    distributions = inbox.wait_for("inside:distributions")
    for frame in (weights, activations, distributions):
        assert frame["run_id"] == session.run_id and frame["step"] == 0
    hidden = weights["hidden"]
    assert isinstance(hidden["data"], bytes) and len(hidden["data"]) == 256 * 784
    assert hidden["n_neurons"] == 256 and hidden["columns"] == 16
    live = session.trainer.model.hidden.weight.detach().numpy()
    half_step = np.abs(live).max(axis=1) / (2 * QUANT_LEVELS)
    assert np.all(np.abs(decoded_tiles(weights) - live).max(axis=1) <= half_step * (1 + 1e-5) + 1e-9)
    assert activations["n_digits"] == 200 and activations["layers"][0]["units"] == 256
    assert {t["name"] for t in distributions["tensors"]} == {"hidden.weight", "output.weight"}


def test_big_arrays_travel_as_bytes_and_a_hidden_weights_frame_fits_in_256_kb(inbox):
    weights = inbox.wait_for("inside:weights")
    size = encoded_size("inside:weights", weights)
    assert 200_704 < size <= MAX_FRAME_BYTES
    for event in STREAM_EVENTS:
        frame = inbox.wait_for(event)
        assert longest_list(frame) <= 130, f"{event} carries a long JSON list: big arrays must be bytes"
        assert encoded_size(event, frame) <= MAX_FRAME_BYTES


def test_frames_stay_bounded_for_four_layers_of_2048_units(inbox, session, sio_client):
    answer = sio_client.emit("train:reset", {"config": {"hidden_sizes": [2048, 2048, 2048, 2048]}}, callback=True)
    assert answer["ok"], answer
    weights = inbox.wait_for("inside:weights", lambda f: f["hidden"]["n_neurons"] == 2048)
    assert weights["hidden"]["n_shown"] == 256  # the page says "the first 256 of 2048"
    assert weights["output"]["shape"] == [10, 2048] and weights["output"]["from_layer"] == "hidden4"
    assert encoded_size("inside:weights", weights) <= MAX_FRAME_BYTES
    activations = inbox.wait_for("inside:activations", lambda f: len(f["layers"]) == 4)
    distributions = inbox.wait_for("inside:distributions", lambda f: len(f["tensors"]) == 5)
    for event, frame in (("inside:activations", activations), ("inside:distributions", distributions)):
        assert encoded_size(event, frame) <= MAX_FRAME_BYTES


def test_a_step_while_paused_sends_frames_of_exactly_the_new_weights(inbox, session, sio_client):
    inbox.wait_for("inside:weights")
    assert sio_client.emit("train:step", {"batches": 3}, callback=True)["ok"]
    weights = inbox.wait_for("inside:weights", lambda f: f["step"] == 3)
    live = session.trainer.model.hidden.weight.detach().numpy()
    assert np.abs(decoded_tiles(weights) - live).max() <= np.abs(live).max() / (2 * QUANT_LEVELS) + 1e-7
    distributions = inbox.wait_for("inside:distributions", lambda f: f["step"] == 3)
    hidden_grad = next(t for t in distributions["tensors"] if t["name"] == "hidden.weight" and t["kind"] == "gradient")
    assert hidden_grad["steps"] == [3]
    hidden_weight = next(t for t in distributions["tensors"] if t["name"] == "hidden.weight" and t["kind"] == "weight")
    assert hidden_weight["steps"] == [0, 3]  # the first record (the initial weights) is kept


def test_a_reset_starts_the_histories_over(inbox, session, sio_client):
    assert sio_client.emit("train:step", {"batches": 2}, callback=True)["ok"]
    inbox.wait_for("inside:distributions", lambda f: f["step"] == 2)
    assert sio_client.emit("train:reset", callback=True)["ok"]
    fresh = inbox.wait_for("inside:distributions", lambda f: f["run_id"] == session.run_id)
    assert fresh["step"] == 0
    assert all(t["steps"] == [0] for t in fresh["tensors"])


def test_the_inspector_gets_one_neurons_weights_and_its_arithmetic_for_a_drawing(sio_client, session, small_dataset):
    pixels = small_dataset.validation.images[0].tolist()
    answer = sio_client.emit("inside:neuron", {"index": 7, "pixels": pixels}, callback=True)
    assert answer["ok"], answer
    model = session.trainer.model
    weights = np.frombuffer(answer["weights"], dtype="<f4")
    assert np.array_equal(weights, model.hidden.weight[7].detach().numpy())
    prediction = sio_client.emit("predict", {"pixels": pixels}, callback=True)
    assert answer["activation_value"] == pytest.approx(prediction["hidden"][7], abs=1e-5)
    contributions = np.frombuffer(answer["contributions"], dtype="<f4")
    assert contributions.sum() == pytest.approx(answer["pre_activation"] - answer["bias"], abs=1e-4)
    top = answer["top_digits"]
    assert top["count"] == 8 and len(top["images"]) == 8 * 784 and len(top["labels"]) == 8
    assert top["activations"] == sorted(top["activations"], reverse=True)
    without_drawing = sio_client.emit("inside:neuron", {"index": 255}, callback=True)
    assert without_drawing["ok"] and "pre_activation" not in without_drawing


@pytest.mark.parametrize("payload, words", [
    ({"index": 256}, "0 to 255"),
    ({"index": -1}, "index"),
    ({"index": "3"}, "index"),
    ({"index": 3, "pixels": [0.5] * 10}, "784"),
    ({"index": 3, "pixels": [2.0] * 784}, "outside 0..1"),
    ({"index": 3, "colour": "red"}, "not something this request takes"),
    ("neuron 3", "object"),
])
def test_bad_inspector_requests_are_refused_with_words(sio_client, payload, words):
    answer = sio_client.emit("inside:neuron", payload, callback=True)
    assert answer["ok"] is False and words in answer["error"]


def test_a_viewer_can_choose_its_streams(inbox, sio_client, session, app):
    inbox.wait_for("inside:distributions")
    answer = sio_client.emit("inside:subscribe", {"streams": ["weights"]}, callback=True)
    assert answer == {"ok": True, "streams": ["weights"]}
    inbox.poll()
    inbox.messages.clear()
    assert sio_client.emit("train:step", {"batches": 1}, callback=True)["ok"]
    inbox.wait_for("inside:weights", lambda f: f["step"] == 1)
    assert inbox.frames("inside:distributions") == [] and inbox.frames("inside:activations") == []
    refused = sio_client.emit("inside:subscribe", {"streams": ["weights", "gossip"]}, callback=True)
    assert refused["ok"] is False and "streams[1]" in refused["error"]
    stats = app.extensions["inside"].client_stats(next(iter(app.extensions["inside"]._clients)))
    assert stats["streams"] == ["weights"]  # the refused request changed nothing


@pytest.mark.slow
def test_a_slow_client_gets_the_latest_frame_never_a_backlog(live_server):
    """A viewer that acknowledges each frame a second late receives far fewer frames than a
    fast one; each frame it gets is the newest there was when it acknowledged the previous
    one; and when training stops, its next frame is the final one."""
    views = live_server.engine.part().views  # the engine's frame maker
    views.rates.weights_s = 0.05  # produce frames much faster than the slow client takes them
    views.rates.max_cost_share = 1.0
    delivery = live_server.app.extensions["inside"]
    delay = 1.0
    slow_log = []  # (seq received, latest seq when acknowledged)

    fast = socketio_client(live_server.url, record=("inside:weights",))
    slow = OrderedClient(reconnection=False)

    def on_slow_frame(frame):
        time.sleep(delay)  # a slow page: drawing takes a second; this blocks its socket reader
        slow_log.append((frame["seq"], delivery.latest("weights")["seq"]))
        return True  # the acknowledgement

    slow.on("inside:weights", on_slow_frame)
    slow.connect(live_server.url, transports=["websocket"], wait_timeout=10)
    try:
        started = delivery.published("weights")
        live_server.session.start({"steps_per_second": 200, "epochs": 200})
        deadline = time.monotonic() + 60
        while delivery.published("weights") - started < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        live_server.session.pause()
        final = delivery.latest("weights")["seq"]
        published = delivery.published("weights") - started
        assert published >= 40
        deadline = time.monotonic() + 20
        while (not slow_log or slow_log[-1][0] != final) and time.monotonic() < deadline:
            time.sleep(0.05)

        received = [seq for seq, _ in slow_log]
        assert received[-1] == final, "after training stops, the slow client's next frame is the final one"
        assert received == sorted(set(received)), "frames arrive newest-last, never repeated"
        for (seq, latest_at_ack), next_seq in zip(slow_log, received[1:]):
            assert next_seq >= latest_at_ack, "the frame after an acknowledgement is the newest one"
        assert len(received) < published / 3, "the slow client skipped frames instead of queueing them"
        with fast.lock:
            fast_received = len(fast.received["inside:weights"])
        assert fast_received > len(received)
        stats = delivery.client_stats(slow.get_sid())
        # each weights frame it drew was acknowledged (the last may still be on its way)
        assert len(received) - 1 <= stats["delivered"]["weights"] <= len(received)
    finally:
        live_server.session.pause()
        slow.disconnect()
        fast.disconnect()


def test_the_sender_thread_ends_when_the_last_viewer_leaves(live_server):
    delivery = live_server.app.extensions["inside"]
    client = socketio_client(live_server.url, record=("inside:weights",))
    deadline = time.monotonic() + 10
    while not client.received["inside:weights"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.received["inside:weights"]
    thread = delivery._thread
    assert thread is not None and thread.is_alive()
    client.disconnect()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert delivery._clients == {}
    assert all(t.name != "inside-sender" or t is not thread for t in threading.enumerate())


def rebuild(frames):
    """The first hidden layer as a viewer of the weights-delta stream holds it."""
    from tests.support.row_deltas_reader import RowDeltasReader
    reader = None
    previous = None
    for frame in frames:
        hidden = frame["hidden"]
        if frame["kind"] == "key":
            reader = RowDeltasReader(hidden["n_shown"], hidden["inputs"])
        else:
            assert reader is not None and frame["base"] == previous, "each delta builds on the frame before"
        reader.apply(hidden)
        previous = frame["seq"]
    return reader


def test_small_streams_asked_for_at_connect_come_as_a_key_frame_then_deltas(live_server):
    session = live_server.session
    viewer = socketio_client(live_server.url, record=("inside:weights-delta", "inside:weights",
                                                      "inside:distributions-delta", "state"),
                             auth={"streams": ["weights-delta", "distributions-delta"]})
    try:
        wait_for(lambda: viewer.received["inside:weights-delta"], what="the first frame")
        assert viewer.call("train:start", {"config": {"steps_per_second": 50}}, timeout=10)["ok"]
        wait_for(lambda: session.step_count >= 60, what="training")
        paused = viewer.call("train:pause", timeout=10)["state"]
        wait_for(lambda: viewer.received["inside:weights-delta"][-1]["step"] == paused["step"]
                 and viewer.received["inside:weights-delta"][-1]["status"] == "paused", what="the paused frame")
        with viewer.lock:
            frames = list(viewer.received["inside:weights-delta"])
        assert frames[0]["kind"] == "key" and any(f["kind"] == "delta" for f in frames)
        assert viewer.received["inside:weights"] == []  # only what it asked for
        reader = rebuild(frames)
        live = session.model.hidden.weight.detach().numpy()
        steps = np.exp2(reader.exponents.astype(np.float64))[:, None] / 31
        assert (np.abs(reader.values() - live) / steps).max() <= 0.5 + 1e-6  # standing still: exact to the code
        full = MAX_FRAME_BYTES
        deltas = [encoded_size("inside:weights-delta", f) for f in frames if f["kind"] == "delta"]
        assert max(deltas[1:]) < full / 2

        # A viewer joining now gets the key frame and every delta since: the same picture.
        late = socketio_client(live_server.url, record=("inside:weights-delta",),
                               auth={"streams": ["weights-delta"]})
        try:
            wait_for(lambda: late.received["inside:weights-delta"]
                     and late.received["inside:weights-delta"][-1]["seq"] == frames[-1]["seq"], what="catch-up")
            with late.lock:
                np.testing.assert_array_equal(rebuild(list(late.received["inside:weights-delta"])).codes, reader.codes)
        finally:
            late.disconnect()
        distributions = viewer.received["inside:distributions-delta"]
        assert distributions[0]["kind"] == "key" and distributions[-1]["status"] == "paused"
    finally:
        viewer.disconnect()
