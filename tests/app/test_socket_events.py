"""The Socket.IO contract, through Flask-SocketIO's test client: a viewer gets the state on
connect, every request is answered by acknowledgement, and any bad payload is answered with
words and changes nothing."""
from __future__ import annotations

import math

import numpy as np
import pytest
from tests.support.helpers import Inbox, socketio_client, wait_for

VOLATILE = ("eta_seconds", "samples_per_second")


def stable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in VOLATILE}


def received(client, name):
    return [message["args"][0] for message in client.get_received() if message["name"] == name]



def vertical_stroke_canvas(width=280, height=280) -> bytes:
    """A raw canvas as the page sends it: one byte per pixel, 255 = ink."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    canvas[40:240, 130:150] = 255
    return canvas.tobytes()


# ---- connecting ----------------------------------------------------------------------------------

def test_a_viewer_gets_the_whole_state_when_it_connects(sio_client, session):
    states = received(sio_client, "state")

    assert len(states) == 1
    state = states[0]
    assert state["status"] == "idle" and state["run_id"] == session.run_id
    assert state["config"]["hidden_sizes"] == [256] and state["config"]["activation"] == "sigmoid"
    assert state["model"]["parameters"] == 203_530
    assert state["dataset"]["splits"]["train"] == 1000 and state["dataset"]["splits"]["validation"] == 200
    assert state["history"] == [] and state["epochs"] == []


# ---- each control is answered ok with the state, and broadcast ------------------------------------

def test_start_answers_ok_with_the_running_state_and_every_viewer_hears_it(app, sio_client, session):
    other = app.extensions["playground"].socketio.test_client(app)
    other.get_received()
    sio_client.get_received()

    answer = sio_client.emit("train:start", {"config": {"steps_per_second": 5}}, callback=True)

    assert answer["ok"] is True and answer["state"]["status"] == "running"
    assert answer["state"]["config"]["steps_per_second"] == 5
    assert [s["status"] for s in received(other, "state")] == ["running"]
    session.pause()
    other.disconnect()


def test_pause_step_reset_and_config_update_answer_ok_with_the_state(sio_client, session):
    started = sio_client.emit("train:start", {"config": {"steps_per_second": 5}}, callback=True)
    assert started["state"]["status"] == "running"

    paused = sio_client.emit("train:pause", callback=True)
    assert paused == {"ok": True, "state": paused["state"]} and paused["state"]["status"] == "paused"

    stepped = sio_client.emit("train:step", {"batches": 3}, callback=True)
    assert stepped["ok"] and stepped["state"]["step"] == paused["state"]["step"] + 3
    assert sio_client.emit("train:step", callback=True)["state"]["step"] == stepped["state"]["step"] + 1

    updated = sio_client.emit("config:update", {"lr": 0.01, "batch_size": 32}, callback=True)
    assert updated["ok"] and updated["state"]["config"]["lr"] == 0.01
    assert session.trainer.optimizer.param_groups[0]["lr"] == 0.01

    reset = sio_client.emit("train:reset", {"config": {"hidden_sizes": [32]}}, callback=True)
    assert reset["ok"] and reset["state"]["status"] == "idle" and reset["state"]["step"] == 0
    assert reset["state"]["run_id"] == started["state"]["run_id"] + 1
    assert reset["state"]["model"]["shape"] == [784, 32, 10]
    assert sio_client.emit("train:reset", callback=True)["state"]["status"] == "idle"


def test_a_full_speed_run_streams_metrics_and_epochs_to_the_viewer(sio_client, session):
    sio_client.get_received()
    sio_client.emit("train:start", {"config": {"steps_per_second": None, "epochs": 2, "batch_size": 100}},
                    callback=True)
    inbox = Inbox(sio_client)
    inbox.wait_for("state", lambda state: state["status"] == "done", timeout=30)  # the run finished

    messages = inbox.messages
    metrics = [m["args"][0] for m in messages if m["name"] == "metrics"]
    epochs = [m["args"][0] for m in messages if m["name"] == "epoch"]
    assert metrics and metrics[-1]["step"] == 20 and metrics[-1]["progress"] == 1.0
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(epochs[0])
    assert [m["args"][0]["status"] for m in messages if m["name"] == "state"][-1] == "done"


# ---- predict ---------------------------------------------------------------------------------------

def assert_predict_answer(answer):
    assert answer["ok"] is True
    assert isinstance(answer["prediction"], int) and 0 <= answer["prediction"] <= 9
    assert len(answer["probabilities"]) == 10 and math.isclose(sum(answer["probabilities"]), 1, rel_tol=1e-5)
    assert answer["prediction"] == int(np.argmax(answer["probabilities"]))
    assert len(answer["logits"]) == 10
    assert len(answer["hidden"]) == 256 and all(0 <= a <= 1 for a in answer["hidden"])  # sigmoid
    assert answer["hidden_layers"] == [answer["hidden"]]
    assert len(answer["input"]) == 784


def test_predict_with_pixels_answers_the_networks_view_of_a_real_digit(sio_client, small_dataset):
    digit = small_dataset.validation.images[0].tolist()

    answer = sio_client.emit("predict", {"pixels": digit}, callback=True)

    assert_predict_answer(answer)
    assert answer["input"] == pytest.approx(digit, abs=1e-6)


def test_predict_with_a_raw_canvas_preprocesses_it_like_mnist(sio_client):
    answer = sio_client.emit("predict", {"image": {"width": 280, "height": 280, "data": vertical_stroke_canvas()}},
                             callback=True)

    assert_predict_answer(answer)
    image = np.array(answer["input"]).reshape(28, 28)
    rows, cols = np.nonzero(image > 0.05)
    assert rows.min() >= 3 and rows.max() <= 24  # fitted into the 20x20 box in the middle
    assert rows.max() - rows.min() >= 18  # a tall stroke stays tall
    assert cols.max() - cols.min() <= 6  # and thin
    centre = np.array(np.nonzero(image)).T.astype(float)
    weights = image[image > 0]
    assert np.average(centre, axis=0, weights=weights) == pytest.approx([13.5, 13.5], abs=1.0)


def test_an_empty_canvas_predicts_from_an_all_zero_input(sio_client):
    answer = sio_client.emit("predict", {"image": {"width": 10, "height": 10, "data": bytes(100)}}, callback=True)
    assert_predict_answer(answer)
    assert answer["input"] == [0.0] * 784


def test_a_trained_network_reads_real_digits(sio_client, session, small_dataset):
    sio_client.emit("train:start", {"config": {"steps_per_second": None, "epochs": 5}}, callback=True)
    wait_for(lambda: session.status == "done", what="the run to finish")
    validation = small_dataset.validation
    _, _, expected = session.trainer.evaluate(validation.images[:30], validation.labels[:30])

    predictions = [sio_client.emit("predict", {"pixels": image.tolist()}, callback=True)["prediction"]
                   for image in validation.images[:30]]

    assert predictions == expected.tolist()  # the live, trained network answers
    assert sum(p == int(label) for p, label in zip(predictions, validation.labels[:30])) >= 22


# ---- bad payloads: answered with words, nothing changes -------------------------------------------

BAD_PAYLOADS = [
    # predict
    ("predict", None, "payload must be an object with pixels, image (got null)"),
    ("predict", [0.5] * 784, "payload must be an object with pixels, image (got a list of 784)"),
    ("predict", {}, "send exactly one of 'pixels' (784 numbers) or 'image' (a raw canvas)"),
    ("predict", {"pixels": [0.0] * 784, "image": {"width": 1, "height": 1, "data": b"\0"}}, "send exactly one of"),
    ("predict", {"pixels": [0.0] * 783}, "pixels must have 784 values (28x28), got 783"),
    ("predict", {"pixels": [0.0] * 783 + ["ink"]}, "pixels[783] must be a number"),
    ("predict", {"pixels": [0.0] * 783 + [2.0]}, "pixels[783] is 2.0, outside 0..1"),
    ("predict", {"pixels": [0.0] * 783 + [None]}, "pixels[783] must be a number from 0 to 1 (got null)"),
    ("predict", {"pixels": [0.0] * 10_000}, "pixels: give at most 3,136 numbers (got 10,000)"),
    ("predict", {"pixels": "0,0,0"}, "pixels: give a list"),
    ("predict", {"pixels": [0.0] * 784, "label": 3}, "label: not something this request takes"),
    ("predict", {"image": {"width": 280, "height": 280, "data": bytes(100)}}, "image"),
    ("predict", {"image": {"width": 0, "height": 280, "data": b""}}, "image.width: give a number of at least 1"),
    ("predict", {"image": {"width": 5000, "height": 1, "data": bytes(5000)}}, "image.width: give a number of at most 1,024"),
    ("predict", {"image": {"width": 2, "height": 2, "data": "abcd"}}, "image.data: give binary data"),
    ("predict", {"image": {"width": 2, "height": 2, "data": [0, 0, 0, 0]}}, "image.data: give binary data"),
    ("predict", {"image": {"width": "2", "height": 2, "data": bytes(4)}}, "image.width: give a whole number"),
    ("predict", {"image": {"width": 2, "height": 2}}, "image.data: missing: send it"),
    # train:start
    ("train:start", "go", "payload must be an object with config (got \"go\")"),
    ("train:start", {"config": {"lr": -1}}, "lr: give a number above 0"),
    ("train:start", {"config": "fast"}, "config: give an object"),
    ("train:start", {"confg": {}}, "confg: not something this request takes"),
    ("train:start", {"config": {"hidden_sizes": [256] * 5}}, "hidden_sizes: give at most 4 hidden layers (got 5)"),
    # train:step
    ("train:step", {"batches": 0}, "batches: give a number of at least 1"),
    ("train:step", {"batches": 1001}, "batches: give a number of at most 1,000"),
    ("train:step", {"batches": "2"}, "batches: give a whole number"),
    ("train:step", {"batches": 1.5}, "batches: give a whole number"),
    ("train:step", 7, "payload must be an object with batches (got 7)"),
    # train:reset
    ("train:reset", {"config": {"hidden_sizes": [3000]}}, "hidden_sizes[0]: give a number of at most 2,048"),
    ("train:reset", {"config": {"optimizer": "rmsprop"}}, "optimizer: choose one of 'sgd' or 'adam'"),
    # config:update
    ("config:update", None, "config:update needs an object of setup fields"),
    ("config:update", {}, "config:update needs an object of setup fields"),
    ("config:update", [["lr", 0.1]], "config:update needs an object of setup fields"),
    ("config:update", {"lr": "0.1"}, "lr: give a number"),
    ("config:update", {"lr": None}, "lr: give a number"),
    ("config:update", {"batch_size": 10_000}, "batch_size: give a number of at most 4,096"),
    ("config:update", {"colour": "red"}, "colour: not something this request takes"),
]


@pytest.mark.parametrize("event, payload, words", BAD_PAYLOADS,
                         ids=[f"{event}-{i}" for i, (event, _, _) in enumerate(BAD_PAYLOADS)])
def test_a_bad_payload_is_answered_with_words_and_changes_nothing(sio_client, session, event, payload, words):
    session.step(2)  # a run under way, so there is something to lose
    before = stable(session.state())
    sio_client.get_received()

    answer = sio_client.emit(event, callback=True) if payload is None else \
        sio_client.emit(event, payload, callback=True)

    assert answer["ok"] is False
    assert words in answer["error"], answer["error"]
    assert set(answer) == {"ok", "error"}
    assert stable(session.state()) == before
    assert received(sio_client, "state") == []  # nothing changed, so nothing was broadcast


def test_model_fields_while_a_run_is_under_way_are_refused_and_change_nothing(sio_client, session):
    sio_client.emit("train:step", {"batches": 2}, callback=True)
    before = stable(session.state())

    answer = sio_client.emit("config:update", {"activation": "relu", "lr": 0.05}, callback=True)

    assert answer["ok"] is False
    assert answer["error"].startswith("activation can only change with a new model: press Reset")
    assert stable(session.state()) == before


def test_step_when_the_run_is_done_is_refused(sio_client, session):
    sio_client.emit("config:update", {"epochs": 1, "batch_size": 100}, callback=True)
    assert sio_client.emit("train:step", {"batches": 1000}, callback=True)["state"]["status"] == "done"
    before = stable(session.state())

    answer = sio_client.emit("train:step", callback=True)

    assert answer == {"ok": False, "error": "the run is finished: press Reset (or Start for a new run)"}
    assert stable(session.state()) == before


def test_the_server_keeps_answering_after_refusals(sio_client):
    for _ in range(3):
        assert sio_client.emit("train:step", {"batches": -1}, callback=True)["ok"] is False
    assert sio_client.emit("train:step", callback=True)["ok"] is True


# ---- HTTP -----------------------------------------------------------------------------------------

def test_healthz_answers_json_with_status_device_dataset_and_model(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    assert body["status"] == "ok" and body["training"] == "idle" and body["device"] == "cpu"
    assert body["dataset"]["splits"]["train"] == 1000
    assert body["model"]["parameters"] == 203_530


def test_the_page_is_served_with_a_strict_content_security_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b'data-testid="canvas"' in response.data
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_the_vendored_front_end_libraries_are_served(client):
    for name in ("plotly.min.js", "socket.io.esm.min.js"):
        response = client.get(f"/vendor/{name}")
        assert response.status_code == 200 and response.mimetype == "text/javascript", name
        response.close()
    assert client.get("/vendor/../../server/app.py").status_code == 404
    assert client.get("/vendor/jquery.js").status_code == 404


def test_nan_and_infinity_sent_by_a_client_are_refused_in_words(live_server):
    """Python's own json writes NaN and Infinity (not JSON): the server still reads them and
    says what is wrong, instead of dropping the message unread."""
    viewer = socketio_client(live_server.url)
    try:
        nan = viewer.call("predict", {"pixels": [0.0] * 783 + [float("nan")]}, timeout=10)
        assert nan == {"ok": False, "error": "pixels[783] is NaN: give a number from 0 (background) to 1 (ink)"}
        infinite = viewer.call("config:update", {"lr": float("inf")}, timeout=10)
        assert infinite["ok"] is False and "lr: give a finite number" in infinite["error"]
    finally:
        viewer.disconnect()
