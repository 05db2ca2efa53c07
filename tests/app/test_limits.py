"""Limits: how big one message or request may be, how often one viewer may ask for a
prediction. Past a limit a client gets a clear refusal (or, past the message size, only its own
connection is closed) and everyone else is served as before."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from server.web.limits import EVENTS_BURST, EVENTS_PER_SECOND, PREDICT_BURST, PREDICT_PER_SECOND, TokenBucket
from tests.support.helpers import REPO, disconnect_all, socketio_client

BLANK = {"pixels": [0.0] * 784}
MESSAGE_CAP = 2 * 1024 * 1024  # the app's max_http_buffer_size


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


# ---- rates ----------------------------------------------------------------------------------

def test_a_token_bucket_allows_a_burst_then_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(per_second=20, burst=40, clock=clock)
    assert all(bucket.take() for _ in range(40))
    assert not bucket.take()
    clock.now += 0.5  # half a second refills 10
    assert sum(bucket.take() for _ in range(20)) == 10
    clock.now += 60  # never more than the burst
    assert sum(bucket.take() for _ in range(100)) == 40


def test_the_page_drawing_rate_is_well_under_the_predict_limit():
    """static/js/canvas.js sends at most one predict per 60 ms; the limit must never bite it."""
    canvas_js = (REPO / "static" / "js" / "canvas.js").read_text()
    throttle_ms = int(canvas_js.split("THROTTLE_MS = ")[1].split(";")[0])
    assert 1000 / throttle_ms < PREDICT_PER_SECOND and PREDICT_BURST >= 20


def test_a_viewer_that_floods_predict_is_told_to_slow_down_and_others_are_served(app):
    socketio = app.extensions["playground"].socketio
    flooder = socketio.test_client(app, flask_test_client=app.test_client())
    other = socketio.test_client(app, flask_test_client=app.test_client())
    answers = [flooder.emit("predict", BLANK, callback=True) for _ in range(PREDICT_BURST + 30)]
    refused = [a for a in answers if not a["ok"]]
    assert sum(a["ok"] for a in answers) >= PREDICT_BURST
    assert refused, "a flood past the burst is refused"
    assert all(a["error"].startswith("too many predictions: at most 20 per second") for a in refused)
    assert other.emit("predict", BLANK, callback=True)["ok"], "the limit is per viewer"
    time.sleep(3 / PREDICT_PER_SECOND)
    assert flooder.emit("predict", BLANK, callback=True)["ok"], "the bucket refills"


# ---- sizes ----------------------------------------------------------------------------------

# The test's own client library (simple-websocket's writer thread) may trip over the close the
# server sends it; that thread's error is the client's, not the server's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_oversized_socket_message_closes_only_that_connection(live_server):
    big = socketio_client(live_server.url)
    other = socketio_client(live_server.url)
    disconnected = threading.Event()
    big.on("disconnect", lambda *args: disconnected.set())
    big_websocket = big.eio.ws  # the client library leaves it open when the server closes it
    try:
        assert other.call("predict", BLANK, timeout=10)["ok"]
        oversized = {"image": {"width": 1024, "height": 1024, "data": bytes(MESSAGE_CAP + 1)}}
        big.emit("predict", oversized)
        assert disconnected.wait(10), "the server closes a connection that sends a message past the cap"
        assert other.connected
        assert other.call("predict", BLANK, timeout=10)["ok"]
        assert requests.get(live_server.url + "/healthz", timeout=5).json()["status"] == "ok"
        fresh = socketio_client(live_server.url)
        assert fresh.call("predict", BLANK, timeout=10)["ok"]
        disconnect_all([fresh])
    finally:
        disconnect_all([c for c in (big, other) if c.connected])
        big_websocket.shutdown()


def test_the_biggest_canvas_fits_under_the_message_cap(live_server):
    viewer = socketio_client(live_server.url)
    try:
        data = bytearray(1024 * 1024)
        data[500 * 1024 + 500: 500 * 1024 + 520] = b"\xff" * 20
        answer = viewer.call("predict", {"image": {"width": 1024, "height": 1024, "data": bytes(data)}},
                             timeout=20)
        assert answer["ok"] and len(answer["probabilities"]) == 10
    finally:
        disconnect_all([viewer])


def test_long_polling_is_not_served(live_server):
    """Websocket only. Engine.IO's polling transport, dropping a session over an oversized or
    malformed POST, blocks that request's thread until the client polls again, which a
    misbehaving client never does: one leaked thread per request. So there is no polling."""
    handshake = requests.get(live_server.url + "/socket.io/?EIO=4&transport=polling", timeout=5)
    assert handshake.status_code == 400
    viewer = socketio_client(live_server.url)  # the websocket transport, as the page uses
    try:
        assert viewer.call("predict", BLANK, timeout=10)["ok"]
    finally:
        disconnect_all([viewer])


@pytest.mark.parametrize("image, words", [
    ({"width": 10**9, "height": 10**9, "data": b"\x00" * 16}, "width"),
    ({"width": 1025, "height": 1, "data": b"\x00" * 1025}, "width"),
    ({"width": 28, "height": 28, "data": b"\x00" * 10}, "784"),
    ({"width": 2**64, "height": 1, "data": b""}, "width"),
    ({"width": -1, "height": 28, "data": b""}, "width"),
])
def test_huge_or_lying_declared_image_sizes_are_refused_in_words(sio_client, session, image, words):
    before = session.state()["step"]
    answer = sio_client.emit("predict", {"image": image}, callback=True)
    assert answer["ok"] is False and words in answer["error"]
    assert session.state()["step"] == before


def test_an_http_body_past_the_limit_is_refused_with_json(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/api/linear", data=b"{" + b" " * (limit + 1), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json() == {"error": f"the request is too large: at most {limit:,} bytes"}


def test_a_flood_of_any_events_is_answered_too_many_requests_and_others_are_served(app):
    socketio = app.extensions["playground"].socketio
    flooder = socketio.test_client(app, flask_test_client=app.test_client())
    other = socketio.test_client(app, flask_test_client=app.test_client())
    started = time.monotonic()
    answers = [flooder.emit(event, None, callback=True)
               for event in ["no-such-event", "train:pause", "inside:subscribe"] * (EVENTS_BURST // 2)]
    took = time.monotonic() - started  # the bucket refills meanwhile: 60 a second
    refused = [a for a in answers if isinstance(a, dict) and not a.get("ok")
               and a.get("error", "").startswith("too many requests")]
    assert len(refused) >= len(answers) - EVENTS_BURST - EVENTS_PER_SECOND * took - 2, \
        "past the burst, events are refused"
    assert refused[0]["error"] == ("too many requests: at most 60 per second from one viewer; "
                                   "this one was not handled")
    assert other.emit("predict", BLANK, callback=True)["ok"], "the limit is per viewer"
    assert flooder.is_connected()
