"""The real server, as browsers use it: Werkzeug with threads and simple-websocket, python-socketio
clients over websocket. Viewers share one run: a late joiner gets the history so far, then the
live updates, and anyone's controls act on the run everyone watches."""
from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest

from tests.support.helpers import socketio_client, wait_for



def latest(client, event):
    with client.lock:
        return client.received[event][-1] if client.received[event] else None


def count(client, event):
    with client.lock:
        return len(client.received[event])


@pytest.fixture
def clients(live_server):
    """Connects real clients to the live server and disconnects them afterwards."""
    made = []

    def connect():
        client = socketio_client(live_server.url)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.disconnect()


def test_a_client_connects_over_websocket_and_gets_the_state(clients):
    client = clients()

    wait_for(lambda: count(client, "state") == 1, what="the state on connect")
    assert client.transport() == "websocket"
    state = latest(client, "state")
    assert state["status"] == "idle" and state["model"]["shape"] == [784, 256, 10]


def test_a_full_speed_run_streams_metrics_epochs_and_the_final_state(clients):
    client = clients()
    wait_for(lambda: count(client, "state") == 1, what="the state on connect")

    answer = client.call("train:start", {"config": {"steps_per_second": None, "epochs": 3}}, timeout=10)
    assert answer["ok"] and answer["state"]["status"] == "running"

    wait_for(lambda: (latest(client, "state") or {}).get("status") == "done", what="the run to finish")
    with client.lock:
        metrics = list(client.received["metrics"])
        epochs = list(client.received["epoch"])
    assert metrics and metrics[-1]["progress"] == 1.0
    assert [m["step"] for m in metrics] == sorted(m["step"] for m in metrics)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[-1]["val_accuracy"] > 0.6
    assert all(m["run_id"] == answer["state"]["run_id"] for m in metrics)


def test_a_second_client_joining_mid_run_gets_the_history_then_live_metrics_and_shares_the_controls(clients, live_server):
    first = clients()
    wait_for(lambda: count(first, "state") == 1, what="the first client's state")
    started = first.call("train:start", {"config": {"steps_per_second": 10, "epochs": 5}}, timeout=10)
    run_id = started["state"]["run_id"]
    wait_for(lambda: count(first, "metrics") >= 3, what="some metrics")

    second = clients()
    wait_for(lambda: count(second, "state") == 1, what="the second client's state")
    joined = latest(second, "state")
    assert joined["status"] == "running" and joined["run_id"] == run_id
    assert len(joined["history"]) >= 3  # the curve so far
    history_steps = [p["step"] for p in joined["history"]]
    wait_for(lambda: count(first, "metrics") >= len(history_steps), what="the first client to catch up")
    with first.lock:
        first_steps = [m["step"] for m in first.received["metrics"]]
    assert history_steps == first_steps[:len(history_steps)]  # the same points the first client saw

    wait_for(lambda: count(second, "metrics") >= 2, what="live metrics on the second client")
    with second.lock:
        live = list(second.received["metrics"])
    assert all(m["run_id"] == run_id and m["step"] > history_steps[-1] for m in live)

    # The second viewer pauses the one run; the first sees it.
    states_before = count(first, "state")
    paused = second.call("train:pause", timeout=10)
    assert paused["ok"] and paused["state"]["status"] == "paused"
    wait_for(lambda: count(first, "state") > states_before, what="the pause broadcast")
    assert latest(first, "state")["status"] == "paused"
    assert live_server.session.status == "paused"

    # The first viewer finishes it at full speed; both see the end.
    first.call("train:start", {"config": {"steps_per_second": None}}, timeout=10)
    for client in (first, second):
        wait_for(lambda c=client: (latest(c, "state") or {}).get("status") == "done", what="done on both")
        assert latest(client, "state")["run_id"] == run_id
        with client.lock:
            assert [e["epoch"] for e in client.received["epoch"]][-1] == 5
    with first.lock:
        assert [e["epoch"] for e in first.received["epoch"]] == [1, 2, 3, 4, 5]


def test_predict_over_websocket_with_a_binary_canvas_while_training_streams(clients):
    """Binary attachments share the socket with the training broadcasts; each answer arrives whole."""
    client = clients()
    client.call("train:start", {"config": {"steps_per_second": None, "epochs": 20}}, timeout=10)
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[40:240, 130:150] = 255

    for _ in range(10):
        answer = client.call("predict", {"image": {"width": 280, "height": 280, "data": canvas.tobytes()}},
                             timeout=10)
        assert answer["ok"], answer
        assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-5
        assert len(answer["input"]) == 784 and max(answer["input"]) > 0.5

    bad = client.call("predict", {"image": {"width": 280, "height": 280, "data": b"\xff" * 10}}, timeout=10)
    assert bad["ok"] is False and "image" in bad["error"]
    client.call("train:pause", timeout=10)
    assert count(client, "metrics") > 0


def test_healthz_on_the_live_server(live_server):
    with urllib.request.urlopen(f"{live_server.url}/healthz", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        body = json.load(response)
    assert body["status"] == "ok" and body["training"] == "idle" and body["device"] == "cpu"
    assert body["dataset"]["name"] == "mnist-embedded"
    assert body["model"]["parameters"] == 203_530


def test_a_client_that_leaves_closes_its_connection_cleanly(live_server, caplog):
    """Werkzeug must not read the leaving client's closing websocket frame as a new HTTP request
    (it logged a 400 "Bad request syntax" and the client waited 3 s for an answer)."""
    client = socketio_client(live_server.url)
    wait_for(lambda: count(client, "state") == 1, what="the state on connect")
    eio = live_server.app.extensions["playground"].socketio.server.eio

    client.disconnect()

    wait_for(lambda: all(s.closed for s in eio.sockets.values()), what="the server to close the client's socket")
    time.sleep(0.2)  # the closing frame would be misread right after the disconnect
    assert not [r.getMessage() for r in caplog.records if "Bad request" in r.getMessage()]
